"""Which beacon events start a runner job on the master: the reactor's gate.

Salt's reactor renders its SLS for every event in one process and runs the runner jobs
it renders in that process's threads, one job start costing tens of milliseconds: a
flood of events would queue a job each and delay a genuine one by minutes. The reactor
SLS asks :func:`admit` first (through the ``lvs_reactor`` execution module) and the
runner's job tells :func:`start` and :func:`again`; this module's state is shared by
both because it is one Python module in one process.

An event is dropped before any job when

- it names no real server of the site (the site as compiled at most ``SITE_TTL``
  seconds ago; an unknown name compiles it again at most once per ``SITE_TTL``), or
- a job for the same minion (or, for ``lvs_hosts`` events, the directors' poll) is
  queued and not started (it asks the minion afresh when it starts), or running (it is
  told to run once more when its round ends): the newest news is never lost.

So a flood of N events costs N renders and, per real server, one job that runs as many
rounds as its checks take while the flood lasts, whatever the events say.
"""

import threading
import time

from . import site as site_mod

SITE_TTL = 5  # seconds a compiled site answers "who is a real server" for unknown names
STALE_JOB = 30  # seconds after which a job that never started (a full pool dropped it) or never ended stops blocking

_LOCK = threading.Lock()
_SITE = {}  # "site": the last site compiled, "at": when (monotonic)
_JOBS = {}  # (kind, minion) -> {"state": "queued"|"running", "at": monotonic, "again": bool}


def compile_site(opts):
    """The site from the pillar as the master compiles it for its own id (the site's tree
    is the same for every minion of the site); remembered for :func:`known_realserver`.
    Raises ``lvstun.site.SiteError`` on an invalid site."""
    import salt.pillar  # noqa: PLC0415 (only on the master)

    pillar = salt.pillar.get_pillar(opts, {}, opts["id"], saltenv="base").compile_pillar()
    site = site_mod.parse(pillar)
    with _LOCK:
        _SITE.update(site=site, at=time.monotonic())
    return site


def is_realserver(site, minion):
    host = site.hosts.get(minion) if site is not None else None
    return host is not None and host.role == "realserver"


def known_realserver(opts, minion):
    """Whether ``minion`` is a real server of the site, compiling the pillar only when the
    name is unknown and the last compile is older than ``SITE_TTL`` (which raises
    ``lvstun.site.SiteError`` on an invalid site)."""
    with _LOCK:
        cached, at = _SITE.get("site"), _SITE.get("at", -SITE_TTL)
    if is_realserver(cached, minion):
        return True
    if time.monotonic() - at < SITE_TTL:
        return False
    return is_realserver(compile_site(opts), minion)


def job_for(tag):
    """``(kind, minion)`` of a beacon event tag: ``("health", id)`` for
    ``salt/beacon/<id>/lvs_backend/...``, ``("hosts", None)`` for ``.../lvs_hosts/...``,
    else ``(None, None)``. Only the tag's minion id is taken, as a name to verify."""
    parts = str(tag).split("/")
    if len(parts) < 4 or parts[0] != "salt" or parts[1] != "beacon" or not parts[2]:
        return None, None
    if parts[3] == "lvs_backend":
        return "health", parts[2]
    if parts[3] == "lvs_hosts":
        return "hosts", None
    return None, None


def admit(opts, kind, minion=None, now=None):
    """Whether an event of ``kind`` (naming ``minion``) may start a job now. A job for the
    same key queued and not started takes the news along (dropped); one running is told
    to run once more when it ends (dropped too); otherwise the job is admitted, queued."""
    if kind == "health" and not known_realserver(opts, minion):
        return False
    key = (kind, minion)
    now = time.monotonic() if now is None else now
    with _LOCK:
        job = _JOBS.get(key)
        if job is not None and now - job["at"] < STALE_JOB:
            if job["state"] == "running":
                job["again"] = True
            return False
        _JOBS[key] = {"state": "queued", "at": now, "again": False}
        return True


def start(kind, minion=None):
    """A job of ``kind`` for ``minion`` begins; False when another one of the same key
    runs in this process (it will run once more for this one: return at once)."""
    key, now = (kind, minion), time.monotonic()
    with _LOCK:
        job = _JOBS.get(key)
        if job is not None and job["state"] == "running" and now - job["at"] < STALE_JOB:
            job["again"] = True
            return False
        _JOBS[key] = {"state": "running", "at": now, "again": False}
        return True


def again(kind, minion=None):
    """The job ends its round: True when events came meanwhile (run once more), else the
    key is free for the next event."""
    key = (kind, minion)
    with _LOCK:
        job = _JOBS.get(key)
        if job is not None and job["again"]:
            job.update(again=False, at=time.monotonic())
            return True
        _JOBS.pop(key, None)
        return False


def forget(kind, minion=None):
    """The job ended without its last round (an error): free the key."""
    with _LOCK:
        _JOBS.pop((kind, minion), None)
