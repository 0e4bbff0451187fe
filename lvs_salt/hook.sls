{#- The runner's hooks (lvs/hook/..., lvstun.hooks; docs/hooks.md) run the master's
    `lvs_hook_command` (a list: the program and its first arguments), with the hook's
    tag, service (or director), backend and reason as four more arguments and all of its
    data as JSON in LVS_HOOK. Only a hook the lvs runner signed runs it: any minion can
    put any tag and payload on the master's bus (lvs_reactor.hook says which are the
    runner's). No shell: the arguments are passed as they are. #}
{%- set hook = salt['lvs_reactor.hook'](tag, data) %}
{%- set command = opts.get('lvs_hook_command') %}
{%- if hook and command %}
lvs-hook-command:
  runner.salt.cmd:
    - args:
      - fun: cmd.run
      - cmd: {{ (command + [hook['tag'], hook.get('service') or hook.get('director') or '', hook.get('backend') or '', hook.get('reason') or '']) | json }}
      - python_shell: False
      - env: {{ {'LVS_HOOK': hook | json} | json }}
{%- endif %}
