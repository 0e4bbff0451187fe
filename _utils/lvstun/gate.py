"""Which beacon events start a runner job on the master: the reactor's gate.

Salt's reactor renders its SLS for every event in one process and runs the runner jobs
it renders in that process's threads, one job start costing tens of milliseconds: a
flood of events would queue a job each and delay a genuine one by minutes. The reactor
SLS asks :func:`admit` first (through the ``lvs_reactor`` execution module) and the
runner's job tells :func:`start` and :func:`again`; this module's state is shared by
both because it is one Python module in one process.

An event is dropped before any job when

- its minion is no real server (``lvs_backend``), director (``lvs_hosts``) or router
  (``lvs_directors``) of the site
  its own pillar names (``lvstun.sites``: read again only when that minion's pillar was
  refreshed), or
- a job for the same minion (for ``lvs_hosts`` and ``lvs_directors`` events: the same
  site's poll)
  is queued and not started (it asks afresh when it starts), or running (it is told to
  run once more when its round ends): the newest news is never lost.

So a flood of N events costs N renders and, per real server, one job that runs as many
rounds as its checks take while the flood lasts, whatever the events say.
"""

import threading
import time

from . import sites as sites_mod

STALE_JOB = 30  # seconds after which a job that never started (a full pool dropped it) or never ended stops blocking

_LOCK = threading.Lock()
_JOBS = {}  # (kind, key) -> {"state": "queued"|"running", "at": monotonic, "again": bool}

ROLE_OF_KIND = {"health": "realserver", "hosts": "director", "directors": "router"}
BEACON_KIND = {"lvs_backend": "health", "lvs_hosts": "hosts", "lvs_directors": "directors"}


def site_of(opts, minion, role=None):
    """The site of ``minion`` (``lvstun.sites``), or None (also when its role there is
    not ``role``). Raises ``lvstun.site.SiteError`` when that site is invalid."""
    site = sites_mod.index(opts).site_of(minion)
    if site is None or (role is not None and site.role_of(minion) != role):
        return None
    return site


def job_key(kind, minion, site):
    """The gate's key of a job: a real server's own (health), a site's (hosts, directors)."""
    return (kind, minion) if kind == "health" else (kind, site.name)


def job_for(tag):
    """``(kind, minion)`` of a beacon event tag: ``("health", id)`` for
    ``salt/beacon/<id>/lvs_backend/...``, ``("hosts", id)`` for ``.../lvs_hosts/...``,
    ``("directors", id)`` for ``.../lvs_directors/...`` (a router's), else ``(None,
    None)``. Only the tag's minion id is taken, as a name to verify."""
    parts = str(tag).split("/")
    if len(parts) < 4 or parts[0] != "salt" or parts[1] != "beacon" or not parts[2]:
        return None, None
    kind = BEACON_KIND.get(parts[3])
    return (kind, parts[2]) if kind else (None, None)


def admit(opts, kind, minion, now=None):
    """The gate's key when an event of ``kind`` from ``minion`` may start a job now, else
    None: ``minion`` is no real server (``health``), director (``hosts``) or router
    (``directors``) of its site;
    or a job for the same key is queued and not started (it takes the news along), or
    running (told to run once more when it ends)."""
    site = site_of(opts, minion, ROLE_OF_KIND[kind])
    if site is None:
        return None
    key = job_key(kind, minion, site)
    now = time.monotonic() if now is None else now
    with _LOCK:
        job = _JOBS.get(key)
        if job is not None and now - job["at"] < STALE_JOB:
            if job["state"] == "running":
                job["again"] = True
            return None
        _JOBS[key] = {"state": "queued", "at": now, "again": False}
        return key


def start(key):
    """The job of ``key`` (:func:`job_key`) begins; False when another one of the same
    key runs in this process (it will run once more for this one: return at once)."""
    now = time.monotonic()
    with _LOCK:
        job = _JOBS.get(key)
        if job is not None and job["state"] == "running" and now - job["at"] < STALE_JOB:
            job["again"] = True
            return False
        _JOBS[key] = {"state": "running", "at": now, "again": False}
        return True


def again(key):
    """The job ends its round: True when events came meanwhile (run once more), else the
    key is free for the next event."""
    with _LOCK:
        job = _JOBS.get(key)
        if job is not None and job["again"]:
            job.update(again=False, at=time.monotonic())
            return True
        _JOBS.pop(key, None)
        return False


def forget(key):
    """The job ended without its last round (an error): free the key."""
    with _LOCK:
        _JOBS.pop(key, None)
