{#- The pack's reactor (lvs_salt.master.config()). A minion's event tag and payload are
    its own words: only the minion id in the tag is passed on, as a name to verify; the
    runner asks that minion (lvs.health) or every director (lvs.hosts) through
    authenticated calls, and their answers decide. Nothing of the payload is used. #}
{%- set parts = tag.split('/') %}
{%- if parts | length >= 4 and parts[0] == 'salt' and parts[1] == 'beacon' %}
{%- if parts[3] == 'lvs_backend' %}
lvs-health:
  runner.lvs.health:
    - args:
      - minion: {{ parts[2] | json }}
{%- elif parts[3] == 'lvs_hosts' %}
lvs-hosts:
  runner.lvs.hosts: []
{%- endif %}
{%- endif %}
