"""Operate the site's backends from the master: health (the reactor's entry), host
checks, maintenance drains, and a status view across every director.

Trust: the reactor passes only the minion id found in an event's tag, and the tag and
payload of a minion event are the minion's own words (Salt does not check them). So
an event is a hint, never evidence: ``health`` asks the named real server for its
report through an authenticated call (``lvs_health.report``: only that minion can
answer for its id), and ``hosts`` asks every real server of the site at once (no name
from the event at all). A minion can thus change its own backends only; an event naming
another minion makes the runner ask that minion, whose answer decides.

What the runner decides goes into one record on the master (``<cachedir>/lvs/
health.json``, locked while read and changed; the directors are asked before and told
after, outside that lock) and from there to the directors (``lvs_health.apply``:
each sets its weights from it and its own path checks) and into their pillar
(ext_pillar ``lvs_health``), so a later highstate runs the same weights. The
directors take backends out on their own checks without the runner (the
``lvs_paths`` beacon, docs/health.md). The weights follow
``lvstun.health.live_weights``: pillar weight, 0 when down or in maintenance, the
floor and the sorry server. A backend that went down returns only its check's ``hold`` seconds
later (at its next report), which bounds the weight changes of a flapping backend.

Each decision it records is also fired on the master's event bus, signed, for a user's
own reactor (``lvs/hook/...``: ``lvstun.hooks``, docs/hooks.md).

CLI Example:

.. code-block:: bash

    salt-run lvs.status
    salt-run lvs.drain rs2 reason='kernel upgrade'
    salt-run lvs.undrain rs2
    salt-run lvs.drain director2      # a director: out of the router's group
"""

import contextlib
import copy
import logging
import time

import salt.client
import salt.utils.event
from salt.exceptions import SaltInvocationError

import lvstun.gate
import lvstun.health
import lvstun.healthrecord
import lvstun.healthstore
import lvstun.hooks
import lvstun.metrics
import lvstun.records
import lvstun.roles
import lvstun.rolling
import lvstun.rollout
import lvstun.shape
import lvstun.site
import lvstun.sites
import lvstun.sitestatus

log = logging.getLogger(__name__)

PUSH_TIMEOUT = 15  # seconds the directors have to confirm a push
STALE = 3  # heartbeats: a beacon report older than this says nothing


def _client():
    return salt.client.get_local_client(__opts__["conf_file"])


def _cmd(*args, **kwargs):
    """``LocalClient.cmd`` with a client of its own, destroyed after (no client left for
    the interpreter's exit to warn about)."""
    client = _client()
    try:
        return client.cmd(*args, **kwargs)
    finally:
        destroy = getattr(client, "destroy", None)
        if destroy is not None:
            destroy()


def _sites(site=None, errors=None):
    """``{name: Site}``: every site of the master's minions (``lvstun.sites``), or the one
    named ``site``; SaltInvocationError on an unknown name or an invalid site named. An
    invalid site among all is left out (logged; its error in ``errors`` when given)."""
    try:
        found = lvstun.sites.index(__opts__).sites(site)
    except KeyError as err:
        raise SaltInvocationError(err.args[0]) from None
    for name, each in found.items():
        if isinstance(each, lvstun.site.SiteError):
            if site is not None:
                raise SaltInvocationError(f"site {name}: {each}")
            log.error("lvs: site %s is invalid, left out: %s", name, each)
            if errors is not None:
                errors[name] = {"error": str(each)}
    return {name: each for name, each in found.items() if isinstance(each, lvstun.site.Site)}


def _site_of(minion, site=None, role=None):
    """The site of ``minion`` (by its own pillar), checked against ``site`` when given;
    SaltInvocationError when it has none (in ``role``) or the site is invalid."""
    try:
        found = lvstun.gate.site_of(__opts__, str(minion))
    except lvstun.site.SiteError as err:
        raise SaltInvocationError(str(err)) from None
    if found is None or (role is not None and found.role_of(str(minion)) != role):
        raise SaltInvocationError(f"{minion!r} is not a {role or 'minion'} of any site"
                                  + ("" if site is None else f" ({site!r} named)"))
    if site is not None and found.name != site:
        raise SaltInvocationError(f"{minion!r} is of the site {found.name!r}, not {site!r}")
    return found


def _each(site, fun):
    """``{site name: fun(Site)}`` for ``site`` or every site, each apart."""
    return {name: fun(each) for name, each in sorted(_sites(site).items())}


