"""Beacon on each director: can it still reach every real server on the LAN?

What a real server cannot report itself: a host that is dead, frozen or cut off sends
no event. Each round (``interval``, 1 s by default) the director sends one ICMP echo to
each real server's LAN address (the path its tunnelled requests take), all at once,
with a short timeout (``probe_timeout``, 0.4 s; not ``timeout``, which Salt's
``beacons.add`` takes as its own wait for the minion's answer); results are damped (``fall`` misses in a row,
2 by default, make a host unreachable; ``rise`` answers, 2, make it reachable again).
The damped view is kept in the director's cache for ``lvs_health.reachability``.

It fires on a change only (and every ``heartbeat`` seconds). Event tag:
``salt/beacon/<director id>/lvs_hosts/``; payload (informative only: the runner asks
every director for its view through an authenticated call)::

    {"reachable": {"rs1": true, "rs2": false}, "changed": ["rs2"]}

Configuration (``salt/lvs/director.sls`` sets it with ``beacon.present``):

.. code-block:: yaml

    beacons:
      lvs_hosts:
        - interval: 1
"""

import time

import salt.utils.beacons

import lvstun.health
import lvstun.probe
import lvstun.records
import lvstun.site
from lvstun.fresh import fresh

fresh(lvstun.health)
fresh(lvstun.probe)
fresh(lvstun.site)
fresh(lvstun.records)

__virtualname__ = "lvs_hosts"
SETTINGS = {"interval", "probe_timeout", "rise", "fall", "heartbeat", "disable_during_state_run", "enabled"}


def __virtual__():
    return __virtualname__


def validate(config):
    conf = salt.utils.beacons.list_to_dict(config) if isinstance(config, list) else config
    if not isinstance(conf, dict):
        return False, "lvs_hosts: the configuration is a list of settings"
    unknown = set(conf) - SETTINGS
    if unknown:
        return False, f"lvs_hosts: unknown setting(s) {sorted(unknown)}"
    return True, "valid"


def beacon(config):
    conf = salt.utils.beacons.list_to_dict(config) if isinstance(config, list) else (config or {})
    try:
        site = lvstun.site.parse({lvstun.site.PILLAR_KEY: __salt__["lvs_site.tree"](applied=True)})
    except lvstun.site.SiteError:
        return []
    if site.role_of(__opts__["id"]) != "director":
        return []
    check = {"type": "ping", "port": 0, "timeout": float(conf.get("probe_timeout", 0.4))}
    results = lvstun.probe.run_all({h.minion_id: (check, h.address) for h in site.realservers})
    state = __context__.setdefault("lvs_hosts", {"dampers": {}, "sent_at": 0})
    changed, view = [], {}
    for minion, (ok, _) in sorted(results.items()):
        damper = lvstun.health.Damper.load(int(conf.get("rise", 2)), int(conf.get("fall", 2)),
                                    state["dampers"].get(minion, {}))
        if damper.feed(ok):
            changed.append(minion)
        state["dampers"][minion] = damper.dump()
        view[minion] = damper.up
    now = time.time()
    if not changed and now - state["sent_at"] < float(conf.get("heartbeat", lvstun.health.HEARTBEAT)):
        return []
    state["sent_at"] = now
    lvstun.records.store(__opts__, lvstun.records.HOSTS_REACH, {"at": now, "reachable": view})
    return [{"reachable": view, "changed": changed}]
