"""Beacon on each real server: is every service the site gives it healthy here?

Each round (the beacon's ``interval``, 1 s by default) checks, for every service whose
backend (or sorry server) this minion is, that the service answers on its VIP from this
host (TCP connect, HTTP GET with the expected status, or a UDP answer: the service's
``check:`` in the pillar), and that the TUN setup is intact (``ipip.check``: tunnel up,
exactly the VIPs, ARP/rp_filter sysctls). The checks run at once with short timeouts,
so a round never blocks the minion for more than the longest timeout. Results are
damped per service (``rise``/``fall`` in a row).

It fires only when a damped state changes, and otherwise every ``heartbeat`` seconds
(10 by default). The damped state is also kept in the minion's cache, where
``lvs_health.report`` reads it for the runner.

Event tag: ``salt/beacon/<minion id>/lvs_backend/``. Payload (informative only: the
runner trusts neither tag nor payload, it asks the minion named in the tag through an
authenticated call)::

    {"services": {"web": {"healthy": true, "reason": "HTTP 200"}},
     "tunnel": [],            # ipip.check drifts ("tunl0 down", ...)
     "changed": ["web"]}      # empty on a heartbeat

Configuration (``salt/lvs/realserver.sls`` sets it with ``beacon.present``):

.. code-block:: yaml

    beacons:
      lvs_backend:
        - interval: 1
        - heartbeat: 10
"""

import time

import lvspack_health
import lvspack_owned
import lvspack_probe
import salt.utils.beacons
from lvspack_fresh import fresh

health = fresh(lvspack_health)
records = fresh(lvspack_owned)
probe = fresh(lvspack_probe)

__virtualname__ = "lvs_backend"
RECORD = "backend-health"


def __virtual__():
    return __virtualname__


def validate(config):
    conf = salt.utils.beacons.list_to_dict(config) if isinstance(config, list) else config
    if not isinstance(conf, dict):
        return False, "lvs_backend: the configuration is a list of settings (interval, heartbeat)"
    unknown = set(conf) - {"interval", "heartbeat", "disable_during_state_run", "run_once", "enabled"}
    if unknown:
        return False, f"lvs_backend: unknown setting(s) {sorted(unknown)} (known: interval, heartbeat)"
    heartbeat = conf.get("heartbeat", health.HEARTBEAT)
    if isinstance(heartbeat, bool) or not isinstance(heartbeat, (int, float)) or heartbeat <= 0:
        return False, f"lvs_backend: heartbeat {heartbeat!r} must be a number of seconds above 0"
    return True, "valid"


def round_(cfg, state, now, heartbeat, tunnel_drifts, results):
    """One round's decision (pure): feed the dampers; return the event or None."""
    dampers = state.setdefault("dampers", {})
    services, changed = {}, []
    for name, check in sorted(cfg["checks"].items()):
        ok, reason = results[name]
        if tunnel_drifts:
            ok, reason = False, f"TUN setup: {'; '.join(sorted(tunnel_drifts))}"
        damper = health.Damper.load(check["rise"], check["fall"], dampers.get(name, {}))
        if damper.feed(ok):
            changed.append(name)
        dampers[name] = damper.dump()
        services[name] = {"healthy": damper.up, "reason": reason}
    for gone in set(dampers) - set(services):
        del dampers[gone]
        changed.append(gone)
    if not changed and state.get("sent_at") is not None and now - state["sent_at"] < heartbeat:
        return None
    state["sent_at"] = now
    return {"services": services, "tunnel": sorted(tunnel_drifts), "changed": sorted(changed)}


def beacon(config):
    conf = salt.utils.beacons.list_to_dict(config) if isinstance(config, list) else (config or {})
    try:
        cfg = __salt__["lvs_site.config"]()
    except Exception:  # pylint: disable=broad-except  (an invalid site: nothing to check)
        return []
    if cfg.get("role") != "realserver":
        return []
    now = time.time()
    state = __context__.setdefault("lvs_backend", {})
    drifts = __salt__["ipip.check"](cfg["vips"], device=cfg["device"], lan_interface=cfg["interface"])
    results = probe.run_all({name: (check, check["vip"]) for name, check in cfg["checks"].items()})
    event = round_(cfg, state, now, float(conf.get("heartbeat", health.HEARTBEAT)), drifts, results)
    if event is None:
        return []
    records.store(__opts__, RECORD, {"at": now, "services": event["services"], "tunnel": event["tunnel"]})
    return [event]
