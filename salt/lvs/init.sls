{#- The pack's entry point (`salt '*' state.apply`): check the site, then apply this
    minion's role in it. When the site's pillar is invalid, only the failing check is
    rendered, so nothing changes on any minion. #}
{%- set errors = salt['lvs_site.validate']() %}
{%- if errors %}
include:
  - lvs.site
{%- else %}
{%- set role = salt['lvs_site.role']() %}
include:
  - lvs.site
  - lvs.minion
{%- if role %}
  - lvs.{{ role }}
{%- endif %}
{%- endif %}
