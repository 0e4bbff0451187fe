# The seed's site with its real front router: a Cisco IOS device, managed through a
# salt-proxy minion (proxytype lvs_ios, netmiko over SSH) whose id is the router's id.
# The pack writes `ip nat inside source static 10.10.24.88 112.2.21.88` and
# `ip nat inside` / `ip nat outside` on the two interfaces; the device's addresses
# stay the operator's. The proxy's own pillar (`proxy:` host, credentials) is shown in
# docs/pillar.md. Schema: docs/pillar.md
lvs:
  site: seed-ios                   # its name on the master (docs/sites.md)
  lan:
    subnet: 10.10.24.0/24
    gateway: 10.10.24.1
  router:
    id: router
    kind: ios
    lan_interface: GigabitEthernet0/0   # ip nat inside
    lan_address: 10.10.24.1
    wan_interface: GigabitEthernet0/1   # ip nat outside
    wan_address: 112.2.21.88/24
    save: true                          # write memory after a change
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
