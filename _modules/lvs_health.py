"""Backend health on the minions: what a real server's beacon last concluded, and the
weights a director runs.

A director's weights follow one decision (``lvstun.health``): the site the last
highstate applied, its copy of the runner's health record, and its own path checks
(the ``lvs_paths`` beacon: backends it finds down through their tunnels are down here,
master or no master). Every write of them, the path checks' thread every round
(:func:`apply`), a runner push (:func:`apply` with the record) and a highstate's table
(``lvs_health.table``), computes them that way under one lock, from the same records;
the thread compares them with the kernel's table every round and puts back any weight
something else changed (logged as a repair).

The copy of the runner's record is replaced only by a version that supersedes it
(``lvstun.healthrecord``: the master's sequence, not clocks), from a push or from a
highstate's pillar (the ext_pillar ``lvs_health``).

CLI Example:

.. code-block:: bash

    salt rs1 lvs_health.report
    salt director lvs_health.apply
    salt director lvs_health.local
    salt director lvs_health.held
"""

import logging
import os
import time

from salt.exceptions import SaltInvocationError

import lvstun.health
import lvstun.healthrecord
import lvstun.jsonstore
import lvstun.records
import lvstun.roles
from lvstun.fresh import fresh

fresh(lvstun.health)
fresh(lvstun.healthrecord)
fresh(lvstun.jsonstore)
fresh(lvstun.records)
fresh(lvstun.roles)

log = logging.getLogger(__name__)

__virtualname__ = "lvs_health"


def __virtual__():
    return __virtualname__


def report():
    """This real server's health as its ``lvs_backend`` beacon last concluded:
    ``{"services": {name: {"healthy": bool, "reason": str}}, "tunnel": [...], "at": t, "age": s}``,
    or ``{"services": {}, "age": None}`` when the beacon has not run.

    CLI Example:

    .. code-block:: bash

        salt rs1 lvs_health.report
    """
    record = lvstun.records.load(__opts__, lvstun.records.BACKEND_REPORT)
    if not record:
        return {"services": {}, "tunnel": [], "age": None}
    return {"services": record["services"], "tunnel": record.get("tunnel", []), "at": record["at"],
            "age": round(time.time() - record["at"], 3)}


def local():
    """The backends this director's own path checks find down (its ``lvs_paths``
    beacon): ``{minion: [service, ...]}``, empty when none is or the beacon has not run.

    CLI Example:

    .. code-block:: bash

        salt director lvs_health.local
    """
    return lvstun.records.load(__opts__, lvstun.records.PATH_VERDICTS)["down"]


def _pillar_record():
    """The runner's record in this minion's pillar (a highstate's: the ext_pillar), or
    None when it has none of the record's shape."""
    found = (__pillar__ or {}).get(lvstun.health.PILLAR_KEY)
    if not found:
        return None
    wrong = lvstun.records.check(lvstun.records.RUNNER_COPY, found)
    if wrong:
        log.error("lvs_health: the health record in the pillar is not of the record's shape (%s): not used",
                  "; ".join(wrong[:3]))
        return None
    return found


def record(pillar=False):
    """The health record this director runs by: its copy of the runner's record (or,
    with ``pillar``, the one in this minion's pillar when it supersedes the copy: a
    highstate's) with this director's own verdicts on top (``lvstun.health.with_local``).

    pillar
        True: the record in this minion's pillar (``lvs_health``) counts too, when it
        supersedes the copy; default False.

    CLI Example:

    .. code-block:: bash

        salt director lvs_health.record
    """
    runner = lvstun.records.load(__opts__, lvstun.records.RUNNER_COPY)
    candidate = _pillar_record() if pillar else None
    if lvstun.healthrecord.supersedes(candidate, runner):
        runner = candidate
    return lvstun.health.with_local(runner, local())


