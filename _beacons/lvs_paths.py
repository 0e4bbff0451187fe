"""Beacon on each director: every backend checked through its tunnel, and taken out
of this director's table at once when it fails, with or without the salt-master.

A thread of the beacon checks each service's backends every ``health:path_interval``
(0.5 s by default; 3 to 7 packets a check) along the path clients take (``lvstun.pathcheck``: the service's check sent
in IPIP to the real server with the VIP inside, as IPVS forwards), so a dead service,
a dead or cut-off host, a broken tunnel, a lost VIP and a network that drops IP
protocol 4 all fail it. Results are damped as the real servers' own checks are
(``fall`` failures in a row, a refused connection being tried again at once so that a
service that refuses is down within one round; ``rise`` passing rounds), and a backend
down here comes back no sooner than its ``check:hold`` seconds (the site's
``health:hold``, 10 by default) after it went down. Damping delays only a return:
``fall`` failures take a backend out whatever it did before.

On a change the thread stores its verdicts (``lvs_health.local``). Every round, changed
or not, it calls ``lvs_health.apply``: this director's decision (the applied site, its
copy of the runner's record, these verdicts: ``lvstun.health.with_local``) compared
with the kernel's table, and any difference written (a weight something else set is
put back within one round, logged as a repair). Nothing waits for the master. The
checks only take backends out; what the runner keeps out (its own health record,
maintenance drains) stays out, and the floor and the sorry server apply here as they
do in the runner.

Each change also fires an event (informative: the reactor starts no job for it)::

    salt/beacon/<director>/lvs_paths/
    {"down": {"rs1": ["web"]}, "changed": ["web rs1"], "reasons": {"web rs1": "..."}}

The thread stops when the beacon is deleted (``close``), has not been called for
``STALE`` seconds (disabled, the minion stopping) or the minion is no longer a director.

.. code-block:: yaml

    beacons:
      lvs_paths:
        - interval: 1
"""

import contextvars
import dataclasses
import logging
import time

import lvstun.beaconconf
import lvstun.beaconthread
import lvstun.health
import lvstun.pathcheck
import lvstun.records
from lvstun.fresh import fresh

fresh(lvstun.beaconconf)
fresh(lvstun.beaconthread)
fresh(lvstun.health)
fresh(lvstun.pathcheck)
fresh(lvstun.records)

log = logging.getLogger(__name__)

__virtualname__ = "lvs_paths"
STALE = 10  # seconds without a call of the beacon after which its thread stops
# What a director sends for each kind of check (a script runs on the real server only:
# its director checks a TCP service's port; "none" is not checked).
KINDS = {"http": "http", "https": "tcp", "tcp": "tcp", "udp": "udp", "dns": "dns"}


def __virtual__():
    return __virtualname__


def validate(config):
    return lvstun.beaconconf.validate(__virtualname__, config, {})


@dataclasses.dataclass
class Check:
    """One backend of one service, as the director checks it."""

    service: str
    minion: str
    probe: lvstun.pathcheck.Probe
    interval: float
    rise: int
    fall: int
    hold: int
    silence: float  # seconds between two silent rounds that count (the service's check:interval)


def plan(site):
    """``{"<service> <minion>": Check}``: every backend of every
    service whose check is not ``none`` (sorry servers are not checked: they stand in
    when nothing else serves)."""
    checks = {}
    for svc in site.services.values():
        check = svc.check
        kind = "tcp" if check["type"] == "script" and svc.protocol == "tcp" else KINDS.get(check["type"])
        if kind == "dns" and svc.protocol == "tcp":
            kind = "tcp"  # a DNS server on TCP: its port answers (the query itself: the real server's check)
        if kind is None:
            continue
        for backend in svc.backends:
            probe = lvstun.pathcheck.Probe(kind, backend.address, svc.vip, check["port"], float(check["timeout"]),
                                    tries=int(check["fall"]), path=check["path"], expect=check["expect"],
                                    body=check["body"], host=check["host"],
                                    query=(check["query"], check["query_type"], check["rcode"], check["answer"]),
                                    encap=(svc.encap.kind, svc.encap.port))
            checks[f"{svc.name} {backend.minion_id}"] = Check(svc.name, backend.minion_id, probe,
                                                              site.health.path_interval, int(check["rise"]),
                                                              int(check["fall"]), int(check["hold"]),
                                                              float(check["interval"]))
    return checks


