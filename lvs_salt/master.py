"""The master's part of backend health: the reactor and the ext_pillar.

.. code-block:: yaml

    # /etc/salt/master.d/lvs.conf (what :func:`config` returns)
    reactor:
      - 'salt/beacon/*/lvs_backend/*': [salt://reactor/lvs.sls]
      - 'salt/beacon/*/lvs_hosts/*': [salt://reactor/lvs.sls]
    ext_pillar:
      - lvs_health: {}

``salt://reactor/lvs.sls`` is ``salt/reactor/lvs.sls`` of the checkout (the file roots
of ``lvs_salt.fileserver``); the runner ``lvs`` and the ext_pillar come with the pack
installed on the master (``pip install salt-lvs-tun``).
"""

REACTOR_SLS = "salt://reactor/lvs.sls"


def config():
    """The master settings for the beacons' reactor and the health ext_pillar."""
    return {
        "reactor": [
            {"salt/beacon/*/lvs_backend/*": [REACTOR_SLS]},
            {"salt/beacon/*/lvs_hosts/*": [REACTOR_SLS]},
        ],
        "ext_pillar": [{"lvs_health": {}}],
    }
