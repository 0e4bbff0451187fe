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

import lvstun.health as _health_module
import lvstun.owned as _owned_module
import lvstun.roles as _roles_module
import lvstun.site as _site_module
from lvstun.fresh import fresh

site_model = fresh(_site_module)
roles = fresh(_roles_module)
health_rules = fresh(_health_module)
records = fresh(_owned_module)

__virtualname__ = "lvs_site"


def __virtual__():
    return __virtualname__


def _pillar():
    return __pillar__.get(site_model.PILLAR_KEY) if __pillar__ else None


def tree(applied=False):
    """The site's pillar tree (``lvs``): this minion's pillar, or with ``applied`` the
    one the last highstate applied (this minion's pillar before any).

    CLI Example:

    .. code-block:: bash

        salt director lvs_site.tree applied=True
    """
    if applied:
        stored = records.load(__opts__, site_model.APPLIED_RECORD)
        if stored is not None:
            return stored.get("lvs")
    return _pillar()


def remember():
    """Record the site in this minion's pillar as the applied one (the ``lvs_site.valid``
    state does at the start of each highstate, not under ``test=True``), under
    ``lvstun.site.APPLIED_LOCK``: what reads the applied site under that lock and acts on
    it (``lvs_health.apply``) acts wholly on the old site or wholly on the new.

    CLI Example:

    .. code-block:: bash

        salt director lvs_site.remember
    """
    with records.locked(__opts__, site_model.APPLIED_LOCK):
        if records.load(__opts__, site_model.APPLIED_RECORD) != {"lvs": _pillar()}:
            records.store(__opts__, site_model.APPLIED_RECORD, {"lvs": _pillar()})
    return True


def validate(pillar=None):
    """Return the list of problems in the site's pillar (empty when it is valid).

    CLI Example:

    .. code-block:: bash

        salt '*' lvs_site.validate
    """
    try:
        site_model.parse(pillar if pillar is not None else {site_model.PILLAR_KEY: _pillar()})
    except site_model.SiteError as err:
        return err.errors
    return []


def role(minion_id=None):
    """Return this minion's (or ``minion_id``'s) role in the site, or None.

    Raises ``SaltInvocationError`` when the site's pillar is invalid.

    CLI Example:

    .. code-block:: bash

        salt '*' lvs_site.role
    """
    return _site().role_of(minion_id or __opts__["id"])


def config(minion_id=None, applied=False):
    """Return what this minion (or ``minion_id``) must hold for its role, as the role
    states use it: ``{"role": "director", "addresses": ..., "services": ...}``; with
    ``applied``, by the site the last highstate applied (:func:`tree`).

    Raises ``SaltInvocationError`` (every problem, by pillar path) when the site is invalid.

    CLI Example:

    .. code-block:: bash

        salt rs1 lvs_site.config
    """
    site, minion_id = _site(applied), minion_id or __opts__["id"]
    if minion_id == __opts__["id"] and site.role_of(minion_id) == "director":
        health = __salt__["lvs_health.record"]()  # with its own path checks and the runner's newest push
    else:
        health = (__pillar__ or {}).get(health_rules.PILLAR_KEY) or {}
    return roles.for_minion(site, minion_id, health)


def describe():
    """Return the validated site as plain data.

    CLI Example:

    .. code-block:: bash

        salt-call lvs_site.describe
    """
    return dataclasses.asdict(_site())


def _site(applied=False):
    from salt.exceptions import SaltInvocationError  # noqa: PLC0415

    try:
        return site_model.parse({site_model.PILLAR_KEY: tree(applied)})
    except site_model.SiteError as err:
        raise SaltInvocationError(str(err)) from None