def _rec(record, site):
    """``record`` of ``site`` (the master keeps one of each per site)."""
    return record.named(site.name)


def _fire(decisions):
    """Fire each ``(tag, data)`` on the master's event bus, signed (``lvstun.hooks``)."""
    if not decisions:
        return
    key = lvstun.hooks.master_key(__opts__)
    with _bus() as bus:
        for tag, data in decisions:
            bus.fire_event(lvstun.hooks.signed(key, tag, data), tag)
            log.info("lvs: hook %s %s", tag, {k: v for k, v in data.items() if k in ("service", "backend", "reason")})


def _bus():
    """The master's event bus (to fire on)."""
    return salt.utils.event.get_master_event(__opts__, __opts__["sock_dir"], listen=False)


def _decided(site, before, after, reasons=None):
    """Fire the hooks of what changed from ``before`` to ``after`` (health records)."""
    _fire(lvstun.hooks.decisions(site, before, after, time.time(), reasons))


def _published(site, record):
    """What every director must hold by the record: ``{"weights": {service spec: {dest:
    weight}}, "view": ...}`` (the view labels its metrics: ``lvstun.metrics.view``)."""
    return {"weights": lvstun.roles.weights_of(lvstun.roles.ipvs_services(site, record)),
            "view": lvstun.metrics.view(site, record)}


def _push(site, before):
    """Give the directors the newest record when it changes the weights or the metrics'
    view since ``before`` (this call's :func:`_published` before its change), and to the
    directors that have not confirmed an earlier push in any case; each sets its weights
    from it, its pillar and its own path checks (``lvs_health.apply``). Returns the
    weights that changed by the record (and the directors' answers).

    Pushes are serialized across processes (their own lock: the record's is not held
    while directors answer), and each sends the newest record: a slower push never
    leaves older weights on the directors than a faster one (a director keeps only a
    version that supersedes its copy, ``lvstun.healthrecord``). A director that does not
    confirm is pushed to again at every later call of the runner (the real servers'
    heartbeats make one every few seconds) until it does; one that holds a version the
    master lost gives it back (adopted, noted in the record)."""
    pending_record = _rec(lvstun.records.PUSH_PENDING, site)
    with lvstun.records.locked(__opts__, pending_record):
        record = lvstun.healthstore.current(__opts__, site)
        after = _published(site, record)
        changed = {}
        for spec, dests in after["weights"].items():
            for dest, weight in dests.items():
                if before is not None and before["weights"].get(spec, {}).get(dest) != weight:
                    changed.setdefault(spec, {})[dest] = weight
        pending = lvstun.records.load(__opts__, pending_record)
        directors = sorted(host.minion_id for host in site.directors)
        targets = directors if before is not None and (changed or after["view"] != before["view"]) else \
            [d for d in directors if d in pending]
        if not targets:
            return {}
        ret = _send(targets, record)
        # The master had lost a version a director holds: every director gets the new one.
        if lvstun.healthstore.adopt(__opts__, site, ret):
            record, targets = lvstun.healthstore.current(__opts__, site), directors
            ret = _send(targets, record)
        still = {d: lvstun.healthrecord.summary(record) for d in targets if not _confirmed(ret.get(d), record)}
        for director in still:
            log.error("lvs: site %s: director %s did not confirm the health record (seq %s): pushed again at the "
                      "runner's next call", site.name, director, record.get("seq"))
        now_pending = {d: v for d, v in pending.items() if d in directors and d not in targets} | still
        if now_pending != pending:
            lvstun.records.store(__opts__, pending_record, now_pending)
        return {"weights": changed, "directors": ret}


def _send(directors, record):
    return _cmd(directors, "lvs_health.apply", [], kwarg={"record": record}, tgt_type="list",
                         timeout=PUSH_TIMEOUT)


def _confirmed(answer, record):
    held = answer.get("holds") if isinstance(answer, dict) else None
    if not isinstance(held, dict):
        return False
    return held == lvstun.healthrecord.summary(record) or (
        held.get("epoch") == record.get("epoch") and isinstance(held.get("seq"), int) and held["seq"] > record["seq"])


def _retry_pending(site):
    """Push the record to the directors that have not confirmed one yet."""
    if lvstun.records.load(__opts__, _rec(lvstun.records.PUSH_PENDING, site)):
        _push(site, None)


