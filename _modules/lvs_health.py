"""Backend health on the minions: what a real server's beacon last concluded, and the
weights a director runs (set by the ``lvs`` runner; a highstate computes the same ones
from the pillar and the health record, ``lvstun.health``).

CLI Example:

.. code-block:: bash

    salt rs1 lvs_health.report
    salt director lvs_health.set_weights '{"tcp:10.10.24.88:80": {"10.10.24.21:80": 0}}'
"""

import time

import lvstun.owned
from lvstun.fresh import fresh

records = fresh(lvstun.owned)

__virtualname__ = "lvs_health"
RECORD = "backend-health"  # written by the lvs_backend beacon


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


def set_weights(weights, site_view=None):
    """Set destination weights on this director, ``{service: {dest: weight}}``;
    only those that differ are written, in one batch (``ipvs.set_weights``). Returns
    ``{service: {dest: {"old", "new"}}}``; a destination this director does not have is
    reported under ``"missing"``. ``site_view``: the site's new view for the metrics
    (``lvstun.metrics.view``: health and drains), stored for the exporter if it runs.

    CLI Example:

    .. code-block:: bash

        salt director lvs_health.set_weights '{"tcp:10.10.24.88:80": {"10.10.24.21:80": 0}}'
    """
    if site_view is not None:
        __salt__["lvs_exporter.set_view"](site_view, if_exporter=True)
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
