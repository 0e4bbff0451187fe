{#- A host that leaves the site: `salt HOST state.apply lvs.clean` takes off exactly what
    the pack put on it, in reverse order, and touches nothing else. It reads no site
    pillar (the host may no longer be in it): what to undo comes from the host's own
    records (the IPVS services its ipvs.managed created; `host-originals`: sysctls and
    the default route as they were, addresses it added, the MSS table). Running it
    again changes nothing. Take the host out of the pillar first (and apply the site),
    or the next highstate puts it all back. #}
{%- set startup = salt['file.join'](salt['file.dirname'](opts['conf_file']), 'minion.d', 'lvs-pack.conf') %}

lvs-clean-startup-highstate:
  file.absent:
    - name: {{ startup }}

{%- for beacon in ['lvs_backend', 'lvs_hosts', 'lvs_paths', 'lvs_directors'] %}

lvs-clean-beacon-{{ beacon }}:
  beacon.absent:
    - name: {{ beacon }}
    - save: True
{%- endfor %}

{#- A director's Prometheus exporter: stopped, its view forgotten. #}
lvs-clean-exporter:
  lvs_exporter.absent: []

{#- A director's services: deleted (the router no longer sends it the VIPs' flows). #}
{%- if salt['file.file_exists']('/proc/net/ip_vs') %}

lvs-clean-ipvs:
  ipvs.owned_absent:
    - name: lvs-site
    - require:
      - beacon: lvs-clean-beacon-lvs_hosts
      - beacon: lvs-clean-beacon-lvs_paths

{#- A director of several: the connection sync daemons the pack started. #}
lvs-clean-sync:
  ipvs.sync_daemons_absent: []
{%- endif %}

{#- A Linux router of several directors: its resilient group, probe rules and tables. #}
{%- if 'lvs_directors.check' in salt %}

lvs-clean-director-group:
  lvs_directors.group:
    - spec: null
    - require:
      - beacon: lvs-clean-beacon-lvs_directors
{%- endif %}

{#- A real server's VIPs off the tunnel, before ARP stops hiding them (an IPv6 site's
    off ip6tnl0, a site's own device's off it, and that device deleted). #}
lvs-clean-tunnel:
  ipip.tunnel_absent:
    - name: tunl0
    - require:
      - beacon: lvs-clean-beacon-lvs_backend

lvs-clean-tunnel6:
  ipip.tunnel_absent:
    - name: ip6tnl0
    - decap: false
    - require:
      - beacon: lvs-clean-beacon-lvs_backend

{#- A site's own tunnel device (tunnel:device), as the host's records name it. #}
{%- set recorded = salt['ipip.devices']() if 'ipip.devices' in salt else [] %}
{%- set own_devices = recorded | reject('in', ['tunl0', 'ip6tnl0']) | list %}
{%- for device in own_devices %}

lvs-clean-tunnel-{{ device }}:
  ipip.tunnel_absent:
    - name: {{ device | json }}
    - decap: false
    - require:
      - beacon: lvs-clean-beacon-lvs_backend
{%- endfor %}

{#- A Linux router's NAT table (its ECMP routes go with the network below). #}
{%- if 'nftnat.check_absent' in salt %}

lvs-clean-nat:
  nftnat.absent:
    - name: lvs_nat
{%- endif %}

{#- Addresses the pack added (a director's VIPs, a router's public addresses), the MSS
    rules and routes, the routes the pack owns, then the default route and sysctls as
    they were. #}
lvs-clean-network:
  lvs_net.cleaned:
    - require:
      - ipip: lvs-clean-tunnel
      - ipip: lvs-clean-tunnel6
{%- for device in own_devices %}
      - ipip: lvs-clean-tunnel-{{ device }}
{%- endfor %}
{%- if salt['file.file_exists']('/proc/net/ip_vs') %}
      - ipvs: lvs-clean-ipvs
{%- endif %}
{%- if 'nftnat.check_absent' in salt %}
      - nftnat: lvs-clean-nat
{%- endif %}
{%- if 'lvs_directors.check' in salt %}
      - lvs_directors: lvs-clean-director-group
{%- endif %}