def health(minion, site=None):
    """Re-check one real server (the reactor's entry for its ``lvs_backend`` event):
    ask it for its report and apply what it says to its own backends only, in its site
    (the one its own pillar names; ``site``: checked to be that one).

    minion
        The real server to check (the reactor passes the event's minion id).
    site
        The site it must be of (default: the one its own pillar names).

    CLI Example:

    .. code-block:: bash

        salt-run lvs.health rs1
        salt-run lvs.health rs1 site=eu

    Bounded under a flood of events: the reactor starts no job for an event that names
    no real server or whose minion has a job queued or running (``lvstun.gate``); a job
    running when events came runs one more round when it ends (the newest state is never
    lost, duplicates are).
    """
    minion = str(minion)
    key = ("health", minion)
    try:
        found = lvstun.gate.site_of(__opts__, minion, "realserver")
    except lvstun.site.SiteError as err:
        lvstun.gate.forget(key)
        raise SaltInvocationError(str(err)) from None
    if found is None or (site is not None and found.name != site):
        lvstun.gate.forget(key)
        log.warning("lvs: health event for %r, which is not a real server of %s: ignored", minion,
                    "any site" if site is None else f"the site {site}")
        return {"ignored": f"{minion!r} is not a real server of " + ("any site" if site is None else repr(site))}
    result = _rounds(key, lambda: _health(minion))
    return {"minion": minion, "coalesced": True} if result is None else result


def _rounds(key, check):
    """Run ``check`` as the gate's job ``key``: once, and once more each time events came
    while it ran; None when such a job runs already (it takes this one)."""
    if not lvstun.gate.start(key):
        return None
    try:
        while True:
            result = check()
            if not lvstun.gate.again(key):
                return result
    except BaseException:
        lvstun.gate.forget(key)
        raise


def _health(minion):
    """One check of ``minion``: its report, then its site's record, then the weights."""
    try:
        site = lvstun.gate.site_of(__opts__, minion, "realserver")
    except lvstun.site.SiteError as err:
        raise SaltInvocationError(str(err)) from None
    if site is None:
        return {"ignored": f"{minion!r} is not a real server of any site"}
    _retry_pending(site)
    report, at = _report(minion, site)
    if report is None:
        return {"minion": minion, "site": site.name, "answered": False}
    current = lvstun.healthstore.current(__opts__, site)["health"].get(minion, {})
    if report["services"] == current.get("services") and report["weights"] == current.get("weights", {}) \
            and not current.get("held"):
        return {"minion": minion, "site": site.name, "services": report["services"], "changed": False}  # a heartbeat
    with lvstun.healthstore.changing(__opts__, site) as record:
        before, old = _published(site, record), copy.deepcopy(record)
        entry = record["health"].get(minion, {})
        if at <= max(entry.get("reported_at", 0), entry.get("down_at", 0) if entry.get("host") is False else 0):
            # Older than a report applied already, or made before its host went down.
            return {"minion": minion, "site": site.name, "services": report["services"], "stale": True}
        lvstun.healthrecord.apply_verdict(site, record, time.time(), minion, services=report["services"],
                                          alpha=report["alpha"])
        record["health"][minion].update(reported_at=at, weights=report["weights"])
        held = record["health"][minion]["held"]
    pushed = _push(site, before)
    _decided(site, old, record, {minion: report["reasons"]})
    log.info("lvs: %s (site %s) reports %s: %s", minion, site.name, report, pushed or "no weight changed")
    return {"minion": minion, "site": site.name, "services": report["services"], "held": held, **pushed}


def _report(minion, site):
    """``minion``'s own answer for its health (``lvs_health.report``, authenticated), as
    ``lvstun.health.report_of`` keeps it: ``(report, beacon time)`` or ``(None, None)``."""
    answer = _cmd(minion, "lvs_health.report", timeout=lvstun.health.ASK_TIMEOUT).get(minion)
    return lvstun.health.report_of(site, minion, answer, time.time(), STALE * site.health.heartbeat)


def hosts(minion=None, site=None):
    """Ask every director of a site (authenticated, all at once) which real servers it
    can reach on the LAN now (its ``lvs_hosts`` beacon's probes); a real server that a
    majority of the site's directors cannot reach is down with all its backends (one
    director: its own view), until fewer than a majority say so. One director alone,
    lying or cut off itself, cannot take real servers out of the others' tables. The
    directors are asked before the record is locked; an answer older than one applied
    already is dropped. The reactor calls this on any ``lvs_hosts`` event with the
    event's minion, whose site is polled (nothing else of the event is used).

    minion
        A director: its site's directors are asked (the reactor's call).
    site
        The site to poll; default (no minion either): every site, each apart.

    CLI Example:

    .. code-block:: bash

        salt-run lvs.hosts
        salt-run lvs.hosts site=eu
    """
    return _site_polls("hosts", minion, site, _hosts)


