{#- Survive reboots: the minion re-applies its highstate when it starts, so addresses,
    sysctls, the IPVS table and the router's NAT come back from the pillar (the kernel
    keeps none of them). #}
lvs-minion-startup-highstate:
  file.managed:
    - name: {{ salt['file.join'](salt['file.dirname'](opts['conf_file']), 'minion.d', 'lvs-pack.conf') }}
    - contents: |
        # Managed by the LVS pack (salt/lvs/minion.sls): re-apply the site at minion start.
        startup_states: highstate
    - makedirs: True
    - require:
      - lvs_site: lvs-site-valid