def round_(state, checks, outcomes, now):
    """Feed each backend's attempts (``{key: [(ok, reason), ...]}``) to its damper and
    return the keys whose verdict changed (pure). ``state["down"]``: ``{key: time it
    went down}``; one that passes again returns only its check's ``hold`` seconds after,
    unless it had never passed here (``state["unproven"]``: a backend checked before its
    real server was set up, as when a whole site is applied at once): that one never
    failed, and comes in at its first ``rise`` passes, as ``check:alpha`` backends do.

    A refusal (a reset, an ICMP unreachable, a wrong answer) counts at once; silence
    counts once per ``check:interval`` of the service: a backend that does not answer
    is out after ``fall`` of the service's intervals, as its pillar says, however often
    the director checks (a busy network or host is not taken for a dead one sooner)."""
    dampers, down = state.setdefault("dampers", {}), state.setdefault("down", {})
    reasons, changed = state.setdefault("reasons", {}), []
    silent_at = state.setdefault("silent_at", {})
    passed, unproven = state.setdefault("passed", set()), state.setdefault("unproven", set())
    for key, attempts in outcomes.items():
        check = checks[key]
        damper = lvstun.health.Damper.load(check.rise, check.fall, dampers.get(key, {"up": key not in down}))
        for ok, reason in attempts:
            reasons[key] = reason
            if not ok and reason.endswith(lvstun.pathcheck.SILENT):
                if now - silent_at.get(key, float("-inf")) < check.silence - 0.05:
                    continue  # silent again within the service's interval: not a new failure
                silent_at[key] = now
            damper.feed(ok)
        dampers[key] = damper.dump()
        if not damper.up and key not in down:
            down[key] = now
            if key not in passed:
                unproven.add(key)  # never answered here yet (a site being built): no hold
            changed.append(key)
        elif damper.up and key in down and (key in unproven
                                            or lvstun.health.may_restore({"down_at": down[key]}, now, check.hold)):
            del down[key]
            unproven.discard(key)
            changed.append(key)
        if damper.up and any(ok for ok, _ in attempts):
            passed.add(key)
    for key in (set(dampers) | set(down)) - set(checks):
        dampers.pop(key, None)
        reasons.pop(key, None)
        silent_at.pop(key, None)
        passed.discard(key)
        unproven.discard(key)
        if down.pop(key, None) is not None:
            changed.append(key)
    return sorted(changed)


def verdicts(state, checks):
    """``{minion: [service, ...]}`` of the backends down here."""
    found = {}
    for key in sorted(state.get("down", {})):
        if key in checks:
            found.setdefault(checks[key].minion, []).append(checks[key].service)
    return found


def _loop(worker):
    """The thread: a round for the checks that are due, then this director's weights
    brought to its decision (``lvs_health.apply``), then sleep until the next round."""
    opts = worker.opts
    state = {"down": dict(lvstun.records.load(opts, lvstun.records.PATH_VERDICTS).get("down_at") or {})}
    due_at, failing = {}, Failing()
    for (checks, source), context in worker.rounds():
        now = time.monotonic()
        due = {key: check for key, check in checks.items() if due_at.get(key, 0) <= now}
        due_at = {key: due_at[key] for key in checks if key in due_at and key not in due}
        due_at.update({key: now + check.interval for key, check in due.items()})
        try:
            outcomes = lvstun.pathcheck.run(source, {key: check.probe for key, check in due.items()}) if due else {}
        except OSError as err:  # no raw or packet socket here (not root?): nothing is decided
            failing.log("cannot send path checks", err)
            outcomes = {}
        changed = round_(state, checks, outcomes, time.time())
        if changed:
            _store(worker, state, checks, changed)
        # Every round, changed or not: the kernel's table is compared with the decision
        # and repaired (a weight set by anything else is put back within one round).
        try:
            context.run(lambda: __salt__["lvs_health.apply"]())
            failing.cleared()
        except Exception as err:  # pylint: disable=broad-except
            failing.log("setting this director's weights failed (tried again next round)", err)
        if changed:
            log.warning("lvs_paths: %s", {key: ("down" if key in state["down"] else "up") for key in changed})
        worker.sleep(max(0.05, min(due_at.values(), default=now + 1) - time.monotonic()))


class Failing:
    """Logs a failure of the thread's rounds once, then again only every ``EVERY``
    seconds while it lasts (a round runs twice a second), and says when it ends."""

    EVERY = 60

    def __init__(self):
        self.since, self.logged = None, float("-inf")

    def log(self, what, err):
        now = time.monotonic()
        if self.since is None:
            self.since = now
        if now - self.logged >= self.EVERY:
            self.logged = now
            log.error("lvs_paths: %s: %s", what, err, exc_info=not isinstance(err, OSError))

    def cleared(self):
        if self.since is not None:
            log.warning("lvs_paths: rounds succeed again after %.1f s", time.monotonic() - self.since)
        self.since, self.logged = None, float("-inf")


def _store(worker, state, checks, changed):
    """Keep this round's verdicts (``lvs_health.local`` reads them) and report the change."""
    down = verdicts(state, checks)
    reasons = {key: state["reasons"].get(key) for key in sorted(state["down"]) if key in checks}
    lvstun.records.store(worker.opts, lvstun.records.PATH_VERDICTS,
                         {"at": time.time(), "down": down, "down_at": state["down"], "reasons": reasons})
    worker.report({"down": down, "changed": changed, "reasons": reasons})


def close(config):  # pylint: disable=unused-argument
    """Salt calls it when the beacon is deleted: the thread ends, its round finished."""
    worker = __context__.get("lvs_paths")
    if worker is not None:
        worker.stop()


def beacon(config):
    """Keep the checking thread going (started on the first call) with the newest site,
    and return the events of the changes it saw since the last call."""
    worker = __context__.get("lvs_paths")
    if worker is None:
        worker = __context__["lvs_paths"] = lvstun.beaconthread.BeaconThread("lvs_paths", _loop, STALE)
        worker.opts = __opts__
    site = lvstun.beaconconf.applied_site(__salt__)  # None: an invalid site, keep the last good checks
    settings, stop = None, False
    if site is not None:
        stop = site.role_of(__opts__["id"]) != "director"
        if not stop:
            settings = (plan(site), site.hosts[__opts__["id"]].address)
    worker.keep(settings, contextvars.copy_context(), stop=stop)
    return worker.reports()
