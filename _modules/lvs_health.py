"""Backend health on the minions: what a real server's beacon last concluded, and the
weights a director runs.

A director runs by three things (``lvstun.health``): the site's pillar, the runner's
health record (the newest of the one its pillar carries and the one the runner last
pushed with :func:`apply`) and its own path checks (the ``lvs_paths`` beacon: backends
it finds down through their tunnels are down here, master or no master). Its highstate
computes the same weights from the same three (``lvs_site.config``).

CLI Example:

.. code-block:: bash

    salt rs1 lvs_health.report
    salt director lvs_health.apply
    salt director lvs_health.local
"""

import time

import lvstun.health
import lvstun.owned
import lvstun.site
from lvstun.fresh import fresh

health_rules = fresh(lvstun.health)
records = fresh(lvstun.owned)
site_model = fresh(lvstun.site)

__virtualname__ = "lvs_health"
RECORD = "backend-health"  # written by the lvs_backend beacon
PUSHED = "runner-health"  # the runner's record as it last pushed it to this director
PATHS = "path-checks"  # written by the lvs_paths beacon


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
    record = records.load(__opts__, RECORD)
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
    record = records.load(__opts__, PATHS) or {}
    return {minion: list(names) for minion, names in (record.get("down") or {}).items()}


def record():
    """The health record this director runs by: the runner's newest (from the pillar or
    its last push) with this director's own verdicts on top (``lvstun.health.with_local``).

    CLI Example:

    .. code-block:: bash

        salt director lvs_health.record
    """
    pillar = (__pillar__ or {}).get(health_rules.PILLAR_KEY) or {}
    return health_rules.with_local(health_rules.newest(pillar, records.load(__opts__, PUSHED)), local())


def apply(record=None):  # pylint: disable=redefined-outer-name
    """Set this director's weights (and its metrics' view) from the site the last
    highstate applied (``lvs_site.config applied=True``), the runner's
    newest health record and its own path checks; only the weights that differ are
    written, in one batch (``ipvs.set_weights``). ``record``: the runner's record, kept
    when it is newer than the one this director has (the runner pushes it on a change).
    Returns ``{service: {dest: {"old", "new"}}}`` (and ``"missing"``: destinations this
    director's table lacks, as before its next highstate).

    CLI Example:

    .. code-block:: bash

        salt director lvs_health.apply
    """
    if record is not None and float(record.get("at") or 0) >= float(
            (records.load(__opts__, PUSHED) or {}).get("at") or 0):
        records.store(__opts__, PUSHED, record)
    # The site the last highstate applied, not the minion's in-memory pillar (older after
    # a pillar edit): the weights never go back to a pillar the site has left.
    with records.locked(__opts__, site_model.APPLIED_LOCK):
        cfg = __salt__["lvs_site.config"](applied=True)
        if cfg.get("role") != "director":
            return {}
        if cfg.get("metrics"):
            __salt__["lvs_exporter.set_view"](cfg["metrics"]["view"], if_exporter=True)
        weights = {spec: {dest: settings["weight"] for dest, settings in svc["destinations"].items()}
                   for spec, svc in cfg["services"].items()}
        return __salt__["ipvs.set_weights"](weights) if weights else {}


def reachability():
    """Which real servers this director reaches on the LAN, as its ``lvs_hosts``
    beacon last concluded: ``{minion id: bool}`` (empty when the beacon has not run).

    CLI Example:

    .. code-block:: bash

        salt director lvs_health.reachability
    """
    record = records.load(__opts__, "hosts-reach")
    return dict(record["reachable"]) if record else {}
