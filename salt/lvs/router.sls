{#- The front router. Kind linux: its LAN and WAN addresses plus every public address
    it maps, forwarding on, the 1:1 NAT public <-> VIP in the nftables table `lvs_nat`,
    which the pack owns alone, and with several directors every VIP routed to the
    resilient group of the live directors (lvs_directors).
    Kind ios (a salt-proxy of proxytype lvs_ios): `ip nat inside source static VIP
    PUBLIC` per pair, `ip nat inside|outside` on its interfaces, with several directors
    VIP routes tracked by an IP SLA probe of each director; only the lines the pack owns
    are ever removed. #}
{%- set cfg = salt['lvs_site.config']() %}
include:
  - lvs.site
{%- if cfg.kind == 'linux' %}

lvs-router-addresses:
  lvs_net.addresses:
    - addresses: {{ cfg.addresses | json }}
    - require:
      - lvs_site: lvs-site-valid

lvs-router-sysctls:
  lvs_net.sysctls:
    - sysctls: {{ cfg.sysctls | json }}
    - require:
      - lvs_site: lvs-site-valid

lvs-router-routes:
  lvs_net.owned_routes:
    - routes: {{ cfg.routes | json }}
    - require:
      - lvs_net: lvs-router-addresses
      - lvs_directors: lvs-router-directors

{#- Several directors: every VIP routed to a resilient group of the directors that the
    router's own probes find forwarding (the lvs_directors beacon rewrites the group
    when one dies or returns, without the master). One director: no group. #}
lvs-router-directors:
  lvs_directors.group:
    - spec: {{ cfg.directors | json }}
    - require:
      - lvs_net: lvs-router-addresses
{%- if cfg.directors %}

lvs-router-directors-beacon:
  beacon.present:
    - name: lvs_directors
    - save: True
    - interval: 1  {#- collects its thread's events; the probes run every ha:interval #}
    - require:
      - lvs_directors: lvs-router-directors
{%- else %}

lvs-router-directors-beacon:
  beacon.absent:
    - name: lvs_directors
    - save: True
{%- endif %}

lvs-router-nat:
  nftnat.managed:
    - name: {{ cfg.nat.table | json }}
    - wan_interface: {{ cfg.nat.wan_interface | json }}
    - mappings: {{ cfg.nat.mappings | json }}
    - require:
      - lvs_net: lvs-router-addresses
      - lvs_net: lvs-router-sysctls
{%- else %}

{#- kind ios: this minion is the router's salt-proxy (proxytype lvs_ios). #}
lvs-router-nat:
  iosnat.managed:
    - nat: {{ cfg.nat | json }}
    - routes: {{ cfg.routes | json }}
    - tracking: {{ cfg.tracking | json }}
    - save: {{ cfg.save | json }}
    - require:
      - lvs_site: lvs-site-valid
{%- endif %}