def _accept(offered):
    """Keep ``offered`` when it supersedes this director's copy (the caller holds the
    copy's lock); return ``(copy held before, copy held now)``. A new lineage (the
    master recovered its record) does not drop a drain of the copy it replaces: the
    runner learns of it from the answer and keeps it, or undrains it itself."""
    held = lvstun.records.load(__opts__, lvstun.records.RUNNER_COPY)
    if not lvstun.healthrecord.supersedes(offered, held):
        return held, held
    now = dict(offered)
    if lvstun.healthrecord.stamp(held)[0] in (offered.get("supersedes") or []):
        now["maintenance"] = {**(held.get("maintenance") or {}), **(offered.get("maintenance") or {})}
    lvstun.records.store(__opts__, lvstun.records.RUNNER_COPY, now)
    return held, now


def _checked(offered):
    wrong = lvstun.records.check(lvstun.records.RUNNER_COPY, offered)
    if not isinstance(offered, dict) or wrong:
        raise SaltInvocationError(f"not a health record: {'; '.join(wrong[:5]) or type(offered).__name__}")
    return offered


def _answer(before, now, offered):
    """What the runner learns: the version held now; ``copy``, when this director holds
    a version the master lacks (it kept its copy); ``previous``, its copy of a lineage
    the offered one replaced (the master recovered its record: it keeps those drains)."""
    out = {"holds": lvstun.healthrecord.summary(now)}
    if offered is None:
        return out
    epoch = lvstun.healthrecord.stamp(before)[0]
    if now is before and not lvstun.healthrecord.same(before, offered):
        out["copy"] = before
    elif now is not before and epoch and epoch != lvstun.healthrecord.stamp(offered)[0]:
        out["previous"] = before
    return out


def accept(offered):
    """Keep the runner's record ``offered`` when it supersedes this director's copy
    (a highstate offers its pillar's); return ``{"holds": {"epoch", "seq", "digest"}}``
    and, when this director holds what the master lacks, ``"copy"`` (a later version
    than the one offered) or ``"previous"`` (its copy of a lineage the offered one
    replaced).

    offered
        A health record of the runner (``lvstun.records.HEALTH_RECORD``'s shape): ``epoch``,
        ``seq``, ``health``, ``maintenance``.

    CLI Example:

    .. code-block:: bash

        salt director lvs_health.accept '{"epoch": "...", "seq": 7, "health": {}, "maintenance": {}}'
    """
    offered = _checked(offered)
    with lvstun.records.locked(__opts__, lvstun.records.RUNNER_COPY):
        return _answer(*_accept(offered), offered)


def held():
    """This director's copy of the runner's record: its version and its drains.

    CLI Example:

    .. code-block:: bash

        salt director lvs_health.held
    """
    copy = lvstun.records.load(__opts__, lvstun.records.RUNNER_COPY)
    return {**lvstun.healthrecord.summary(copy), "maintenance": copy.get("maintenance") or {}}


def _log_repairs(changes, last_set):
    """Log each weight changed that the pack had not set as it found it: something else
    wrote it (a hand, another tool), and it was put back."""
    for spec, dests in changes.items():
        if spec == "missing":
            continue
        for dest, change in dests.items():
            was = last_set.get(spec, {}).get(dest)
            if was is not None and change["old"] != was:
                log.warning("lvs_health: repaired %s -> %s: weight %s in the kernel, which the pack did not set "
                            "(it set %s): back to %s", spec, dest, change["old"], was, change["new"])


def note_set(weights):
    """Record ``{spec: {dest: weight}}`` as the weights the pack set (the table state
    does after it wrote them; :func:`apply` itself), so that a later difference is
    known for a repair. The caller holds the site's lock.

    weights
        ``{service spec: {destination: weight}}``.

    CLI Example:

    .. code-block:: bash

        salt director lvs_health.note_set '{"tcp:10.10.24.88:80": {"10.10.24.21:80": 1}}'
    """
    last = lvstun.records.load(__opts__, lvstun.records.WEIGHTS_SET)
    merged = {spec: dict(last.get(spec, {}), **dests) for spec, dests in weights.items()}
    if merged != last:
        lvstun.records.store(__opts__, lvstun.records.WEIGHTS_SET, merged)


_DECIDED = {}  # the inputs' file stamps -> the weights they decide (a director's thread asks every round)
_INPUTS = (lvstun.records.DIRECTOR_SITES, lvstun.records.SITE_APPLIED, lvstun.records.RUNNER_COPY,
           lvstun.records.PATH_VERDICTS)


