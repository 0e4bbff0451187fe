"""The runner's health record as a replicated document: the master writes it, every
director keeps a copy (pushed to it, and in its highstate's pillar).

Order: each version carries a stamp the master owns, ``epoch`` (a lineage: a random
token) and ``seq`` (one more at every write), never a wall-clock time: a clock stepped
back or a record dated in the future changes nothing. A director takes a record that
:func:`supersedes` its copy: the same lineage and a higher ``seq``, or a lineage that
names the director's in its ``supersedes`` list (the master started a new one), or an
unrelated lineage (the master lost every trace of its record: the later one wins).

Recovery on the master (:func:`recover`): the record (``health``) and a second copy of
its drains (``drains``, written first at every change) each keep their previous
version, so any single damaged or lost file leaves every drain somewhere; the newest
drains found are kept, the ``seq`` goes on above every version read, and what was
recovered is noted in ``recoveries`` (``lvs.status`` shows it). When the drains' copy
is lost too, the master starts a new lineage: each director answers its first push of
it with the copy it held, whose drains are kept (:func:`merge_drains`). A director that
holds a later version of the master's own lineage (the master's files restored from an
old backup) gives it back, and the master adopts it (:func:`adopt`).
"""

import hashlib
import json
import secrets

from . import health

RECOVERIES_KEPT = 10  # recovery notes a record keeps (the newest)
LINEAGES_KEPT = 16  # earlier epochs a record names as superseded


def stamp(record):
    """``(epoch, seq)`` of a record (``(None, 0)`` for one without: an older pack's)."""
    if not isinstance(record, dict):
        return None, 0
    return record.get("epoch"), int(record.get("seq") or 0)


