{#- Every role requires this: the site's pillar is valid (every error by pillar path). #}
lvs-site-valid:
  lvs_site.valid: []
