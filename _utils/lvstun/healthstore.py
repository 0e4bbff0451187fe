"""A site's health record on the master, as the runner keeps it: one JSON document per
site (``lvstun.records.HEALTH`` named after the site) and a second copy of its drains
(``DRAINS``), each with its previous version (``lvstun.jsonstore``).

:func:`changing` is the one way to change it: the record is locked against the
reactor's other threads and ``salt-run``, read (recovered when damaged or lost,
``lvstun.healthrecord.recover``), and written back as its next version when the block
ends without an error. Never wait on the network while it is held. :func:`adopt` takes
what the directors give back of a version the master lost.

.. code-block:: python

    with lvstun.healthstore.changing(opts, site) as record:
        record["maintenance"]["rs2"] = {"services": ["*"], "reason": "kernel upgrade"}
"""

import contextlib
import copy
import logging
import time

from . import healthrecord, jsonstore, records

log = logging.getLogger(__name__)


def _versions(opts, record):
    return jsonstore.versions(opts, record.name, lambda data: records.check(record, data))


def _load(opts, site):
    """The record (the caller holds its lock), recovered from its previous version and
    the drains' copy when damaged or lost (the recovery written back at once, noted in
    the record); a master upgraded from a pack without sites shares its old record."""
    now = time.time()
    health = _versions(opts, records.HEALTH.named(site.name))
    drains = _versions(opts, records.DRAINS.named(site.name))
    if all(problem == "missing" for versions in (health, drains) for _, problem in versions.values()):
        legacy = records.load(opts, records.LEGACY_HEALTH)
        if legacy.get("epoch"):
            record = healthrecord.share(legacy, set(site.hosts), site.name, now)
            log.warning("lvs: %s", record["recoveries"][-1]["what"])
            write(opts, site, record)
            return record
    record, recovered = healthrecord.recover(health, drains, now)
    if recovered:
        notes = record.get("recoveries") or []
        if notes and notes[-1]["at"] == now:  # (else an older pack's record, stamped from now on)
            log.error("lvs: site %s: the health record was recovered: %s", site.name, notes[-1]["what"])
        write(opts, site, record)
    record.setdefault("health", {})
    record.setdefault("maintenance", {})
    return record


def write(opts, site, record):
    """Write ``record`` as its next version (the caller holds its lock): ``seq`` one up;
    the drains' copy first, so that a drain is on disk before its weights are pushed, and
    in two files."""
    record["seq"] = healthrecord.stamp(record)[1] + 1
    record["at"] = time.time()  # informative only: versions are ordered by seq
    records.store(opts, records.DRAINS.named(site.name), {
        "epoch": record["epoch"], "seq": record["seq"], "maintenance": record.get("maintenance") or {}})
    records.store(opts, records.HEALTH.named(site.name), record)


@contextlib.contextmanager
def changing(opts, site):
    """``site``'s health record, locked; written back (its next version) when the block
    ends without an error and changed it."""
    with records.locked(opts, records.HEALTH.named(site.name)):
        record = _load(opts, site)
        before = copy.deepcopy(record)
        yield record
        if record != before:
            write(opts, site, record)


def current(opts, site):
    """``site``'s health record as it is now (read under its lock)."""
    with records.locked(opts, records.HEALTH.named(site.name)):
        return _load(opts, site)


def adopt(opts, site, answers):
    """What the directors' ``answers`` (``{director: lvs_health.apply's answer}``) give
    back that the master lost: a later version of its own lineage (adopted whole) or the
    drains of a lineage a recovery replaced (kept). Whether the record changed (then
    written: the caller pushes it again)."""
    given = [(d, a) for d, a in sorted(answers.items()) if isinstance(a, dict)]
    if not any(isinstance(a.get(k), dict) for _, a in given for k in ("copy", "previous")):
        return False
    with records.locked(opts, records.HEALTH.named(site.name)):
        mine, changed = _load(opts, site), False
        for director, answer in given:
            for key, merge in (("copy", healthrecord.adopt), ("previous", healthrecord.merge_drains)):
                held = answer.get(key)
                if isinstance(held, dict) and not records.check(records.HEALTH, held) and \
                        merge(mine, held, director, time.time()):
                    log.error("lvs: %s", mine["recoveries"][-1]["what"])
                    changed = True
        if changed:
            write(opts, site, mine)
        return changed
