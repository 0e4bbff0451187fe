"""Beacon on each real server: is every service the site gives it healthy here?

Each round (the beacon's ``interval``, 1 s by default) checks, for every service whose
backend (or sorry server) this minion is, that the service answers on its VIP from this
host (TCP connect, HTTP GET with the expected status, or a UDP answer: the service's
``check:`` in the pillar), and that the TUN setup is intact (``ipip.check``: tunnel up,
exactly the VIPs, ARP/rp_filter sysctls). The checks run at once with short timeouts,
so a round never blocks the minion for more than the longest timeout. Results are
damped per service (``rise``/``fall`` in a row). A round runs in a worker thread; the
beacon waits for it at most the longest check timeout plus 0.2 s (a slower round is
collected at the next call), so the minion's loop is never held longer than that.

It fires only when a damped state changes, and otherwise every ``heartbeat`` seconds
(10 by default). The damped state is also kept in the minion's cache, where
``lvs_health.report`` reads it for the runner.

Event tag: ``salt/beacon/<minion id>/lvs_backend/``. Payload (informative only: the
runner trusts neither tag nor payload, it asks the minion named in the tag through an
authenticated call)::

    {"services": {"web": {"healthy": true, "reason": "HTTP 200"}},   # "weight": n from a
                              # dynamic script; "alpha": true while down before its first rise
     "tunnel": [],            # ipip.check drifts, named ("tunl0 up", ...)
     "changed": ["web"]}      # empty on a heartbeat

Configuration (``salt/lvs/realserver.sls`` sets it with ``beacon.present``):

.. code-block:: yaml

    beacons:
      lvs_backend:
        - interval: 1
        - heartbeat: 10
"""

import contextvars
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as futures_wait

import lvstun.beaconconf
import lvstun.drift
import lvstun.health
import lvstun.probe
import lvstun.records
from lvstun.fresh import fresh

fresh(lvstun.beaconconf)
fresh(lvstun.drift)
fresh(lvstun.health)
fresh(lvstun.probe)
fresh(lvstun.records)

log = logging.getLogger(__name__)

__virtualname__ = "lvs_backend"
SETTINGS = {"heartbeat": lvstun.beaconconf.Setting(lvstun.health.HEARTBEAT)}


def __virtual__():
    return __virtualname__


def validate(config):
    return lvstun.beaconconf.validate(__virtualname__, config, SETTINGS)


def concerns(drift, check):
    """Whether a drift of the TUN setup breaks the service of ``check``: a drift about
    another VIP (one being added or removed) does not, nor a GUE port or gre0 of another
    kind of service, nor a GUE port the pack opened that no service uses any more."""
    kind, port = check.get("encap") or ("ipip", 0)
    if drift["kind"] in ("gue-port", "gue-port6"):
        return drift["want"] is not None and kind == "gue" and drift["object"] == str(port)
    if ".gre0." in drift["object"]:  # its sysctls
        return kind == "gre"
    if drift["object"] in ("gre0", "ip6gre0"):  # the device: wanted up (not put back down as it was)
        return kind == "gre" and drift["want"] in (True, "present")
    return not lvstun.drift.addresses(drift) or check["vip"] in lvstun.drift.addresses(drift)


def round_(cfg, state, now, heartbeat, tunnel_drifts, results):
    """One round's decision (pure): feed the dampers; return the event or None."""
    dampers, risen, sent = state.setdefault("dampers", {}), state.setdefault("risen", set()), \
        state.setdefault("weights", {})
    services, changed = {}, []
    for name, check in sorted(cfg["checks"].items()):
        ok, reason = results[name]
        weight = getattr(results[name], "weight", None) if check.get("dynamic") else None
        mine = [d for d in tunnel_drifts if concerns(d, check)]
        if mine:
            ok, reason = False, f"TUN setup: {'; '.join(sorted(map(lvstun.drift.name, mine)))}"
        # alpha: a backend new to this beacon (or back after a restart) starts down.
        damper = lvstun.health.Damper.load(check["rise"], check["fall"],
                                           dampers.get(name, {"up": not check.get("alpha")}))
        if damper.feed(ok):
            changed.append(name)
        dampers[name] = damper.dump()
        services[name] = {"healthy": damper.up, "reason": reason}
        if damper.up:
            risen.add(name)
        elif check.get("alpha") and name not in risen:
            services[name]["alpha"] = True  # down only because it has not passed yet: no hold
        if damper.up and weight is not None:
            services[name]["weight"] = weight
        if damper.up and sent.get(name) != services[name].get("weight"):
            changed.append(name)  # a dynamic weight changed
        sent[name] = services[name].get("weight")
    for gone in set(dampers) - set(services):
        del dampers[gone]
        risen.discard(gone)
        sent.pop(gone, None)
        changed.append(gone)
    if not changed and state.get("sent_at") is not None and now - state["sent_at"] < heartbeat:
        return None
    state["sent_at"] = now
    return {"services": services, "tunnel": sorted(map(lvstun.drift.name, tunnel_drifts)),
            "changed": sorted(set(changed))}


def _checks(cfg):
    """One round of checks (in a worker thread: pyroute2 runs its own asyncio loop,
    which cannot run inside the minion's): ``(tunnel drifts, {name: (ok, reason)})``."""
    try:
        drifts = __salt__["ipip.check"](cfg["vips"], device=cfg["device"], lan_interface=cfg["interface"],
                                        decap=cfg.get("decap"))
    except Exception as err:  # pylint: disable=broad-except
        drifts = [lvstun.drift.make("check-failed", "ipip.check", None, str(err))]
    return drifts, lvstun.probe.run_all({name: (check, check["vip"]) for name, check in cfg["checks"].items()})


def _collect(state, conf):
    """The event of the finished round, if any (None otherwise)."""
    running = state.get("running")
    if running is None or not running.done():
        return None
    state["running"] = None
    try:
        drifts, results = running.result()
    except Exception:  # pylint: disable=broad-except
        log.exception("lvs_backend: a round of checks failed")
        return None
    heartbeat = float(conf["heartbeat"])
    event = round_(state["cfg"], state, time.time(), heartbeat, drifts, results)
    if event is not None:
        lvstun.records.store(__opts__, lvstun.records.BACKEND_REPORT,
                             {"at": time.time(), "services": event["services"], "tunnel": event["tunnel"]})
    return event


def beacon(config):
    """Run a round of checks in a worker thread and wait for it at most the longest
    check timeout (plus 0.2 s); a round that takes longer is collected at the next call
    and no new one starts meanwhile: the minion's loop is never held longer than that."""
    conf = lvstun.beaconconf.read(config, SETTINGS)
    state = __context__.setdefault("lvs_backend", {})
    events = []
    if state.get("running") is not None:
        event = _collect(state, conf)
        if state.get("running") is not None:
            return []  # still running: wait for it, start nothing new
        events += [event] if event else []
    cfg = lvstun.beaconconf.applied_role(__salt__)  # None: an invalid site, nothing to check
    if cfg is None or cfg.get("role") != "realserver" or not cfg["checks"]:
        return events
    if "pool" not in state:
        state["pool"] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lvs_backend")
    state["cfg"] = cfg
    # Salt's dunders (__salt__, __opts__) live in the loader's context: carry it over.
    state["running"] = state["pool"].submit(contextvars.copy_context().run, _checks, cfg)
    budget = max(float(check["timeout"]) for check in cfg["checks"].values()) + 0.2
    futures_wait([state["running"]], timeout=budget)
    event = _collect(state, conf)
    return events + ([event] if event else [])
