# Every minion of the site sees the whole topology; its role comes from it.
base:
  '*':
    - lvs.seed
