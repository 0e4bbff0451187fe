{#- The pack's entry point: validate the site, then the role of this minion in it. #}
lvs-site-valid:
  lvs_site.valid: []
