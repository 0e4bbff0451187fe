# An IPv6 site: the seed's topology (two real servers) with IPv6 addresses (documentation
# prefixes), a web service and a UDP one. The router routes the VIP (no NAT for IPv6: the VIP is the public address),
# the director holds it on its LAN NIC and wraps each request in IPv6 (ip6ip6) for a real
# server, whose ip6tnl0 holds the VIP and who answers the client directly.
# One director and a linux router: what IPv6 sites take for now (tunnel:kind gue or gre
# work as on IPv4 sites).
# Minion ids are the site's own: the lab runs it alone (lvs-lab up --site ipv6) or beside
# the seed's (lvs-lab up --add-site ipv6). Schema: docs/pillar.md ("IPv6 sites")
lvs:
  site: ipv6
  lan:
    subnet: 2001:db8:24::/64
    gateway: 2001:db8:24::1
  router:
    id: v6-router
    kind: linux
    lan_interface: eth0
    wan_interface: wan0
    wan_address: 2001:db8:112::88/64
  directors:
    v6-director:
      address: 2001:db8:24::2
  realservers:
    v6-rs1:
      address: 2001:db8:24::21
    v6-rs2:
      address: 2001:db8:24::22
  services:
    web:
      vip: 2001:db8:24::88
      protocol: tcp
      port: 80
      scheduler: rr
    dns:
      vip: 2001:db8:24::89
      protocol: udp
      port: 53
      scheduler: rr
      check: {type: udp}
