# An IPv6 site of two directors: both hold the VIP on lo, the router spreads the flows over
# them (its resilient director group, as on pillar/lvs/two_vips.sls, in IPv6) and its
# own probes take a dead one out; the directors sync their connections over an IPv6
# multicast group (ff02::4c56 on the LAN NIC).
# Minion ids are the site's own: the lab runs it alone (lvs-lab up --site ipv6_ha) or beside
# the seed's (lvs-lab up --add-site ipv6_ha). Schema: docs/pillar.md ("IPv6 sites")
lvs:
  site: ipv6-ha
  lan:
    subnet: 2001:db8:26::/64
    gateway: 2001:db8:26::1
  router:
    id: v6h-router
    kind: linux
    lan_interface: eth0
    wan_interface: wan0
    wan_address: 2001:db8:113::88/64
  directors:
    v6h-director:
      address: 2001:db8:26::2
    v6h-director2:
      address: 2001:db8:26::3
  realservers:
    v6h-rs1:
      address: 2001:db8:26::21
    v6h-rs2:
      address: 2001:db8:26::22
  services:
    web:
      vip: 2001:db8:26::88
      protocol: tcp
      port: 80
      scheduler: rr
      check: {type: http, path: /, expect: 200}