def _stamps():
    """The inputs' files as they are now (inode, size, modification time), or None when
    the decision may rest on something else (no table state has recorded its site: this
    minion's pillar then)."""
    found = []
    for record in _INPUTS:
        try:
            info = os.stat(lvstun.jsonstore.path(__opts__, record.name))
        except FileNotFoundError:
            if record is lvstun.records.DIRECTOR_SITES:
                return None
            info = None
        found.append(info and (info.st_ino, info.st_size, info.st_mtime_ns))
    return tuple(found)


def _decided():
    """This director's weights (``{spec: {dest: weight}}``) by the site its table (and
    metrics) state last applied, its copy of the runner's record and its own verdicts,
    with its metrics' view stored; None on a minion that is no director. Made again
    only when one of those records changed (the caller holds the site's lock)."""
    stamps = _stamps()
    if stamps is not None and _DECIDED.get("stamps") == stamps:
        return _DECIDED["weights"]
    # The site the director's table (and metrics) state last applied: a highstate
    # writes the new site's weights itself, and reports them.
    cfg = __salt__["lvs_site.config"](applied="table")
    if cfg.get("role") != "director":
        return None
    metrics = __salt__["lvs_site.config"](applied="metrics").get("metrics")
    if metrics:
        __salt__["lvs_exporter.set_view"](metrics["view"], if_exporter=True)
    weights = lvstun.roles.weights_of(cfg["services"])
    _DECIDED.update(stamps=stamps, weights=weights)
    return weights


def apply(record=None):  # pylint: disable=redefined-outer-name
    """Bring this director's weights (and its metrics' view) to what its decision calls
    for: the site its table (and metrics) state last applied (``lvs_site.config
    applied=table``), its copy of the runner's record (``record``: a newer version pushed by the runner, kept
    when it supersedes the copy) and its own path checks. Only the weights the kernel's
    table has otherwise are written, in one batch (``ipvs.set_weights``); one the pack
    had not set as found is logged as a repair.

    Returns ``{"holds": {"epoch", "seq", "digest"}, "changes": {service: {dest: {"old",
    "new"}}}}`` (``changes`` has ``"missing"``: destinations this director's table
    lacks, as before its next highstate); with ``record``, ``"copy"`` or ``"previous"``
    when the master lacks what this director holds (:func:`accept`).

    record
        A health record the runner pushes (as :func:`accept` takes it); default: none, the
        director's own copy.

    CLI Example:

    .. code-block:: bash

        salt director lvs_health.apply
    """
    offered = None if record is None else _checked(record)
    # The site the last highstate applied, not the minion's in-memory pillar (older after
    # a pillar edit): the weights never go back to a pillar the site has left.
    with lvstun.records.locked(__opts__, lvstun.records.SITE_APPLIED):
        answer = _answer(*_accept(offered), offered) if offered is not None else \
            {"holds": lvstun.healthrecord.summary(lvstun.records.load(__opts__, lvstun.records.RUNNER_COPY))}
        weights = _decided()
        if weights is None:
            return {**answer, "changes": {}}
        last_set = lvstun.records.load(__opts__, lvstun.records.WEIGHTS_SET)
        changes = __salt__["ipvs.set_weights"](weights) if weights else {}
        _log_repairs(changes, last_set)
        note_set(weights)
        return {**answer, "changes": changes}


def status():
    """What ``salt-run lvs.status`` asks a director, in one call: its table
    (``ipvs.list``), what its path checks take out (:func:`local`) and its copy of the
    runner's record (:func:`held`).

    CLI Example:

    .. code-block:: bash

        salt director lvs_health.status
    """
    return {"table": __salt__["ipvs.list"](), "local": local(), "held": held()}


def reachability():
    """Which real servers this director reaches on the LAN, as its ``lvs_hosts``
    beacon last concluded: ``{minion id: bool}`` (empty when the beacon has not run).

    CLI Example:

    .. code-block:: bash

        salt director lvs_health.reachability
    """
    found = lvstun.records.load(__opts__, lvstun.records.HOSTS_REACH)
    return dict(found["reachable"]) if found else {}