def _hosts(site):
    """One round of :func:`hosts` over ``site``."""
    _retry_pending(site)
    directors = sorted(host.minion_id for host in site.directors)
    asked_at = time.time()
    ret = _cmd(directors, "lvs_health.reachability", tgt_type="list", timeout=lvstun.health.ASK_TIMEOUT)
    views = [view for view in (ret.get(d) for d in directors) if isinstance(view, dict)]
    result = {"site": site.name, "answered": sorted(d for d in directors if isinstance(ret.get(d), dict))}
    with lvstun.healthstore.changing(__opts__, site) as record:
        if asked_at < record.get("hosts_asked_at", 0):
            return {**result, "stale": True}  # a later call applied newer views already
        record["hosts_asked_at"] = asked_at
        before, old, reasons = _published(site, record), copy.deepcopy(record), {}
        now = time.time()
        for host in site.realservers:
            verdict = lvstun.health.host_verdict([view.get(host.minion_id) for view in views], len(directors))
            if verdict is not None:
                lvstun.healthrecord.apply_verdict(site, record, now, host.minion_id, host=verdict)
                reasons[host.minion_id] = "reachable again" if verdict else \
                    "unreachable from a majority of the site's directors"
    pushed = _push(site, before)
    _decided(site, old, record, reasons)
    return {**result, **pushed}


def directors(minion=None, site=None):
    """Fire the hooks ``director/down`` and ``director/up`` for the directors whose
    verdict by the router's own probes changed since the last call: the site's Linux
    router is asked (authenticated) for its view and its drains; a drained director
    fires the drain's hooks instead. The reactor calls this on the router's
    ``lvs_directors`` events with the event's minion, whose site is polled (nothing else
    of the event is used).

    minion
        The site's router (the reactor's call).
    site
        The site to poll; default (no minion either): every site with a director group.

    CLI Example:

    .. code-block:: bash

        salt-run lvs.directors
        salt-run lvs.directors site=eu
    """
    return _site_polls("directors", minion, site, _directors)


def _site_polls(kind, minion, site, poll):
    """Run ``poll(Site)`` as the gate's job of ``kind`` (``hosts``, ``directors``): for
    the site of ``minion`` (in the role the gate expects of that kind's events), or for
    ``site``, or every site, each apart."""
    if minion is not None:
        found = _site_of(minion, site, lvstun.gate.ROLE_OF_KIND[kind])
        result = _rounds(lvstun.gate.job_key(kind, minion, found), lambda: poll(found))
        return {"site": found.name, "coalesced": True} if result is None else result
    return _each(site, lambda each: _rounds(lvstun.gate.job_key(kind, None, each), lambda: poll(each))
                 or {"coalesced": True})


def _directors(site):
    """One round of :func:`directors` over ``site``."""
    if site.router.kind != "linux" or len(site.directors) < 2:
        return {"site": site.name, "group": False}
    view, drained = _router_call(site, "lvs_directors.view"), _router_call(site, "lvs_directors.drained")
    if not isinstance(view, dict) or not isinstance(drained, list):
        return {"site": site.name, "answered": False}
    seen = _rec(lvstun.records.DIRECTORS_SEEN, site)
    with lvstun.records.locked(__opts__, seen):
        last = lvstun.records.load(__opts__, seen)
        if lvstun.shape.finite(last.get("at")) and not (lvstun.shape.finite(view.get("at"))
                                                        and view["at"] >= last["at"]):
            return {"site": site.name, "stale": True}  # a later call fired on a newer view already
        up, reasons = ({} if not isinstance(view.get(key), dict) else view[key] for key in ("up", "reasons"))
        decisions, verdicts = lvstun.hooks.director_decisions(site, last["up"], up, set(map(str, drained)), reasons,
                                                              time.time())
        at = view.get("at") if lvstun.shape.finite(view.get("at")) else None
        lvstun.records.store(__opts__, seen, {"up": verdicts, "at": at})
    _fire(decisions)
    return {"site": site.name, "up": up, "fired": [tag for tag, _ in decisions]}


