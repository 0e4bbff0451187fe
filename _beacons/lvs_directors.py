"""Beacon on a Linux router with several directors: which directors forward?

Each round (``interval``: the site's ``ha:interval``, 1 s) the router probes every
director at once (``lvs_directors.probe_all``: the site's service check sent through
that director alone) with the site's ``ha:timeout``; results are damped (``ha:fall``
failures in a row take a director out, and a director that fails is probed again at
once, so that takes one round; ``ha:rise`` passes, one per round, put it back). When the view
changes, the beacon records it and rewrites the group itself (``lvs_directors.apply``):
the data path fails over on the router alone, with the master up or down. The round
runs in a worker thread; the minion's loop waits for it at most fall x timeout + 0.2 s.

It fires on a change (and every ``heartbeat`` seconds). Event tag:
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
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as futures_wait

import salt.utils.beacons

import lvstun.drift
import lvstun.health
from lvstun.fresh import fresh

drift = fresh(lvstun.drift)
health = fresh(lvstun.health)

log = logging.getLogger(__name__)

__virtualname__ = "lvs_directors"
SETTINGS = {"interval", "heartbeat", "disable_during_state_run", "enabled"}


def __virtual__():
    return __virtualname__


def validate(config):
    conf = salt.utils.beacons.list_to_dict(config) if isinstance(config, list) else config
    if not isinstance(conf, dict):
        return False, "lvs_directors: the configuration is a list of settings"
    unknown = set(conf) - SETTINGS
    if unknown:
        return False, f"lvs_directors: unknown setting(s) {sorted(unknown)} (known: {sorted(SETTINGS)})"
    return True, "valid"


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
        damper = health.Damper.load(spec["rise"], spec["fall"], dampers.get(name, {}))
        if any([damper.feed(bool(ok)) for ok, _ in outcomes[name]]):
            changed.append(name)
        dampers[name] = damper.dump()
        view[name] = damper.up
    for gone in set(dampers) - set(view):
        del dampers[gone]
    due = bool(changed) or state.get("sent_at") is None or now - state["sent_at"] >= heartbeat
    return view, changed, due


def beacon(config):
    conf = salt.utils.beacons.list_to_dict(config) if isinstance(config, list) else (config or {})
    state = __context__.setdefault("lvs_directors", {})
    try:
        spec = __salt__["lvs_site.config"]().get("directors")
    except Exception:  # pylint: disable=broad-except  (an invalid site: nothing to do)
        return []
    if not spec:
        return []
    running = state.get("running")
    if running is None:
        if "pool" not in state:
            state["pool"] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lvs_directors")
        # Salt's dunders live in the loader's context: carry it over to the thread.
        up = {name: data.get("up", True) for name, data in state.get("dampers", {}).items()}
        running = state["running"] = state["pool"].submit(contextvars.copy_context().run, probe_round,
                                                          __salt__["lvs_directors.probe_all"], spec, up)
    futures_wait([running], timeout=float(spec["timeout"]) * int(spec["fall"]) + 0.2)
    if not running.done():
        return []  # collected at the next call; no new round meanwhile
    state["running"] = None
    try:
        outcomes = running.result()
    except Exception:  # pylint: disable=broad-except
        log.exception("lvs_directors: a probe round failed")
        return []
    now = time.time()
    view, changed, due = round_(spec, state, outcomes, now, float(conf.get("heartbeat", health.HEARTBEAT)))
    applied, error = [], None
    # While a director drains, every round: it leaves the group once it holds no bucket.
    if changed or state.get("applied_view") != view or __salt__["lvs_directors.drained"]():
        __salt__["lvs_directors.set_view"](view)
        try:
            applied = [drift.name(d) for d in __salt__["lvs_directors.apply"](spec)]
            state["applied_view"] = view
        except Exception as err:  # pylint: disable=broad-except  (reported; tried again next round)
            error = str(err)
            log.error("lvs_directors: could not rewrite the director group: %s", err)
    if not due and error is None:
        return []
    state["sent_at"] = now
    reasons = {name: outcomes[name][-1][1] for name in view}
    return [{"up": view, "changed": changed, "applied": applied, "error": error, "reasons": reasons}]
