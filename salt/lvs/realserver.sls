{#- A TUN real server: its LAN address and gateway, the VIPs on the ipip device with
    ARP hidden (arp_ignore/arp_announce) and rp_filter off, the GUE ports and gre0 of
    the services wrapped so, and the VIP source routes that clamp the TCP MSS to what
    fits in one tunnelled packet. #}
{%- set cfg = salt['lvs_site.config']() %}
include:
  - lvs.site

lvs-realserver-tunnel:
  ipip.tunnel_present:
    - name: {{ cfg.device | json }}
    - vips: {{ cfg.vips | json }}
    - lan_interface: {{ cfg.interface | json }}
    - decap: {{ cfg.decap | json }}
    - require:
      - lvs_site: lvs-site-valid

lvs-realserver-addresses:
  lvs_net.addresses:
    - addresses: {{ cfg.addresses | json }}
    - require:
      - lvs_site: lvs-site-valid

lvs-realserver-gateway:
  lvs_net.default_route:
    - gateway: {{ cfg.gateway | json }}
    - require:
      - lvs_net: lvs-realserver-addresses

lvs-realserver-sysctls:
  lvs_net.sysctls:
    - sysctls: {{ cfg.sysctls | json }}
    - require:
      - lvs_site: lvs-site-valid

lvs-realserver-mss-routes:
  lvs_net.mss_routes:
    - vip_routes: {{ cfg.vip_routes | json }}
    - require:
      - ipip: lvs-realserver-tunnel
      - lvs_net: lvs-realserver-gateway

{#- Backend health: every service of this host checked on its VIP, and the TUN setup,
    each second (not during a state run); events on change (and a heartbeat) for the
    master's reactor. #}
lvs-realserver-health-beacon:
  beacon.present:
    - name: lvs_backend
    - save: True
    - interval: 1
    - heartbeat: {{ cfg.heartbeat | json }}
    # A highstate adds and removes VIPs: no checks until it is over.
    - disable_during_state_run: True
    - require:
      - lvs_net: lvs-realserver-mss-routes
      - lvs_net: lvs-realserver-sysctls
