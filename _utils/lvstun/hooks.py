"""The runner's verified decisions as events a user's own reactor can act on (keepalived's
``notify_up``/``notify_down``/``quorum_down``, for a Salt site).

The ``lvs`` runner fires one event per decision it made and recorded, on the master's
event bus (never a minion's word: a report, a majority of directors, an operator's
drain). Tags (``TAGS``, under ``lvs/hook/``)::

    backend/down  backend/up            a backend's health, as the runner verified it
    backend/drained  backend/undrained  a maintenance drain of a backend begun / ended
    service/below_floor  service/above_floor
                                        fewer healthy backends than the service's floor
    service/down  service/up            every backend of the service out / one back
    director/drained  director/undrained
                                        a director taken out of / put back in the
                                        router's group by an operator (lvs.drain)
    director/down  director/up          a director out of / back in the router's group
                                        by the router's own probes (as the router says)
    rolling/step  rolling/stop          a rolling maintenance's hosts at a step
                                        (lvstun.rolling.STEPS), or stopped and why

Data: ``tag``, ``site`` (every hook), ``service``, ``backend`` (minion id) and ``address`` where
they apply, ``director`` (director events), ``serving`` and ``floor`` (service events),
``reason``, ``at`` (the master's time), and
``signature``: an HMAC-SHA256 of the rest with a key only the master holds. Any minion
can put any tag and payload on the master's bus (``event.send``), so a reactor acts on
a hook only when :func:`verify` (``lvs_reactor.hook`` in a reactor SLS) says the
runner signed it (docs/hooks.md).
"""

import hashlib
import hmac
import json
import secrets

from . import health, records

PREFIX = "lvs/hook/"
TAGS = ("backend/down", "backend/up", "backend/drained", "backend/undrained", "service/below_floor",
        "service/above_floor", "service/down", "service/up", "director/drained", "director/undrained",
        "director/down", "director/up", "rolling/step", "rolling/stop")


def new_key():
    return secrets.token_hex(32)


def master_key(opts):
    """The master's key for its hooks' signatures (``records.HOOK_KEY``, made at the
    first use)."""
    with records.locked(opts, records.HOOK_KEY):
        found = records.load(opts, records.HOOK_KEY)
        if found is None:
            found = {"key": new_key()}
            records.store(opts, records.HOOK_KEY, found)
    return found["key"]


def _digest(key, tag, data):
    """The HMAC of ``data`` for ``tag`` (without its signature, and without the keys Salt
    adds when it fires an event: ``_stamp``)."""
    body = json.dumps({"tag": tag, **{k: v for k, v in data.items() if k != "signature" and not k.startswith("_")}},
                      sort_keys=True, separators=(",", ":"))
    return hmac.new(bytes.fromhex(key), body.encode(), hashlib.sha256).hexdigest()


def signed(key, tag, data):
    """``data`` with its ``tag`` and its ``signature`` under ``key``."""
    data = {**data, "tag": tag}
    return {**data, "signature": _digest(key, tag, data)}


def verify(key, tag, data):
    """``data`` without its signature when the runner signed it for ``tag``, else None."""
    if not isinstance(data, dict) or not isinstance(data.get("signature"), str) or data.get("tag") != tag:
        return None
    try:
        good = hmac.compare_digest(data["signature"], _digest(key, tag, data))
    except (TypeError, ValueError):
        return None
    return {k: v for k, v in data.items() if k != "signature"} if good else None


def _service_state(svc, record):
    """``({minion: (healthy, drained)}, serving)`` of ``svc`` by ``record``."""
    backends = {b.minion_id: (health.healthy(record, b.minion_id, svc.name),
                              health.in_maintenance(record, b.minion_id, svc.name)) for b in svc.backends}
    return backends, sum(1 for ok, drained in backends.values() if ok and not drained)


def decisions(site, before, after, at, reasons=None):
    """``[(tag, data)]``: what changed between two of the runner's health records
    (``lvstun.health``), service by service. ``reasons``: ``{minion: text}`` or ``{minion:
    {service: text}}`` of this decision (a report's words, "unreachable from a majority
    of the site's directors"); a drain's is its own."""
    reasons = reasons or {}
    out = []
    for svc in site.services.values():
        was, serving_before = _service_state(svc, before)
        now, serving = _service_state(svc, after)
        for backend in svc.backends:
            (ok_before, drained_before), (ok, drained) = was[backend.minion_id], now[backend.minion_id]
            base = {"site": site.name, "service": svc.name, "backend": backend.minion_id,
                    "address": backend.address, "at": at}
            if ok != ok_before:
                reason = reasons.get(backend.minion_id, "")
                reason = reason.get(svc.name, "") if isinstance(reason, dict) else reason
                out.append((f"backend/{'up' if ok else 'down'}", {**base, "reason": reason}))
            if drained != drained_before:
                entry = after.get("maintenance", {}).get(backend.minion_id) or \
                    before.get("maintenance", {}).get(backend.minion_id) or {}
                out.append((f"backend/{'drained' if drained else 'undrained'}",
                            {**base, "reason": entry.get("reason", "")}))
        floor = health.floor_count(svc.floor, len(svc.backends))
        base = {"site": site.name, "service": svc.name, "serving": serving, "floor": floor, "at": at}
        if (serving < floor) != (serving_before < floor):
            out.append((f"service/{'below_floor' if serving < floor else 'above_floor'}", {**base, "reason": ""}))
        if (serving == 0) != (serving_before == 0):
            out.append((f"service/{'down' if serving == 0 else 'up'}", {**base, "reason": ""}))
    return [(PREFIX + tag, data) for tag, data in out]


def director_decisions(site, before, after, drained, reasons, at):
    """``([(tag, data)], seen)``: the directors whose verdict by the router's probes
    changed from ``before`` to ``after`` (``{director: up}``; a director missing counts
    as up, as the router counts it), and the verdicts to compare the next view with. A
    drained director (``drained``: the operator's, with hooks of its own) fires nothing
    and keeps its verdict from before its drain; a name that is no director of ``site``
    is left out."""
    out, seen = [], {}
    for director in sorted(host.minion_id for host in site.directors):
        up_before, up = before.get(director, True) is not False, after.get(director, True) is not False
        if director in drained:
            seen[director] = up_before
            continue
        seen[director] = up
        if up != up_before:
            out.append((PREFIX + f"director/{'up' if up else 'down'}", {
                "site": site.name, "director": director, "reason": str(reasons.get(director, ""))[:200], "at": at}))
    return out, seen
