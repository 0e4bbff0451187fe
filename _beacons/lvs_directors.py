"""Beacon on a Linux router with several directors: which directors forward?

A thread of the beacon (``lvstun.beaconthread``) probes every director at once each
``ha:interval`` seconds (0.5 by default, down to 0.1: Salt's own beacon loop runs once a
second at most) with ``lvs_directors.probe_all`` (the site's service check sent
through that director alone) and the site's ``ha:timeout``; results are damped
(``ha:fall`` failures in a row take a director out, and a director that fails is probed
again at once, so that takes one round; ``ha:rise`` passes, one per round, put it
back). When the view changes, the thread records it and rewrites the group itself
(``lvs_directors.apply``): the data path fails over on the router alone, with the
master up or down, without waiting for the minion's loop. The thread stops when the
beacon is deleted (``close``) or has not been called for ``STALE`` seconds (disabled,
the minion stopping).

The beacon's calls (``interval``, 1 s) return what the thread saw: an event on a
change (and every ``heartbeat`` seconds). Event tag:
``salt/beacon/<router id>/lvs_directors/``; payload (informative)::

    {"up": {"director": true, "director2": false}, "changed": ["director2"],
     "applied": ["group 4200"], "error": null,
     "reasons": {"director": "HTTP 200", "director2": "http 10.10.24.88:80: timed out"}}

Configuration (``salt/lvs/router.sls`` sets it with ``beacon.present``):

.. code-block:: yaml

    beacons:
      lvs_directors:
        - interval: 1
"""

import contextvars
import logging
import time

import lvstun.beaconconf
import lvstun.beaconthread
import lvstun.drift
import lvstun.health
from lvstun.fresh import fresh

fresh(lvstun.beaconconf)
fresh(lvstun.beaconthread)
fresh(lvstun.drift)
fresh(lvstun.health)

log = logging.getLogger(__name__)

__virtualname__ = "lvs_directors"
SETTINGS = {"heartbeat": lvstun.beaconconf.Setting(lvstun.health.HEARTBEAT)}
STALE = 10  # seconds without a call of the beacon after which its thread stops


def __virtual__():
    return __virtualname__


def validate(config):
    return lvstun.beaconconf.validate(__virtualname__, config, SETTINGS)


def probe_round(probe_all, spec, up):
    """One round of probes: ``{minion id: [(ok, reason), ...]}``. A director that is up
    and fails is probed again at once, up to ``fall`` times in all, so a dead one is out
    within one round (fall x timeout) instead of ``fall`` rounds; one that is down
    needs ``rise`` rounds to come back."""
    first = probe_all(spec)
    outcomes = {name: [result] for name, result in first.items()}
    suspects = [name for name, (ok, _) in first.items() if not ok and up.get(name, True)]
    for _ in range(int(spec["fall"]) - 1):
        if not suspects:
            break
        again = probe_all(spec, only=suspects)
        for name in suspects:
            outcomes[name].append(again[name])
        suspects = [name for name in suspects if not again[name][0]]
    return outcomes


def round_(spec, state, outcomes, now, heartbeat):
    """One round's decision (pure): feed the dampers with ``outcomes`` ({minion id:
    [(ok, reason), ...]}); return ``(view, changed, due)``: ``due`` when an event is due."""
    dampers = state.setdefault("dampers", {})
    changed, view = [], {}
    for name in sorted(spec["members"]):
        damper = lvstun.health.Damper.load(spec["rise"], spec["fall"], dampers.get(name, {}))
        if any([damper.feed(bool(ok)) for ok, _ in outcomes[name]]):
            changed.append(name)
        dampers[name] = damper.dump()
        view[name] = damper.up
    for gone in set(dampers) - set(view):
        del dampers[gone]
    due = bool(changed) or state.get("sent_at") is None or now - state["sent_at"] >= heartbeat
    return view, changed, due


def _loop(worker):
    """The thread: a round of probes every ``ha:interval`` seconds, and its decision."""
    state = {}
    for (pillar_spec, heartbeat), context in worker.rounds():
        started, spec = time.monotonic(), pillar_spec
        try:
            spec = context.run(_applied, pillar_spec)  # Salt's dunders live in that context
            event = context.run(_round, state, spec, heartbeat)
        except Exception:  # pylint: disable=broad-except
            log.exception("lvs_directors: a probe round failed")
        else:
            if event:
                worker.report(event)
        worker.sleep(started + float(spec["interval"]) - time.monotonic())


def _applied(pillar_spec):
    """The group as the last highstate gave it (the in-memory pillar may be older)."""
    return __salt__["lvs_directors.spec"]() or pillar_spec


def _round(state, spec, heartbeat):
    up = {name: data.get("up", True) for name, data in state.get("dampers", {}).items()}
    return _decide(state, spec, probe_round(__salt__["lvs_directors.probe_all"], spec, up), heartbeat)


def _decide(state, spec, outcomes, heartbeat):
    """Feed one round to the dampers, rewrite the group when the view changed (or a
    director drains), and return the event due, if any."""
    now = time.time()
    view, changed, due = round_(spec, state, outcomes, now, heartbeat)
    reasons = {name: outcomes[name][-1][1] for name in view}
    applied, error = [], None
    # While a director drains or joins, every round: it leaves the group once it holds no
    # bucket, or takes its full weight once the kernel has marked the busy buckets.
    if changed or state.get("applied_view") != view or __salt__["lvs_directors.settling"]():
        __salt__["lvs_directors.set_view"](view, reasons)
        try:
            # The site's group as the state last wrote it, read under the state's lock: a
            # round that began before a highstate changed the group never puts the old one back.
            applied = [lvstun.drift.name(d) for d in __salt__["lvs_directors.apply"]()]
            state["applied_view"] = view
        except Exception as err:  # pylint: disable=broad-except  (reported; tried again next round)
            error = str(err)
            log.error("lvs_directors: could not rewrite the director group: %s", err)
    if changed:
        log.warning("lvs_directors: %s", {name: ("up: " if view[name] else "down: ") + outcomes[name][-1][1]
                                          for name in changed})
    if not due and error is None:
        return None
    state["sent_at"] = now
    return {"up": view, "changed": changed, "applied": applied, "error": error, "reasons": reasons}


def close(config):  # pylint: disable=unused-argument
    """Salt calls it when the beacon is deleted: the thread ends, its round finished."""
    worker = __context__.get("lvs_directors")
    if worker is not None:
        worker.stop()


def beacon(config):
    """Keep the probing thread going with the newest site; return its events."""
    conf = lvstun.beaconconf.read(config, SETTINGS)
    worker = __context__.get("lvs_directors")
    if worker is None:
        worker = __context__["lvs_directors"] = lvstun.beaconthread.BeaconThread("lvs_directors", _loop, STALE)
    cfg = lvstun.beaconconf.applied_role(__salt__)  # None: an invalid site, keep the last good probes
    spec = cfg.get("directors") if cfg is not None else False
    settings = None if spec is False else (spec, float(conf["heartbeat"]))
    worker.keep(settings, contextvars.copy_context(), stop=spec is None or spec == {})
    return worker.reports()
