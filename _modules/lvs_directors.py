"""A Linux router's director group: the resilient nexthop group every VIP is routed
to, one nexthop per director, and the probe rules that reach each director alone.

The logic is :mod:`lvstun.dirgroup` (plain data); this module reads the router through
``ip -j`` (iproute2's JSON: pyroute2 has no nexthop objects) and writes with ``ip``.
Which directors the group holds comes from the router's ``lvs_directors`` beacon,
which probes each director and calls :func:`apply` itself when its view changes, with
the master up or down; its view is kept in the minion's cache (:func:`view`).
"""

import json
import shutil
import subprocess
import time

from salt.exceptions import CommandExecutionError

import lvstun.dirgroup
import lvstun.drift
import lvstun.owned
import lvstun.probe
from lvstun.fresh import fresh

dirgroup = fresh(lvstun.dirgroup)
drift = fresh(lvstun.drift)
probe = fresh(lvstun.probe)
records = fresh(lvstun.owned)

__virtualname__ = "lvs_directors"
RECORD = "directors-live"
IP_TIMEOUT = 30  # seconds
SITE = "site"  # spec: the group of the site in this minion's pillar


def __virtual__():
    if shutil.which("ip") is None:
        return False, "lvs_directors needs the ip command (package iproute2)"
    return __virtualname__


def _ip(*args):
    try:
        proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=IP_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise CommandExecutionError(f"ip {' '.join(args)} did not finish in {IP_TIMEOUT} s") from None
    if proc.returncode != 0:
        raise CommandExecutionError(f"ip {' '.join(args)} failed: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout


def _json(*args):
    out = _ip("-j", *args).strip()
    return json.loads(out) if out else []


def view():
    """The beacon's last view of the directors: ``{"at": time, "up": {minion id: bool}}``
    (``up`` empty before its first verdict: every director counts as up).

    CLI Example:

    .. code-block:: bash

        salt router lvs_directors.view
    """
    return records.load(__opts__, RECORD, {"at": None, "up": {}})


def set_view(up):
    """Record the probes' view ``{minion id: bool}`` (the beacon does; for tests and
    emergencies, the next probe round overrides it).

    CLI Example:

    .. code-block:: bash

        salt router lvs_directors.set_view '{director: true, director2: false}'
    """
    record = {"at": time.time(), "up": {str(k): bool(v) for k, v in (up or {}).items()}}
    records.store(__opts__, RECORD, record)
    return record


def _held():
    return dirgroup.have(*(_json(*argv) for argv in dirgroup.READS))


def _spec(spec):
    return __salt__["lvs_site.config"]().get("directors") if spec == SITE else spec


def _steps(spec):
    spec = _spec(spec)
    if not spec:
        return dirgroup.plan({}, _held())
    return dirgroup.plan(dirgroup.want(spec, view()["up"]), _held())


def check(spec=SITE):
    """Every difference between the router and the director group ``spec`` (default:
    the site's, ``directors`` of ``lvs_site.config``; None: the pack holds no group),
    with the probes' view: drift records, empty when none.

    CLI Example:

    .. code-block:: bash

        salt router lvs_directors.check
    """
    return [drift.make("director-group", name, text, old) for name, text, old, _ in _steps(spec)]


def apply(spec=SITE):
    """Make the router hold the director group ``spec`` for the probes' view (and
    nothing of the pack's beyond it); return the drifts repaired.

    CLI Example:

    .. code-block:: bash

        salt router lvs_directors.apply
    """
    done = []
    for name, text, old, commands in _steps(spec):
        for argv in commands:
            _ip(*argv)
        done.append(drift.make("director-group", name, text, old))
    return done


def probe_all(spec=SITE):
    """One probe of every director of ``spec`` (default: the site's): ``{minion id:
    [ok, reason]}`` (the site's probe service through each director alone, by its mark).

    CLI Example:

    .. code-block:: bash

        salt router lvs_directors.probe_all
    """
    spec = _spec(spec)
    if not spec:
        return {}
    target = spec["probe"]
    check = {**target["check"], "timeout": spec["timeout"]}
    results = probe.run_all({name: (check, target["vip"], member["id"])
                             for name, member in spec["members"].items()})
    return {name: list(result) for name, result in results.items()}
