"""Backend health, as plain logic shared by the beacon, the runner and the director's
role: rise/fall damping of check results, the floor of backends a service keeps, the
sorry server, and the bound on how often a flapping backend's weight may change.

The record the runner keeps (one JSON document on the master) has two parts:
``health`` (minion id -> ``{"services": {name: bool}, "since": t, "down_at": t}``,
what the minions reported and the runner verified) and ``maintenance`` (minion id ->
``{"services": [names] or ["*"], "reason": text}``, the operators' drains). The live
weights of every service follow from the pillar and that record alone
(:func:`live_weights`), so a highstate computes the same weights as the reactor.
"""

import copy
import logging
import math

from .address import MAX_WEIGHT
from .shape import finite

log = logging.getLogger(__name__)

PILLAR_KEY = "lvs_health"  # where the master's ext_pillar gives the record to the directors
HOLD = 10  # seconds a backend stays out after going down, before it may come back
HEARTBEAT = 10  # seconds between two reports of an unchanged beacon
ASK_TIMEOUT = 4  # seconds a minion has to answer a question of the master (its health report, its boot id)


class Damper:
    """rise/fall counting for one check: the state changes after ``fall`` failures in a
    row (when up) or ``rise`` successes in a row (when down)."""

    def __init__(self, rise, fall, up=True):
        self.rise, self.fall, self.up, self.streak = rise, fall, up, 0

    def feed(self, ok):
        """Count one result; return True when the state changed."""
        if ok == self.up:
            self.streak = 0
            return False
        self.streak += 1
        if self.streak >= (self.rise if ok else self.fall):
            self.up, self.streak = ok, 0
            return True
        return False

    def dump(self):
        return {"up": self.up, "streak": self.streak}

    @classmethod
    def load(cls, rise, fall, data):
        damper = cls(rise, fall, bool(data.get("up", True)))
        damper.streak = int(data.get("streak", 0))
        return damper


def floor_count(floor, total):
    """How many backends of ``total`` the floor keeps: a count, or a percentage
    (``"50%"``, rounded up)."""
    if isinstance(floor, str) and floor.endswith("%"):
        return min(total, math.ceil(total * float(floor[:-1]) / 100))
    return min(total, int(floor))


def in_maintenance(record, minion_id, service):
    entry = record.get("maintenance", {}).get(minion_id)
    return bool(entry) and ("*" in entry["services"] or service in entry["services"])


def healthy(record, minion_id, service):
    """False only when the runner recorded the backend (or its host) down."""
    entry = record.get("health", {}).get(minion_id)
    if not entry:
        return True
    if entry.get("host") is False:
        return False
    return entry.get("services", {}).get(service, True) is not False


def weight(record, backend, service):
    """A backend's weight when it serves: the one its dynamic script last reported
    (``check:dynamic``), else the pillar's."""
    reported = record.get("health", {}).get(backend.minion_id, {}).get("weights", {}).get(service.name)
    return reported if service.check and service.check.get("dynamic") and reported is not None else backend.weight


def live_weights(service, record):
    """``{minion_id: weight}`` for ``service`` (a ``lvstun.site.Service``): pillar
    weights (or a dynamic script's, :func:`weight`), 0 for a backend that is down or in
    maintenance; the floor keeps down
    backends (never maintenance ones) in by name order until enough are in; with a
    sorry server and no healthy backend, the backends go to 0 and it takes the traffic."""
    weights, down = {}, []
    for backend in service.backends:
        if in_maintenance(record, backend.minion_id, service.name):
            weights[backend.minion_id] = 0
        elif not healthy(record, backend.minion_id, service.name):
            weights[backend.minion_id] = 0
            down.append(backend)
        else:
            weights[backend.minion_id] = weight(record, backend, service)
    serving = [b for b in service.backends if weights[b.minion_id] > 0]
    if service.sorry:
        weights[service.sorry] = 0
        if not serving:
            weights[service.sorry] = 1
            return weights
    need = floor_count(service.floor, len(service.backends)) - len(serving)
    for backend in sorted(down, key=lambda b: b.minion_id)[:max(0, need)]:
        weights[backend.minion_id] = weight(record, backend, service)
    return weights


def with_local(record, down):
    """``record`` with a director's own verdicts on top: each ``{minion: [service names]}``
    of ``down`` is down on this director too. A director's checks only take backends
    out: one the runner keeps out stays out whatever they say."""
    merged = copy.deepcopy(record or {})
    for minion, names in (down or {}).items():
        entry = merged.setdefault("health", {}).setdefault(minion, {})
        entry.setdefault("services", {}).update({name: False for name in names})
    return merged


def newest(*records):
    """The newest of the runner's health records (by their ``at``; the first on a tie)."""
    return max((r or {} for r in records), key=lambda r: float(r.get("at") or 0), default={})


def may_restore(entry, now, hold=HOLD):
    """A backend that went down comes back only ``hold`` seconds after it went down:
    a flapping backend changes weight at most twice per ``hold`` seconds."""
    return now - float(entry.get("down_at") or 0) >= hold


def host_verdict(seen, directors):
    """Whether a real server's host is up (True), down (False: a majority of the site's
    ``directors`` cannot reach it) or unknown (None: no director answered for it).
    Only ``True``/``False`` count; anything else a director says is no answer."""
    said = [value for value in seen if value is True or value is False]
    if not said:
        return None
    return sum(1 for value in said if value is False) <= directors // 2


def report_of(site, minion, answer, now, max_age):
    """``({"services": {service: healthy}, "weights": {service: weight}, "alpha": {names},
    "reasons": {service: text}}, beacon time)`` from ``minion``'s ``answer`` to
    ``lvs_health.report``, or ``(None, None)`` (no answer, or no beacon report younger
    than ``max_age`` seconds: silence is not evidence; a dead host is the directors'
    call). Nothing of the answer is trusted as it comes: only the services ``site`` says
    ``minion`` backs are kept, healthy only when it says so with ``true``; a weight only
    from a service whose check is a dynamic script, an integer in IPVS's range; a report
    time in the future counts as ``now``."""
    services = answer.get("services") if isinstance(answer, dict) else None
    if not isinstance(services, dict):
        log.warning("lvs: %s did not answer for its health: nothing changed", minion)
        return None, None
    age = answer.get("age")
    if not finite(age) or not 0 <= age <= max_age:
        log.warning("lvs: %s has no recent beacon report (age %r): nothing changed", minion, age)
        return None, None
    at = min(float(answer["at"]) if finite(answer.get("at")) else now - age, now)
    backed = site.backed_by(minion)
    strange = [name for name in services if name not in backed]
    if strange:
        log.warning("lvs: %s reports %d service(s) it does not back, ignored: %s", minion, len(strange),
                    sorted(map(str, strange))[:5])
    mine = {name: state if isinstance(state, dict) else {} for name, state in services.items() if name in backed}
    weights = {name: state["weight"] for name, state in mine.items()
               if site.services.get(name) and site.services[name].check["dynamic"]
               and type(state.get("weight")) is int and 0 <= state["weight"] <= MAX_WEIGHT}
    return {"services": {name: state.get("healthy") is True for name, state in mine.items()},
            "weights": weights, "alpha": {name for name, state in mine.items() if state.get("alpha") is True},
            # its words, as the hooks pass them on (text, cut short)
            "reasons": {name: " ".join(str(state.get("reason") or "").split())[:200]
                        for name, state in mine.items()}}, at
