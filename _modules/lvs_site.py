"""The site topology seen from a minion: validation and roles (``lvs`` pillar tree).

The parsing lives in ``lvstun.site`` (``_utils/lvstun/``), shared with the states, the runner
and the lab.
"""

import dataclasses

import lvstun.health as _health_module
import lvstun.roles as _roles_module
import lvstun.site as _site_module
from lvstun.fresh import fresh

site_model = fresh(_site_module)
roles = fresh(_roles_module)
health_rules = fresh(_health_module)

__virtualname__ = "lvs_site"


def __virtual__():
    return __virtualname__


def _pillar():
    return __pillar__.get(site_model.PILLAR_KEY) if __pillar__ else None


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


def config(minion_id=None):
    """Return what this minion (or ``minion_id``) must hold for its role, as the role
    states use it: ``{"role": "director", "addresses": ..., "services": ...}``.

    Raises ``SaltInvocationError`` (every problem, by pillar path) when the site is invalid.

    CLI Example:

    .. code-block:: bash

        salt rs1 lvs_site.config
    """
    site, minion_id = _site(), minion_id or __opts__["id"]
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


def _site():
    from salt.exceptions import SaltInvocationError  # noqa: PLC0415

    try:
        return site_model.parse({site_model.PILLAR_KEY: _pillar()})
    except site_model.SiteError as err:
        raise SaltInvocationError(str(err)) from None
