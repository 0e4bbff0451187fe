{#- The pack's entry point (`salt '*' state.apply`): check the site, then apply this
    minion's role in it. When the site's pillar is invalid, only the failing check is
    rendered, so nothing changes on any minion. #}
{%- set errors = salt['lvs_site.validate']() %}
{%- if errors %}
include:
  - lvs.site
{%- else %}
{%- set role = salt['lvs_site.role']() %}
{#- A salt-proxy (the ios router) shares its config folder with other proxies of its
    host: no startup highstate there (the device keeps its saved config). #}
{%- set is_proxy = opts.get('proxy') is mapping and opts['proxy'].get('proxytype') %}
include:
  - lvs.site
{%- if not is_proxy %}
  - lvs.minion
{%- endif %}
{%- if role %}
  - lvs.{{ role }}
{%- endif %}
{%- endif %}
