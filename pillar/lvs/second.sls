# A second, small site beside the seed's, served by the same master (docs/sites.md):
# one director, two real servers, on the seed's own addresses (its own network: the
# lab gives it a LAN bridge and a client of its own). Minion ids are the site's alone.
# Schema: docs/pillar.md
lvs:
  site: second
  lan:
    subnet: 10.10.24.0/24
    gateway: 10.10.24.1
  router:
    id: b-router
    kind: linux
    lan_interface: eth0
    lan_address: 10.10.24.1
    wan_interface: wan0
    wan_address: 112.2.21.88/24
  directors:
    b-director:
      address: 10.10.24.2
  realservers:
    b-rs1:
      address: 10.10.24.21
    b-rs2:
      address: 10.10.24.22
  services:
    web:
      vip: 10.10.24.88
      public: 112.2.21.88
      protocol: tcp
      port: 80
      scheduler: rr