def _router_call(site, fun, *args):
    """Call ``fun`` on the site's Linux router (its director group lives there)."""
    if site.router.kind != "linux" or len(site.directors) < 2:
        raise SaltInvocationError("directors are drained on a Linux router of a site with several directors")
    rid = site.router.minion_id
    ret = _cmd(rid, fun, list(args), timeout=30, full_return=True).get(rid)
    if not isinstance(ret, dict) or ret.get("retcode"):
        raise SaltInvocationError(f"{rid} did not run {fun}: {ret.get('ret') if isinstance(ret, dict) else ret}")
    return ret["ret"]


def _forwarded(director):
    """Packets ``director`` has received for its virtual services (None: no answer)."""
    table = _cmd(director, "ipvs.list", timeout=15).get(director)
    if not isinstance(table, list):
        return None
    return sum(svc.get("stats", {}).get("inpkts", 0) for svc in table)


def _drain_director(site, director, timeout):
    """Take ``director`` out of the router's group; wait (up to ``timeout`` s) until it
    forwards nothing more: 2 s without a new packet."""
    group = _router_call(site, "lvs_directors.drain", director)
    if group["changed"]:
        _fire([(lvstun.hooks.PREFIX + "director/drained", {"site": site.name, "director": director,
                                                            "reason": "lvs.drain", "at": time.time()})])
    began, last, quiet_since, idle = time.monotonic(), _forwarded(director), time.monotonic(), False
    while time.monotonic() - began < timeout and not idle:
        time.sleep(1)
        now = _forwarded(director)
        if now != last or now is None:
            last, quiet_since = now, time.monotonic()
        idle = time.monotonic() - quiet_since >= 2
    return {"director": director, "idle": idle, "waited": round(time.monotonic() - began, 1),
            "drained": group["drained"], "changed": group["changed"]}


def drain(minion, service=None, reason="maintenance", timeout=60, site=None):
    """Take ``minion``'s backends (or its backend of ``service``) out for maintenance:
    weight 0 on every director, kept through health events and highstates until
    ``lvs.undrain``. Existing connections finish; new ones go elsewhere.

    A director (a site with several, behind a Linux router) leaves the router's group:
    its flows move to the others at once, their connections continuing there (the sync
    daemons gave them the entries); the runner waits until it forwards nothing more (at
    most ``timeout`` seconds) and says whether it is ``idle``.

    minion
        A real server, or a director of a site with several (out of the router's group).
    service
        Drain only the real server's backend of this service (default: all of them).
    reason
        Words kept with the drain, shown by ``lvs.status`` and its hooks.
    timeout
        A director: seconds to wait until it forwards nothing more (default 60).
    site
        The site it must be of (default: the one its own pillar names).

    CLI Example:

    .. code-block:: bash

        salt-run lvs.drain rs2 reason='kernel upgrade'
        salt-run lvs.drain rs2 service=web
        salt-run lvs.drain director2
        salt-run lvs.drain rs2 site=eu    # checked: rs2 is of the site eu

    The minion's site is the one its own pillar names (a minion id belongs to one site).
    """
    site = _site_of(minion, site)
    if site.role_of(str(minion)) == "director":
        if service is not None:
            raise SaltInvocationError(f"{minion} is a director: it is drained whole (no service=)")
        return _drain_director(site, str(minion), float(timeout))
    host = site.hosts.get(str(minion))
    if host is None or host.role != "realserver":
        raise SaltInvocationError(f"{minion!r} is not a real server of the site {site.name}")
    if service is not None and service not in site.services:
        raise SaltInvocationError(f"{service!r} is not a service of the site {site.name} ({sorted(site.services)})")
    with lvstun.healthstore.changing(__opts__, site) as record:
        before, old = _published(site, record), copy.deepcopy(record)
        entry = record["maintenance"].setdefault(str(minion), {"services": [], "reason": reason})
        entry["services"] = sorted(set(entry["services"]) | {service or "*"})
        entry.update(reason=reason, at=time.time())
    pushed = _push(site, before)
    _decided(site, old, record)
    return {"drained": str(minion), "site": site.name, "services": entry["services"], **pushed}


