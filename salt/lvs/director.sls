{#- The LVS director: its LAN address and the VIPs (on its LAN NIC when it is the only
    director: it answers ARP for them; on lo with ARP hidden when there are several:
    the router spreads the flows), the site's gateway, forwarding off, and the IPVS
    table: every service with a tunnel (ipip) destination per real server, weighted by
    the pillar and the health record (down or in maintenance: 0). Removed backends
    are drained. #}
{%- set cfg = salt['lvs_site.config']() %}
include:
  - lvs.site

lvs-director-ip-vs-module:
  kmod.present:
    - name: ip_vs
    - require:
      - lvs_site: lvs-site-valid

lvs-director-addresses:
  lvs_net.addresses:
    - addresses: {{ cfg.addresses | json }}
    - require:
      - lvs_site: lvs-site-valid

lvs-director-gateway:
  lvs_net.default_route:
    - gateway: {{ cfg.gateway | json }}
    - require:
      - lvs_net: lvs-director-addresses

lvs-director-sysctls:
  lvs_net.sysctls:
    - sysctls: {{ cfg.sysctls | json }}
    - require:
      - kmod: lvs-director-ip-vs-module

{#- The table's weights (and the metrics' view) are computed when the state runs, not
    here: the health record changes while a highstate runs (docs/health.md). #}
lvs-director-ipvs:
  lvs_health.table:
    - name: lvs-site
    - remove: drain
    - require:
      - lvs_net: lvs-director-addresses
      - lvs_net: lvs-director-sysctls

{#- The VIPs after the table: a new VIP takes traffic once its service exists, and a
    VIP whose service this highstate deleted (idle) goes in the same highstate. #}
lvs-director-vips:
  lvs_net.director_vips:
    - vips: {{ cfg.vips | json }}
    - require:
      - lvs_health: lvs-director-ipvs

{%- if cfg.sync %}

{#- Several directors: each syncs its connections to the others (master) and keeps
    theirs (backup), so a flow the router moves to another director keeps its real
    server. #}
lvs-director-sync:
  ipvs.sync_daemons:
    - interface: {{ cfg.sync.interface | json }}
    - sync_id: {{ cfg.sync.sync_id | json }}
{%- if cfg.sync.group %}
    - group: {{ cfg.sync.group | json }}
{%- endif %}
    - require:
      - kmod: lvs-director-ip-vs-module
      - lvs_net: lvs-director-addresses
{%- else %}

{#- One director: no sync (the daemons the pack started for a larger site stop). #}
lvs-director-sync:
  ipvs.sync_daemons_absent:
    - require:
      - kmod: lvs-director-ip-vs-module
{%- endif %}

{#- Prometheus metrics of the IPVS table under the site's names (docs/monitoring.md). #}
lvs-director-metrics:
{%- if cfg.metrics %}
  lvs_health.exporter:
    - port: {{ cfg.metrics.port | json }}
    - address: {{ cfg.metrics.address | json }}
    - subnet: {{ cfg.metrics.subnet | json }}
    - require:
      - lvs_health: lvs-director-ipvs
{%- else %}
  lvs_exporter.absent: []
{%- endif %}

{#- Dead, frozen or cut-off real servers: one ICMP echo to each every second. #}
lvs-director-hosts-beacon:
  beacon.present:
    - name: lvs_hosts
    - save: True
    - interval: 1
    - probe_timeout: 0.4
    - require:
      - lvs_health: lvs-director-ipvs

{#- Every backend checked through its tunnel, as IPVS forwards clients; one that fails
    is taken out of this director's table at once, master or no master
    (docs/health.md). #}
lvs-director-paths-beacon:
  beacon.present:
    - name: lvs_paths
    - save: True
    - interval: 1
    - require:
      - lvs_health: lvs-director-ipvs