def digest(record):
    """A digest of what a record decides for the directors: each real server's health
    (its services, its host, a dynamic check's weights) and the drains, not the times
    the runner keeps for itself. Two copies with one digest run the same weights."""
    record = record or {}
    health = {minion: {key: entry.get(key) for key in ("services", "host", "weights")}
              for minion, entry in (record.get("health") or {}).items()}
    drains = {minion: sorted(entry.get("services") or [])
              for minion, entry in (record.get("maintenance") or {}).items()}
    body = json.dumps({"health": health, "maintenance": drains}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def summary(record):
    """``{"epoch", "seq", "digest"}``: what a director answers it holds."""
    epoch, seq = stamp(record)
    return {"epoch": epoch, "seq": seq, "digest": digest(record)}


def supersedes(new, old):
    """Whether a director holding ``old`` takes ``new`` in its place."""
    if not new:
        return False
    (new_epoch, new_seq), (old_epoch, old_seq) = stamp(new), stamp(old)
    if not old or (old_epoch is None and new_epoch is not None):
        return True
    if new_epoch is None:
        return old_epoch is None  # two unstamped records (an older pack's): the later one
    if new_epoch == old_epoch:
        return new_seq > old_seq
    # A new lineage names the ones it replaces; of unrelated lineages (the master lost
    # every trace of its record and started afresh) the later one wins.
    return old_epoch in (new.get("supersedes") or []) or new_epoch not in (old.get("supersedes") or [])


def same(a, b):
    """Whether two records are the very same version (stamp and digest)."""
    return summary(a) == summary(b)


def fresh_lineage(record, previous_epoch=None):
    """``record`` as the first version of a new lineage (naming ``previous_epoch``)."""
    old = [e for e in [previous_epoch, *(record.get("supersedes") or [])] if e]
    record.update(epoch=secrets.token_hex(8), seq=0, supersedes=old[:LINEAGES_KEPT])
    return record


def note(record, at, what, lost=()):
    """Keep a recovery note in ``record`` (the newest :data:`RECOVERIES_KEPT`)."""
    notes = [*(record.get("recoveries") or []), {"at": at, "what": what, "lost": sorted(lost)}]
    record["recoveries"] = notes[-RECOVERIES_KEPT:]


def recover(health, drains, now):
    """The master's record from its files. ``health`` and ``drains``: each
    ``lvstun.jsonstore.versions``' answer (``{"current": (data, problem), "previous": ...}``).
    Returns ``(record, recovered)``: the record to use, and whether anything had to be
    recovered (then a note in the record says what, and the caller writes it back).
    The ``seq`` goes on from the highest of every version read."""
    (h_cur, h_err), (h_prev, _) = health["current"], health["previous"]
    (d_cur, _), (d_prev, _) = drains["current"], drains["previous"]
    versions = [r for r in (h_cur, h_prev, d_cur, d_prev) if r is not None]
    top = max((stamp(r)[1] for r in versions), default=0)
    if h_cur is not None and not stamp(h_cur)[0]:
        return fresh_lineage(dict(h_cur)), True  # an older pack's record: stamped from now on
    if h_cur is not None:
        if d_cur is None or stamp(d_cur)[0] != stamp(h_cur)[0] or stamp(d_cur)[1] <= stamp(h_cur)[1]:
            return h_cur, False
        # The drains were written, then the record was not (a crash between the two writes).
        record = dict(h_cur, maintenance=d_cur["maintenance"], seq=top)
        note(record, now, f"the drains (seq {stamp(d_cur)[1]}) were newer than the record (seq "
                          f"{stamp(h_cur)[1]}): kept")
        return record, True
    if not versions and h_err == "missing":
        return fresh_lineage({}), False  # nothing was ever written: a new master
    record = dict(h_prev or {})
    epoch = stamp(h_prev)[0] if h_prev else stamp(d_cur or d_prev)[0] if (d_cur or d_prev) else None
    copies = [(label, r) for label, r in (("drains", d_cur), ("drains.prev", d_prev), ("health.prev", h_prev))
              if r is not None and stamp(r)[0] == epoch]
    label, newest = max(copies, key=lambda item: stamp(item[1])[1], default=(None, None))
    record["maintenance"] = (newest or {}).get("maintenance") or {}
    record.update(epoch=epoch, seq=top)
    # The drains file is written at every change, before the record: when it reads, no
    # drain is lost. Otherwise one made since the newest copy read may be: a new lineage
    # then, so that each director answers its first push of it with the copy it held
    # (its drains are kept: merge_drains), never taking an older version for a newer one.
    lost = [] if d_cur is not None else [f"drains since seq {stamp(newest)[1] if newest else 0}"]
    if lost or not epoch:
        fresh_lineage(record, previous_epoch=epoch)
    health_from = f"health.prev (seq {stamp(h_prev)[1]})" if h_prev else "nothing"
    drains_from = f"{label} (seq {stamp(newest)[1]})" if newest else "nothing"
    note(record, now, f"health.json unreadable ({h_err}): health from {health_from}, drains from {drains_from}",
         lost)
    return record, True


def share(legacy, minions, site, now):
    """A site's first record taken from ``legacy``, a master's single record from before
    sites (``health.json``): the health and drains of the site's ``minions`` only, in the
    same lineage (the directors' copies of it still confirm), with a note saying so."""
    record = {key: legacy[key] for key in ("epoch", "seq", "supersedes") if key in legacy}
    record["health"] = {m: v for m, v in (legacy.get("health") or {}).items() if m in minions}
    record["maintenance"] = {m: v for m, v in (legacy.get("maintenance") or {}).items() if m in minions}
    note(record, now, f"site {site}: its health and drains taken from the master's record of before sites "
                      f"(health.json): {len(record['health'])} real server(s), "
                      f"{len(record['maintenance'])} drain(s)")
    return record


def adopt(record, copy, director, now):
    """Replace ``record`` (the master's) by ``director``'s ``copy`` when the copy is a
    later version of the same lineage (the master's files went back in time: a restored
    backup): the master's own later history. Returns whether it did."""
    if stamp(copy)[0] != stamp(record)[0] or stamp(copy)[1] <= stamp(record)[1]:
        return False
    was = stamp(record)[1]
    kept = record.get("recoveries") or []
    record.clear()
    record.update(copy, recoveries=kept)
    note(record, now, f"the master's record (seq {was}) was older than {director}'s copy (seq "
                      f"{stamp(copy)[1]}): adopted")
    return True


def merge_drains(record, previous, director, now):
    """Keep in ``record`` the drains of ``previous``, a director's copy of a lineage the
    record replaced (a recovery that may have lost drains), that ``record`` lacks:
    a drain is never dropped silently. Returns the names kept."""
    if stamp(previous)[0] not in (record.get("supersedes") or []):
        return []
    mine = record.setdefault("maintenance", {})
    kept = sorted(set(previous.get("maintenance") or {}) - set(mine))
    for minion in kept:
        mine[minion] = previous["maintenance"][minion]
    if kept:
        note(record, now, f"drains the master had lost, kept from {director}'s copy: {', '.join(kept)}", kept)
    return kept


def apply_verdict(site, record, now, minion, services=None, host=None, alpha=()):
    """Record in ``record`` what the runner verified of ``minion`` (its services' health,
    or its host's), with the hold a backend that went down serves before it returns;
    the caller stores it and pushes the weights. ``alpha``: services down only because
    their checks have not passed yet (``check:alpha``): no hold when they pass."""
    entry = record["health"].setdefault(minion, {"services": {}, "host": True, "down_at": 0})
    old_down = {n for n, ok in entry["services"].items() if ok is False} | ({"*"} if entry["host"] is False else set())
    wanted = dict(entry["services"]) if services is None else dict(services)
    host_ok = entry["host"] if host is None else host
    if host_ok is False:
        # Down with its host: its services come back only on its own report, made after
        # it is up again (a host reachable again may not serve yet: its startup highstate).
        wanted.update({name: False for name in site.backed_by(minion)})
    new_down = {n for n, ok in wanted.items() if ok is False} | ({"*"} if host_ok is False else set())
    if new_down - old_down - set(alpha):
        entry["down_at"] = now
    # Too soon after going down (its check's hold; the host's: the site's): stays out for now.
    held = sorted(name for name in old_down - new_down if not health.may_restore(
        entry, now, site.services[name].check["hold"] if name in site.services else site.health.hold))
    for name in held:
        if name == "*":
            host_ok = False
        else:
            wanted[name] = False
    entry.update(services=wanted, host=host_ok, held=held, checked_at=now)
