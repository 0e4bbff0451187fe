# The two_vips site (same hosts, VIPs and weights) over other tunnels than ipip, for a
# network that drops IP protocol 4 between the directors and the real servers (public
# clouds, many provider networks): the directors wrap the web service's requests in GUE
# (UDP to port 6080 on every real server) and the dns service's in GRE (IP protocol 47,
# its own setting). Each real server opens the GUE port and brings up gre0 for the
# services it backs; the VIPs stay on tunl0; the MSS clamp fits GUE's 32 bytes.
# Lab: `lvs-lab up --site gue_gre`. Schema: docs/pillar.md (lvs:tunnel, a service's tunnel)
lvs:
  site: gue-gre                   # its name on the master (docs/sites.md)
  lan:
    subnet: 10.10.24.0/24
    gateway: 10.10.24.1
  router:
    id: router
    kind: linux
    lan_interface: eth0
    lan_address: 10.10.24.1
    wan_interface: wan0
    wan_address: 112.2.21.88/24     # the web VIP's public address is the router's own
  directors:
    director:
      address: 10.10.24.2
    director2:
      address: 10.10.24.3
  realservers:                      # the weight a real server has in every service ...
    rs1: {address: 10.10.24.21, weight: 1}
    rs2: {address: 10.10.24.22, weight: 2}
    rs3: {address: 10.10.24.23, weight: 3}
    rs4: {address: 10.10.24.24, weight: 4}
  ipvs:
    expire_quiescent_template: 0    # persistence keeps a drained backend's clients (default 1)
  tunnel:
    kind: gue                       # every service's, unless it says otherwise
    port: 6080                      # the real servers' GUE port (UDP)
  services:
    web:
      vip: 10.10.24.88
      public: 112.2.21.88
      protocol: tcp
      port: 80
      scheduler: wrr
      check: {type: http, path: /, expect: 200}
    dns:
      vip: 10.10.24.89
      public: 112.2.21.89           # the router holds it on wan0 (/32) and maps it
      protocol: udp
      port: 53
      scheduler: wrr
      check: {type: udp}
      tunnel: {kind: gre}           # this service's own encapsulation
      backends:                     # ... unless the service says otherwise
        rs2: {weight: 1}
        rs3: {}
        rs4: {weight: 2}