def undrain(minion, service=None, site=None):
    """End a maintenance drain (all of ``minion``'s, or the one of ``service``): the
    backends return to their pillar weight, unless their health keeps them out.

    minion
        A real server or a director drained before.
    service
        End only the drain of this service's backend (default: every drain of the host).
    site
        The site it must be of (default: the one its own pillar names).

    CLI Example:

    .. code-block:: bash

        salt-run lvs.undrain rs2
        salt-run lvs.undrain director2
    """
    site = _site_of(minion, site)
    if site.role_of(str(minion)) == "director":
        group = _router_call(site, "lvs_directors.undrain", str(minion))
        if group["changed"]:
            _fire([(lvstun.hooks.PREFIX + "director/undrained", {"site": site.name, "director": str(minion),
                                                                  "reason": "lvs.undrain", "at": time.time()})])
        return {"director": str(minion), "drained": group["drained"], "changed": group["changed"]}
    with lvstun.healthstore.changing(__opts__, site) as record:
        before, old = _published(site, record), copy.deepcopy(record)
        entry = record["maintenance"].get(str(minion))
        if entry:
            kept = set(entry["services"])
            if "*" in kept and service is not None:
                # The whole host was drained: all of its services but this one stay drained.
                kept = (kept - {"*"}) | set(site.backed_by(str(minion)))
            entry["services"] = [] if service is None else sorted(kept - {service})
            if not entry["services"]:
                del record["maintenance"][str(minion)]
        left = (record["maintenance"].get(str(minion)) or {}).get("services", [])
    pushed = _push(site, before)
    _decided(site, old, record)
    return {"undrained": str(minion), "site": site.name, "still_drained": left, **pushed}


def _router_view(site):
    """``(up, drained)`` of the router's director group (a Linux router with several
    directors), or ``({}, [])``."""
    if site.router.kind != "linux" or len(site.directors) < 2:
        return {}, []
    with contextlib.suppress(SaltInvocationError):
        return _router_call(site, "lvs_directors.view").get("up", {}), _router_call(site, "lvs_directors.drained")
    return {}, []


def status(site=None):
    """Every site (or the one named ``site``), each apart: every director (up, down or
    drained, its connections and traffic) and every virtual service with its backends:
    pillar weight, health, maintenance, the directors whose own path checks take it out
    (``path_down``), and from each director the live weight, connections and traffic:
    ``{site: {"directors": {...}, "services": {name: {...}}}}``; an invalid site:
    ``{site: {"error": text}}``.

    site
        One site's name (default: every site of the master's minions, each apart).

    CLI Example:

    .. code-block:: bash

        salt-run lvs.status
        salt-run lvs.status site=eu
        salt-run lvs.status --out=json
    """
    # Shown as tables (the lvs_status outputter); --out=json gives the data.
    invalid = {}
    shown = {name: _status(each) for name, each in sorted(_sites(site, invalid).items())}
    return {"outputter": "lvs_status", "data": dict(sorted({**shown, **invalid}.items()))}


def _status(site):
    _retry_pending(site)
    record = lvstun.healthstore.current(__opts__, site)
    directors = sorted(host.minion_id for host in site.directors)
    # Each director's table, what its own path checks take out, and its copy of the record.
    answers = _cmd(directors, "lvs_health.status", tgt_type="list", timeout=15)
    answers = {d: a for d, a in answers.items() if isinstance(a, dict)}
    up, drained = _router_view(site)
    pending = lvstun.records.load(__opts__, _rec(lvstun.records.PUSH_PENDING, site))
    return lvstun.sitestatus.view(site, record, answers, up, drained, pending, time.time())


def _say(text):
    """A line of progress on the operator's terminal (``salt-run`` prints it), and the log."""
    log.info("lvs: %s", text)
    jid_event = globals().get("__jid_event__")
    if jid_event is not None:
        jid_event.fire_event({"message": text}, "progress")


