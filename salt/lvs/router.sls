{#- The front router (kind linux): its LAN and WAN addresses plus every public address
    it maps, forwarding on, the 1:1 NAT public <-> VIP in the nftables table `lvs_nat`,
    which the pack owns alone, and with several directors an ECMP route per VIP. #}
{%- set cfg = salt['lvs_site.config']() %}
include:
  - lvs.site
{%- if cfg.kind == 'linux' %}

lvs-router-network:
  lvs_net.configured:
    - addresses: {{ cfg.addresses | json }}
    - sysctls: {{ cfg.sysctls | json }}
    - routes: {{ cfg.routes | json }}
    - require:
      - lvs_site: lvs-site-valid

lvs-router-nat:
  nftnat.managed:
    - name: {{ cfg.nat.table }}
    - wan_interface: {{ cfg.nat.wan_interface }}
    - mappings: {{ cfg.nat.mappings | json }}
    - require:
      - lvs_net: lvs-router-network
{%- else %}

lvs-router-kind:
  test.fail_without_changes:
    - name: "router kind {{ cfg.kind }} is managed through its proxy minion, not here"
{%- endif %}
