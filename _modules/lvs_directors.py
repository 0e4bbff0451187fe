"""A Linux router's director group: the resilient nexthop group every VIP is routed
to, one nexthop per director, and the probe rules that reach each director alone.

The logic is :mod:`lvstun.dirgroup` (plain data); this module reads the router through
``ip -j`` (iproute2's JSON: pyroute2 has no nexthop objects) and writes with ``ip``.
Which directors the group holds comes from the router's ``lvs_directors`` beacon,
which probes each director and calls :func:`apply` itself when its view changes, with
the master up or down; its view is kept in the minion's cache (:func:`view`). The
group's settings are those the last highstate wrote (:func:`apply` ``remember=True``, :func:`spec`),
not the minion's in-memory pillar, which a highstate does not refresh: the probes
never put back an older group.
"""

import json
import shutil
import socket
import time

from salt.exceptions import CommandExecutionError

import lvstun.command
import lvstun.dirgroup
import lvstun.drift
import lvstun.netlink
import lvstun.probe
import lvstun.records
from lvstun.fresh import fresh

fresh(lvstun.command)
fresh(lvstun.dirgroup)
fresh(lvstun.drift)
fresh(lvstun.netlink)
fresh(lvstun.probe)
fresh(lvstun.records)

__virtualname__ = "lvs_directors"
IP_TIMEOUT = 30  # seconds
SITE = "site"  # spec: the site's group as the last highstate wrote it (spec())


def __virtual__():
    if shutil.which("ip") is None:
        return False, "lvs_directors needs the ip command (package iproute2)"
    return __virtualname__


def _ip(*args):
    return lvstun.command.output(["ip", *args], IP_TIMEOUT)


def _json(*args):
    out = _ip("-j", *args).strip()
    return json.loads(out) if out else []


def view():
    """The beacon's last view of the directors: ``{"at": time, "up": {minion id: bool},
    "reasons": {minion id: its last probe's words}}`` (``up`` empty before its first
    verdict: every director counts as up).

    CLI Example:

    .. code-block:: bash

        salt router lvs_directors.view
    """
    return lvstun.records.load(__opts__, lvstun.records.DIRECTORS_LIVE)


def set_view(up, reasons=None):
    """Record the probes' view (the beacon does; for tests and emergencies, the next
    probe round overrides it).

    up
        ``{director minion id: true (up) or false}``.
    reasons
        ``{director minion id: text}``: what the last probe of each found (optional).

    CLI Example:

    .. code-block:: bash

        salt router lvs_directors.set_view '{director: true, director2: false}'
    """
    record = {"at": time.time(), "up": {str(k): bool(v) for k, v in (up or {}).items()},
              "reasons": {str(k): str(v)[:200] for k, v in (reasons or {}).items()}}
    lvstun.records.store(__opts__, lvstun.records.DIRECTORS_LIVE, record)
    return record


def drained():
    """The directors drained for maintenance (``salt-run lvs.drain DIRECTOR``): out of
    the group, not probed, until :func:`undrain`.

    CLI Example:

    .. code-block:: bash

        salt router lvs_directors.drained
    """
    return sorted(lvstun.records.load(__opts__, lvstun.records.DIRECTORS_DRAINED))


def settling(spec=SITE):
    """Whether the group is between two views: a director is drained (it stays in the
    group until it holds no bucket), or one joined it at weight 1 (a member's weight is
    not 1: ``lvstun.dirgroup.joining``). The router's beacon rewrites the group every
    round while it is.

    spec
        As :func:`check` takes it.

    CLI Example:

    .. code-block:: bash

        salt router lvs_directors.settling
    """
    spec = _spec(spec)
    if not spec:
        return False
    if drained():
        return True
    try:
        group = _json("-d", "nexthop", "show", "id", str(spec["group"]))
    except CommandExecutionError:  # no group yet
        return False
    return any(member.get("weight", 1) != 1 for nh in group for member in nh.get("group", []))


def _spec_with(name):
    spec = _spec(SITE)
    if not spec:
        raise CommandExecutionError("this router holds no director group (one director, or not a Linux router)")
    if name not in spec["members"]:
        raise CommandExecutionError(f"{name!r} is not a director of the site ({sorted(spec['members'])})")
    return spec


def drain(name):
    """Take director ``name`` out of the group for maintenance: it stays in the group at a
    weight that gives it no bucket, and each of its buckets moves to the others once idle
    for a second (a flow in its handshake never moves; an established one continues on
    the others, which the sync daemons told of it); once it holds no bucket it leaves the
    group (the beacon's next round). Refused when no other director would be left up.

    name
        The director's minion id, a member of the site's group.

    CLI Example:

    .. code-block:: bash

        salt router lvs_directors.drain director2
    """
    spec = _spec_with(name)
    now = set(drained()) | {name}
    up = view()["up"]
    if not [n for n in spec["members"] if n not in now and up.get(n, True)]:
        raise CommandExecutionError(f"draining {name} would leave no director up to take its flows")
    lvstun.records.store(__opts__, lvstun.records.DIRECTORS_DRAINED, sorted(now))
    return {"drained": sorted(now), "changed": [lvstun.drift.name(d) for d in apply()]}


