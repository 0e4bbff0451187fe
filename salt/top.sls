# Every minion gets lvs; its role comes from the site's pillar.
base:
  '*':
    - lvs
