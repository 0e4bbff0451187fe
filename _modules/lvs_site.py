"""The site topology seen from a minion: validation and roles (``lvs`` pillar tree).

The parsing lives in ``lvstun.site`` (``_utils/lvstun/``), shared with the states, the runner
and the lab.

Two sites: the one in this minion's pillar (a highstate's, compiled for it) and the one
the last highstate applied (:func:`remember`, ``applied=True``). What runs outside a
highstate (the beacons' threads, the runner's pushes) goes by the applied one: the
minion's in-memory pillar is not refreshed by a highstate, and an edited pillar that
has not been applied yet is not the site either.
"""

import dataclasses
import json

import lvstun.health
import lvstun.records
import lvstun.roles
import lvstun.site
from lvstun.fresh import fresh

fresh(lvstun.health)
fresh(lvstun.records)
fresh(lvstun.roles)
fresh(lvstun.site)

__virtualname__ = "lvs_site"


def __virtual__():
    return __virtualname__


def _pillar():
    return __pillar__.get(lvstun.site.PILLAR_KEY) if __pillar__ else None


def tree(applied=False):
    """The site's pillar tree (``lvs``): this minion's pillar, or with ``applied`` the
    one the last highstate applied (this minion's pillar before any); with ``applied``
    ``table`` or ``metrics``, the one a director's table (or metrics) state last applied
    (:func:`note_applied`; the highstate's before any).

    applied
        False (default): this minion's pillar; True: the site the last highstate applied;
        ``table`` or ``metrics``: the one a director's table or metrics state applied.

    CLI Example:

    .. code-block:: bash

        salt director lvs_site.tree applied=True
    """
    if applied in ("table", "metrics"):
        stored = lvstun.records.load(__opts__, lvstun.records.DIRECTOR_SITES).get(applied)
        if stored is not None:
            return stored["lvs"]
    if applied:
        stored = lvstun.records.load(__opts__, lvstun.records.SITE_APPLIED)
        if stored is not None:
            return stored["lvs"]
    return _pillar()


def note_applied(part):
    """Record the site in this minion's pillar as the one a director's ``part``
    (``table``, ``metrics``) state applied; the caller holds the site's lock and has
    just written it (``lvs_health.table``, ``lvs_health.exporter``, not under
    ``test=True``). Until then the director's thread and the runner's pushes keep
    writing by the site that state applied before: a highstate reports (and
    ``test=True`` predicts) the weights it changes, and nothing writes the new site's
    weights before it.

    part
        ``table`` or ``metrics``: the director's state that applied the site.

    CLI Example:

    .. code-block:: bash

        salt director lvs_site.note_applied table
    """
    sites = lvstun.records.load(__opts__, lvstun.records.DIRECTOR_SITES)
    if sites.get(part) != {"lvs": _pillar()}:
        lvstun.records.store(__opts__, lvstun.records.DIRECTOR_SITES, {**sites, part: {"lvs": _pillar()}})
    return True


def remember():
    """Record the site in this minion's pillar as the applied one (the ``lvs_site.valid``
    state does at the start of each highstate, not under ``test=True``), under the
    site's lock (``lvstun.records.SITE_APPLIED``): what reads the applied site under that
    lock and acts on it (``lvs_health.apply``) acts wholly on the old site or wholly on
    the new. A director also keeps the runner's health record of its pillar when it
    supersedes its copy (``lvs_health.accept``): a push it missed reaches it this way.

    CLI Example:

    .. code-block:: bash

        salt director lvs_site.remember
    """
    with lvstun.records.locked(__opts__, lvstun.records.SITE_APPLIED):
        if lvstun.records.load(__opts__, lvstun.records.SITE_APPLIED) != {"lvs": _pillar()}:
            lvstun.records.store(__opts__, lvstun.records.SITE_APPLIED, {"lvs": _pillar()})
    offered = (__pillar__ or {}).get(lvstun.health.PILLAR_KEY)
    acceptable = offered and not lvstun.records.check(lvstun.records.RUNNER_COPY, offered)
    if acceptable and "lvs_health.accept" in __salt__:
        __salt__["lvs_health.accept"](offered)
    return True


def validate(pillar=None):
    """Return the list of problems in the site's pillar (empty when it is valid).

    pillar
        A whole pillar (its ``lvs`` tree is checked) or the tree itself; default: this
        minion's pillar.

    CLI Example:

    .. code-block:: bash

        salt '*' lvs_site.validate
    """
    return lvstun.site.problems({lvstun.site.PILLAR_KEY: _pillar()} if pillar is None else pillar)


def role(minion_id=None):
    """Return this minion's (or ``minion_id``'s) role in the site, or None.

    Raises ``SaltInvocationError`` when the site's pillar is invalid.

    minion_id
        Another minion of the site (default: this one).

    CLI Example:

    .. code-block:: bash

        salt '*' lvs_site.role
    """
    return _site().role_of(minion_id or __opts__["id"])


def config(minion_id=None, applied=False):
    """Return what this minion (or ``minion_id``) must hold for its role, as the role
    states use it: ``{"role": "director", "addresses": ..., "services": ...}``; with
    ``applied``, by the site the last highstate applied (or ``table``, ``metrics``: the
    one a director's table or metrics state applied, :func:`tree`).

    Raises ``SaltInvocationError`` (every problem, by pillar path) when the site is invalid.

    minion_id
        Another minion of the site (default: this one).
    applied
        As :func:`tree` takes it (default False: this minion's pillar).

    CLI Example:

    .. code-block:: bash

        salt rs1 lvs_site.config
    """
    site, minion_id = _site(applied), minion_id or __opts__["id"]
    if minion_id == __opts__["id"] and site.role_of(minion_id) == "director":
        # Its copy of the runner's record (a highstate's pillar when newer) and its own path checks.
        health = __salt__["lvs_health.record"](pillar=not applied)
    else:
        health = (__pillar__ or {}).get(lvstun.health.PILLAR_KEY) or {}
    return lvstun.roles.for_minion(site, minion_id, health)


def describe():
    """Return the validated site as plain data.

    CLI Example:

    .. code-block:: bash

        salt-call lvs_site.describe
    """
    return dataclasses.asdict(_site())


_PARSED = {}  # the last site parsed, by its tree's text: the path checks' thread asks every round


def _site(applied=False):
    from salt.exceptions import SaltInvocationError  # noqa: PLC0415

    found = tree(applied)
    key = json.dumps(found, sort_keys=True, default=str)
    if key not in _PARSED:
        try:
            site = lvstun.site.parse({lvstun.site.PILLAR_KEY: found})
        except lvstun.site.SiteError as err:
            raise SaltInvocationError(str(err)) from None
        _PARSED.clear()
        _PARSED[key] = site
    return _PARSED[key]
