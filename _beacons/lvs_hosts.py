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

import lvstun.beaconconf
import lvstun.health
import lvstun.probe
import lvstun.records
from lvstun.fresh import fresh

fresh(lvstun.beaconconf)
fresh(lvstun.health)
fresh(lvstun.probe)
fresh(lvstun.records)

__virtualname__ = "lvs_hosts"
SETTINGS = {"probe_timeout": lvstun.beaconconf.Setting(0.4), "rise": lvstun.beaconconf.Setting(2, integer=True),
            "fall": lvstun.beaconconf.Setting(2, integer=True),
            "heartbeat": lvstun.beaconconf.Setting(lvstun.health.HEARTBEAT)}


def __virtual__():
    return __virtualname__


def validate(config):
    return lvstun.beaconconf.validate(__virtualname__, config, SETTINGS)


def beacon(config):
    conf = lvstun.beaconconf.read(config, SETTINGS)
    site = lvstun.beaconconf.applied_site(__salt__)
    if site is None or site.role_of(__opts__["id"]) != "director":
        return []
    check = {"type": "ping", "port": 0, "timeout": float(conf["probe_timeout"])}
    results = lvstun.probe.run_all({h.minion_id: (check, h.address) for h in site.realservers})
    state = __context__.setdefault("lvs_hosts", {"dampers": {}, "sent_at": 0})
    changed, view = [], {}
    for minion, (ok, _) in sorted(results.items()):
        damper = lvstun.health.Damper.load(conf["rise"], conf["fall"],
                                    state["dampers"].get(minion, {}))
        if damper.feed(ok):
            changed.append(minion)
        state["dampers"][minion] = damper.dump()
        view[minion] = damper.up
    now = time.time()
    if not changed and now - state["sent_at"] < float(conf["heartbeat"]):
        return []
    state["sent_at"] = now
    lvstun.records.store(__opts__, lvstun.records.HOSTS_REACH, {"at": now, "reachable": view})
    return [{"reachable": view, "changed": changed}]
