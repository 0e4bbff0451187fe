{#- The pack's reactor (lvs_salt.master.config(), which names this file by its path). A minion's event tag and payload are
    its own words: only the minion id in the tag is passed on, as a name to verify; the
    runner asks that minion (lvs.health), its site's directors (lvs.hosts) or its site's
    router (lvs.directors) through authenticated calls, and their answers decide. Nothing of the payload is used.
    The gate (lvs_reactor.job, lvstun.gate) starts no job for a name that is no real
    server, nor a second queued one for the same minion: a flood costs renders only. #}
{%- set job = salt['lvs_reactor.job'](tag) %}
{%- if job.get('fun') == 'lvs.health' %}
lvs-health:
  runner.lvs.health:
    - args:
      - minion: {{ job['minion'] | json }}
{%- elif job.get('fun') == 'lvs.hosts' %}
lvs-hosts:
  runner.lvs.hosts:
    - args:
      - minion: {{ job['minion'] | json }}
{%- elif job.get('fun') == 'lvs.directors' %}
lvs-directors:
  runner.lvs.directors:
    - args:
      - minion: {{ job['minion'] | json }}
{%- endif %}
