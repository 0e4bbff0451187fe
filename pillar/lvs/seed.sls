# The seed's site (../shared/seed), corrected:
#  - rs3 is 10.10.24.23 (the seed lists RS2's address 10.10.24.22 twice);
#  - every host's gateway is the router's LAN address (the seed gives the director
#    192.168.1.1, which is on none of its subnets).
# Schema: docs/pillar.md
lvs:
  site: seed                   # its name on the master (docs/sites.md)
  lan:
    subnet: 10.10.24.0/24
    gateway: 10.10.24.1
  router:
    id: router
    kind: linux
    lan_interface: eth0
    lan_address: 10.10.24.1
    wan_interface: wan0
    wan_address: 112.2.21.88/24
  directors:
    director:
      address: 10.10.24.2
  realservers:
    rs1:
      address: 10.10.24.21
    rs2:
      address: 10.10.24.22
    rs3:
      address: 10.10.24.23
  services:
    web:
      vip: 10.10.24.88
      public: 112.2.21.88
      protocol: tcp
      port: 80
      scheduler: rr
