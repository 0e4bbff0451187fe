"""Backend health on the minions: what a real server's beacon last concluded, and the
weights a director runs (set by the ``lvs`` runner; a highstate computes the same ones
from the pillar and the health record, ``lvstun.health``).

CLI Example:

.. code-block:: bash

    salt rs1 lvs_health.report
    salt director lvs_health.set_weights '{"tcp:10.10.24.88:80": {"10.10.24.21:80": 0}}'
"""

import time

import lvstun.ipvs
import lvstun.owned
from lvstun.fresh import fresh

records = fresh(lvstun.owned)
rec = fresh(lvstun.ipvs)

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


def set_weights(weights):
    """Set destination weights on this director, ``{service: {dest: weight}}``;
    only those that differ are written. Returns ``{service: {dest: {"old", "new"}}}``;
    a destination this director does not have is reported under ``"missing"``.

    CLI Example:

    .. code-block:: bash

        salt director lvs_health.set_weights '{"tcp:10.10.24.88:80": {"10.10.24.21:80": 0}}'
    """
    current = {rec.service_spec(svc): {rec.join_hostport(d["address"], d["port"]): d["weight"]
                                       for d in svc["destinations"]}
               for svc in __salt__["ipvs.list"](stats=False)}
    changes, missing = {}, []
    for service, dests in weights.items():
        for dest, weight in dests.items():
            have = current.get(service, {}).get(dest)
            if have is None:
                missing.append(f"{service} {dest}")
            elif have != int(weight):
                __salt__["ipvs.set_weight"](service, dest, int(weight))
                changes.setdefault(service, {})[dest] = {"old": have, "new": int(weight)}
    if missing:
        changes["missing"] = missing
    return changes


def reachability():
    """Which real servers this director reaches on the LAN, as its ``lvs_hosts``
    beacon last concluded: ``{minion id: bool}`` (empty when the beacon has not run).

    CLI Example:

    .. code-block:: bash

        salt director lvs_health.reachability
    """
    record = records.load(__opts__, "hosts-reach")
    return dict(record["reachable"]) if record else {}
