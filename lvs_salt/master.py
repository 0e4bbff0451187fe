"""The master's part of backend health: the reactor and the ext_pillar.

.. code-block:: yaml

    # /etc/salt/master.d/lvs.conf (what :func:`config` returns)
    reactor:
      - 'salt/beacon/*/lvs_backend/*': [<lvs_salt>/reactor.sls]
      - 'salt/beacon/*/lvs_hosts/*': [<lvs_salt>/reactor.sls]
      - 'salt/beacon/*/lvs_directors/*': [<lvs_salt>/reactor.sls]
      - 'lvs/hook/*': [<lvs_salt>/hook.sls]       # with config(hook_command=[...])
    ext_pillar:
      - lvs_health: {}
    lvs_hook_command: [/usr/local/bin/lvs-notify]  # the runner's hooks run it

The reactor SLS is named by its path in the installed package (or the checkout), not
by ``salt://``: Salt fetches a ``salt://`` reaction through the file server for every
event (16 ms here, 50 ms on a busy master, against 2 ms for a local file), which under
a flood of events was the master's bottleneck. The runner ``lvs``, the gate module
``lvs_reactor`` and the ext_pillar come with the pack installed on the master
(``pip install salt-lvs-tun``).
"""

import os

REACTOR_SLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reactor.sls")
HOOK_SLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hook.sls")


def config(hook_command=None):
    """The master settings for the beacons' reactor and the health ext_pillar; with
    ``hook_command`` (a list: a program and its first arguments), the runner's hooks run
    it (``hook.sls``, docs/hooks.md)."""
    settings = {
        "reactor": [
            {"salt/beacon/*/lvs_backend/*": [REACTOR_SLS]},
            {"salt/beacon/*/lvs_hosts/*": [REACTOR_SLS]},
            {"salt/beacon/*/lvs_directors/*": [REACTOR_SLS]},
        ],
        "ext_pillar": [{"lvs_health": {}}],
    }
    if hook_command:
        settings["reactor"].append({"lvs/hook/*": [HOOK_SLS]})
        settings["lvs_hook_command"] = [str(part) for part in hook_command]
    return settings