def rolling(targets=None, action=None, reboot=False, batch=1, timeout=600, on_timeout="stop", test=False,
            resume=False, site=None, tgt_type="list", reboot_timeout=None):
    """Roll maintenance over real servers, a batch at a time: each drained on every
    director, its connections finished, ``action`` applied (an SLS) and/or a ``reboot``,
    back and healthy again (its own report after the action, and every director's path
    checks), undrained; then the next. Never a batch that would take a service below its
    floor. On a failure it stops and says why; the host at fault stays drained, the
    others are untouched; ``resume=True`` goes on from there.

    targets
        The hosts to roll, of one site: minion ids (a list, or separated by commas, in
        the order to roll them; an id with ``*?[`` is a glob: ``rs*``), or a Salt target
        of ``tgt_type`` (its matches by id); default: every real server of each site.
    action
        An SLS to apply on each host (``state.apply ACTION``), e.g. a package upgrade.
    reboot
        Reboot each host (after the action) and wait until it answers again.
    batch
        Hosts out at once (default 1).
    timeout
        Seconds each wait may take (connections to finish, the action, healthy).
    reboot_timeout
        Seconds a host may take to answer from a new boot (default: ``timeout``): a
        machine's firmware may take minutes where its services take seconds.
    on_timeout
        ``stop`` (default) or ``continue`` when a host's connections do not finish in time.
    test
        Only say the plan.
    resume
        Go on with the rolling that stopped (its targets, action and settings).
    site
        The site to roll (default: the targets' site; without targets, every site in
        turn, stopping where one stops); a glob or target matches its hosts only.
    tgt_type
        How ``targets`` is read: ``list`` (default: ids and globs, as above) or any of
        Salt's target types on the master (``glob``, ``grain``, ``pillar``,
        ``compound`` ...: matched by the master's cache of its minions).

    Returns ``{site: what happened there}``.

    CLI Example:

    .. code-block:: bash

        salt-run lvs.rolling action=upgrade test=True
        salt-run lvs.rolling targets=rs1,rs2 action=upgrade reboot=True
        salt-run lvs.rolling targets='rs*' action=upgrade
        salt-run lvs.rolling targets='rack:b' tgt_type=grain action=upgrade
        salt-run lvs.rolling site=eu action=upgrade
        salt-run lvs.rolling resume=True
    """
    if targets not in (None, "", [], ()):
        found, targets = _targets(targets, tgt_type, site)
        chosen = {found.name: found}
    else:
        chosen = _sites(site)
    if resume and len(chosen) > 1:  # every site: those with a rolling to resume
        chosen = {name: each for name, each in chosen.items() if _unfinished(each)} or chosen
    settings = {"action": action, "reboot": reboot, "reboot_timeout": reboot_timeout, "batch": batch,
                "timeout": timeout, "on_timeout": on_timeout}
    results = {}
    for each in (chosen[name] for name in sorted(chosen)):
        try:
            with lvstun.records.locked(__opts__, _rec(lvstun.records.ROLLING, each), timeout=1):
                results[each.name] = _rolling(each, targets, settings, test, resume)
        except TimeoutError:
            raise SaltInvocationError(f"another rolling of the site {each.name} is running (one at a time)") from None
        if results[each.name].get("stopped"):
            break
    return results


def _targets(targets, tgt_type, site):
    """``(Site, [minion ids])`` of a rolling's ``targets`` (:func:`rolling`), of one
    site (``site`` when given; else the first host's). Ids keep the order given (the
    rolling names every one that is no real server of the site); a glob's or a target's
    matches come by id, those of no site (or not of ``site``) left out."""
    matched = {}  # a glob's or a target's matches: {minion id: its site's name}
    if tgt_type == "list":
        given = str(targets).split(",") if isinstance(targets, str) else list(targets)
        names = []
        for name in (str(name).strip() for name in given if str(name).strip()):
            if set(name) & set("*?["):
                found = _ours(_matched(name, "glob"), site)
                matched.update(found)
                names += found
            else:
                names.append(name)
    else:
        matched = _ours(_matched(targets, tgt_type), site)
        names = list(matched)
    names = list(dict.fromkeys(names))
    if not names:
        raise SaltInvocationError(f"no minion of {'a site' if site is None else repr(site)} matches "
                                  f"{targets!r} ({tgt_type})")
    first = _site_of(names[0], site)
    others = sorted(set(matched.values()) - {first.name})
    if others:
        raise SaltInvocationError(f"{targets!r} names hosts of the sites {', '.join([first.name, *others])}: "
                                  "give site=")
    return first, names


def _ours(names, site):
    """``{minion id: its site's name}`` of those of ``names`` that are minions of a site
    (of ``site`` when given), by id."""
    out = {}
    for name in sorted(names):
        try:
            each = lvstun.gate.site_of(__opts__, name)
        except lvstun.site.SiteError:
            each = None
        if each is not None and (site is None or each.name == site):
            out[name] = each.name
    return out


def _matched(tgt, tgt_type):
    """The minion ids the master matches with ``tgt`` of ``tgt_type`` (from its cache)."""
    import salt.utils.minions  # noqa: PLC0415  (the master's matcher: only for a target expression)

    try:
        found = salt.utils.minions.CkMinions(__opts__).check_minions(tgt, tgt_type)
    except (KeyError, TypeError, ValueError) as err:
        raise SaltInvocationError(f"cannot match {tgt!r} as {tgt_type}: {err}") from None
    return list(found.get("minions", []) if isinstance(found, dict) else found)