def undrain(name):
    """Put director ``name`` back after maintenance: it takes flows again once the
    probes find it forwarding (``ha:rise``), bucket by bucket as they go idle.

    name
        The director's minion id, a member of the site's group.

    CLI Example:

    .. code-block:: bash

        salt router lvs_directors.undrain director2
    """
    _spec_with(name)  # a director of the site's group
    now = set(drained()) - {name}
    lvstun.records.store(__opts__, lvstun.records.DIRECTORS_DRAINED, sorted(now))
    return {"drained": sorted(now), "changed": [lvstun.drift.name(d) for d in apply()]}


def _has_ipv6():
    return socket.AF_INET6 in lvstun.netlink.families()


def _held(wanted=True):
    """The pack's objects on the router. Without a wanted group (one director), a kernel
    without nexthop objects (before 5.3) holds none of the pack's: not an error; nor is
    the IPv6 read of a kernel without IPv6 (booted with ``ipv6.disable=1``)."""
    reads = []
    for argv in lvstun.dirgroup.READS:
        try:
            reads.append(_json(*argv))
        except CommandExecutionError:
            no_ipv6 = "-6" in argv and not _has_ipv6()
            if not no_ipv6 and (wanted or "nexthop" not in argv):
                raise
            reads.append([])
    return lvstun.dirgroup.have(*reads)


def spec():
    """The site's director group as the last highstate wrote it (:func:`apply`), or
    from the site the last highstate applied before any; None: the router holds no group.

    CLI Example:

    .. code-block:: bash

        salt router lvs_directors.spec
    """
    stored = lvstun.records.load(__opts__, lvstun.records.DIRECTORS_SPEC)
    if stored is not None:
        return stored["spec"]
    return __salt__["lvs_site.config"](applied=True).get("directors")


def _spec(group_spec):
    return spec() if group_spec == SITE else group_spec


def _holding(spec, names):
    """Those of the directors ``names`` that hold buckets of the group now."""
    try:
        ids = {b["bucket"]["nhid"] for b in _json("nexthop", "bucket", "show", "id", str(spec["group"]))}
    except CommandExecutionError:  # no group yet
        return []
    return [name for name in names if spec["members"][name]["id"] in ids]


def _steps(spec):
    spec = _spec(spec)
    if not spec:
        return lvstun.dirgroup.plan({}, _held(wanted=False))
    out, held = drained(), _held()
    want = lvstun.dirgroup.want(spec, view()["up"], out, _holding(spec, out) if out else (), held)
    return lvstun.dirgroup.plan(want, held)


def check(spec=SITE):
    """Every difference between the router and the director group ``spec`` (default:
    the site's, ``directors`` of ``lvs_site.config``; None: the pack holds no group),
    with the probes' view: drift records, empty when none.

    spec
        The group: ``{"group": id, "interface": ..., "members": {minion id: {"id", "via"}},
        "vips": [...], "probe": {...}}`` and its HA settings (``lvstun.dirgroup``); default:
        the site's (``directors`` of ``lvs_site.config``); None: no group.

    CLI Example:

    .. code-block:: bash

        salt router lvs_directors.check
    """
    return [lvstun.drift.make("director-group", name, text, old) for name, text, old, _ in _steps(spec)]


def apply(spec=SITE, remember=False):
    """Make the router hold the director group ``spec`` for the probes' view (and
    nothing of the pack's beyond it); return the drifts repaired. ``remember``: record
    ``spec`` as the site's group (:func:`spec`) once it is held (the state does).

    The site's group is read, and the router written, under one lock
    (``lvstun.records.locked``): the probes' thread, which rewrites the group with the
    site's group, never puts back the settings of a group the state has just replaced.

    spec
        As :func:`check` takes it.
    remember
        True: record ``spec`` as the site's group once it is held (the state does).

    CLI Example:

    .. code-block:: bash

        salt router lvs_directors.apply
    """
    done = []
    with lvstun.records.locked(__opts__, lvstun.records.DIRECTORS_SPEC):
        for name, text, old, commands in _steps(spec):
            for argv in commands:
                _ip(*argv)
            done.append(lvstun.drift.make("director-group", name, text, old))
        if remember:
            lvstun.records.store(__opts__, lvstun.records.DIRECTORS_SPEC, {"spec": spec})
    return done


def probe_all(spec=SITE, only=None):
    """One probe of every director of ``spec`` (default: the site's): ``{minion id:
    [ok, reason]}`` (the site's probe service through each director alone, by its mark;
    a drained director is not probed: it counts as down until undrained and found up);
    ``only``: those directors alone.

    spec
        As :func:`check` takes it.
    only
        A list of minion ids: probe those directors alone (default: every one).

    CLI Example:

    .. code-block:: bash

        salt router lvs_directors.probe_all
    """
    spec = _spec(spec)
    if not spec:
        return {}
    target = spec["probe"]
    check = {**target["check"], "timeout": spec["timeout"]}
    skip = drained()
    names = [name for name in spec["members"] if only is None or name in only]
    out = lvstun.probe.run_all({name: (check, target["vip"], spec["members"][name]["id"])
                         for name in names if name not in skip})
    return {name: list(out.get(name, (False, "drained for maintenance"))) for name in names}
