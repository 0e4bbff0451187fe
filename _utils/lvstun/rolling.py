"""Rolling maintenance of real servers, as plain logic: which hosts, in which batches,
whether a batch may go out without taking a service below its floor, and what says a
step is over (the ``lvs`` runner drives the steps: ``lvs.rolling``).

Each host (or batch) in turn goes through ``STEPS``: drained on every director; its
connections through every director finished (or the timeout, then the operator's
choice); the action (an SLS applied, and/or a reboot); back (it answers again); healthy
(its own report, made after the action, says every service it backs is healthy, and no
director's own path checks take it out); undrained.
"""

from . import health

STEPS = ("drain", "idle", "action", "back", "healthy", "undrain")
ON_TIMEOUT = ("stop", "continue")  # what a host whose connections do not finish in time gets


def targets_of(site, targets):
    """The hosts to roll, in order: ``targets`` (a list, or minion ids separated by
    commas), or every real server of the site; all real servers, or all directors of a
    site with several (one at a time: the router's group keeps the others); raise
    ValueError naming what is wrong."""
    if targets in (None, "", [], ()):
        return sorted(host.minion_id for host in site.realservers)
    names = str(targets).split(",") if isinstance(targets, str) else list(targets)
    names = list(dict.fromkeys(str(name).strip() for name in names if str(name).strip()))
    if not names:
        raise ValueError("no host to roll")
    roles = {site.role_of(name) for name in names}
    if roles == {"director"}:
        if len(site.directors) < 2:
            raise ValueError("a lone director cannot be rolled: nothing would forward while it is out")
        return names
    wrong = [name for name in names if site.role_of(name) != "realserver"]
    if wrong:
        raise ValueError(f"not real servers of the site: {', '.join(wrong)} (directors are rolled apart)")
    return names


def table_whole(site, table):
    """Whether a director's table (``ipvs.list``) holds every service of the site with
    every destination (its weights are its own business: its path checks may take some out)."""
    if not isinstance(table, list):
        return False
    from .address import join_hostport  # noqa: PLC0415
    have = {}
    for svc in table:
        spec = f"{svc.get('protocol')}:{join_hostport(svc.get('address'), svc.get('port'))}"
        have[spec] = {join_hostport(d.get("address"), d.get("port")) for d in svc.get("destinations", ())}
    return all(svc.spec in have and {join_hostport(m.address, m.port) for m in svc.members} <= have[svc.spec]
               for svc in site.services.values())


def batches(names, size):
    """``names`` in batches of ``size`` (at least 1)."""
    size = max(1, int(size))
    return [names[i:i + size] for i in range(0, len(names), size)]


def floor_problems(site, record, out):
    """What taking ``out`` (minion ids) out at once, beside the backends down or drained
    already by ``record``, would break: ``["web: 1 of 3 backends would serve, its floor
    is 2"]`` (empty: it may go)."""
    problems = []
    for svc in site.services.values():
        if not any(backend.minion_id in out for backend in svc.backends):
            continue
        serving = sum(1 for b in svc.backends if b.minion_id not in out
                      and health.healthy(record, b.minion_id, svc.name)
                      and not health.in_maintenance(record, b.minion_id, svc.name))
        floor = health.floor_count(svc.floor, len(svc.backends))
        if serving < floor:
            problems.append(f"{svc.name}: {serving} of {len(svc.backends)} backends would serve, its floor is {floor}")
    return problems


def connections(tables, addresses):
    """``{director: connections}`` to any of ``addresses`` (active and inactive, every
    service) in each director's table (``ipvs.list`` answers; a director that did not
    answer is None: not known to be idle)."""
    out = {}
    for director, table in tables.items():
        if not isinstance(table, list):
            out[director] = None
            continue
        out[director] = sum(int(dest.get("active", 0)) + int(dest.get("inactive", 0))
                            for svc in table for dest in svc.get("destinations", ())
                            if dest.get("address") in addresses)
    return out


def idle(counts):
    """Whether every director answered and holds no connection."""
    return bool(counts) and all(count == 0 for count in counts.values())


def back_healthy(report, services, since):
    """Whether a real server's own report (``lvs_health.report``) was made after
    ``since`` and says every one of ``services`` is healthy."""
    if not isinstance(report, dict) or not isinstance(report.get("services"), dict):
        return False
    at = report.get("at")
    if not isinstance(at, (int, float)) or at < since:
        return False
    return all((report["services"].get(name) or {}).get("healthy") is True for name in services)


def path_clear(locals_, minion, directors):
    """Whether every director answered and none of their own path checks takes
    ``minion`` out (``lvs_health.local`` answers)."""
    return all(isinstance(locals_.get(d), dict) and not locals_[d].get(minion) for d in directors)