def _unfinished(site):
    progress = lvstun.records.load(__opts__, _rec(lvstun.records.ROLLING, site))
    return bool(progress) and not progress.get("finished")


def _rolling(site, targets, settings, test, resume):
    """:func:`rolling` over ``site``, its lock held (``settings``: its arguments)."""
    progress = lvstun.records.load(__opts__, _rec(lvstun.records.ROLLING, site))
    if resume:
        if not progress or progress.get("finished"):
            raise SaltInvocationError("no rolling to resume")
    else:
        progress = _new_rolling(site, targets, **settings)
    names = [name for name in progress["targets"] if name not in progress["done"]]
    groups = lvstun.rolling.batches(names, progress["batch"])
    plan = {"batches": groups, "steps": list(lvstun.rolling.STEPS), "action": progress.get("action"),
            "reboot": progress.get("reboot", False), "timeout": progress.get("timeout", float(settings["timeout"])),
            "on_timeout": progress.get("on_timeout", settings["on_timeout"])}
    plan["reboot_timeout"] = progress.get("reboot_timeout", plan["timeout"])
    if test:
        record = lvstun.healthstore.current(__opts__, site)
        return {"plan": plan, "floor": lvstun.rolling.floor_problems(site, record, groups[0]) if groups else []}
    timings = {}
    for group in groups:
        began = time.monotonic()
        stopped = _roll(site, group, progress, plan)
        if stopped:
            progress.update(stopped=stopped, at=time.time())
            lvstun.records.store(__opts__, _rec(lvstun.records.ROLLING, site), progress)
            _say(f"stopped at {', '.join(group)} ({progress.get('step')}): {stopped}")
            _fire([(lvstun.hooks.PREFIX + "rolling/stop", {"site": site.name, "hosts": group,
                                                            "step": progress.get("step"), "reason": stopped,
                                                            "at": time.time()})])
            return {"stopped": stopped, "at": group, "step": progress.get("step"), "done": progress["done"],
                    "seconds": timings}
        timings[",".join(group)] = round(time.monotonic() - began, 1)
    progress.update(finished=True, current=[], stopped=None, at=time.time())
    lvstun.records.store(__opts__, _rec(lvstun.records.ROLLING, site), progress)
    return {"done": progress["done"], "seconds": timings}


def _new_rolling(site, targets, action, reboot, reboot_timeout, batch, timeout, on_timeout):
    """A new rolling's record, its arguments checked (SaltInvocationError: nothing done)."""
    try:
        names = lvstun.rolling.targets_of(site, targets)
    except ValueError as err:
        raise SaltInvocationError(str(err)) from None
    if on_timeout not in lvstun.rolling.ON_TIMEOUT:
        raise SaltInvocationError(f"on_timeout: {on_timeout!r} is not one of {', '.join(lvstun.rolling.ON_TIMEOUT)}")
    if not action and not reboot:
        raise SaltInvocationError("nothing to do on each host: give action=SLS and/or reboot=True")
    if site.role_of(names[0]) == "director":
        batch = 1  # one director at a time, whatever the batch
    return {"targets": names, "done": [], "batch": max(1, int(batch)), "action": action, "reboot": bool(reboot),
            "timeout": float(timeout), "on_timeout": on_timeout,
            "reboot_timeout": float(timeout if reboot_timeout is None else reboot_timeout)}


def _roll(site, group, progress, plan):
    """One batch through every step (``lvstun.rollout``); the reason it stopped, or None."""
    return lvstun.rollout.run_batch(_master(site), site, group, progress, plan)


def _master(site):
    """What a rolling of ``site`` does through Salt (``lvstun.rollout.Master``)."""

    def refused(fun):
        def call(*args, **kwargs):
            try:
                return fun(*args, **kwargs)
            except SaltInvocationError as err:  # the router refused (the last director up), a host unknown ...
                raise lvstun.rollout.Stop(str(err)) from None
        return call

    return lvstun.rollout.Master(
        cmd=refused(_cmd), drain=refused(drain), undrain=refused(undrain),
        drain_director=refused(lambda name, timeout: _drain_director(site, name, timeout)),
        router_view=refused(lambda: _router_view(site)), record=lambda: lvstun.healthstore.current(__opts__, site),
        store=lambda progress: lvstun.records.store(__opts__, _rec(lvstun.records.ROLLING, site), progress),
        say=_say, fire=lambda tag, data: _fire([(tag, data)]))
