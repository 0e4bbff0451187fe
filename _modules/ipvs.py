"""Linux IPVS (LVS): the Salt face of the pack's one IPVS client (``lvstun.ipvsclient``).

Services are named by spec strings (``tcp:10.10.24.88:80``, ``fwmark:5``), destinations
by ``address:port``. Reads return plain dicts; writes validate their arguments first
(``SaltInvocationError``), then go as a plan (``lvstun.ipvs`` ops) through the client's
batched writer, the same path as the states, the health runner's weights and drains;
kernel refusals become ``CommandExecutionError`` with a message a person understands.
"""

import functools
import time

import netaddr
from salt.exceptions import CommandExecutionError, SaltInvocationError

import lvstun.address
import lvstun.drift
import lvstun.genl
import lvstun.ipvs
import lvstun.ipvsclient
import lvstun.records
from lvstun.fresh import fresh

fresh(lvstun.address)
fresh(lvstun.drift)
fresh(lvstun.ipvs)
fresh(lvstun.genl)
fresh(lvstun.ipvsclient)
fresh(lvstun.records)

__virtualname__ = "ipvs"
__func_alias__ = {"list_": "list"}


def __virtual__():
    return __virtualname__


# ------------------------------------------------------------------ plumbing
def _client():
    try:
        return lvstun.ipvsclient.Client()
    except OSError as err:
        raise CommandExecutionError(f"cannot talk to IPVS: {err.strerror or err}") from err


def _invalid(func):
    """Decorator: turn malformed-argument errors into SaltInvocationError."""

    @functools.wraps(func)  # Salt reads the signature through __wrapped__
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except lvstun.ipvs.SpecError as err:
            raise SaltInvocationError(str(err)) from None

    return wrapper


def _read(only=None, stats=True):
    """The table (or the services whose specs are in ``only``) as records."""
    with _client() as ipvs:
        try:
            return ipvs.read(only, stats)
        except lvstun.ipvsclient.IPVSError as err:
            raise CommandExecutionError(f"cannot read the IPVS table: {err.strerror or err}") from err


def _apply(ops):
    """Apply a plan; raise CommandExecutionError naming each refused step."""
    if not ops:
        return 0
    with _client() as ipvs:
        try:
            failed = ipvs.apply(ops)
        except lvstun.ipvsclient.IPVSError as err:
            raise CommandExecutionError(f"changing the IPVS table failed: {err.strerror or err}") from err
    if len(failed) == 1 and len(ops) == 1:
        step, scheduler, code = failed[0]
        raise CommandExecutionError(lvstun.ipvsclient.explain(code, step, scheduler))
    if failed:
        reasons = "; ".join(lvstun.ipvsclient.explain(code, step, scheduler) for step, scheduler, code in failed[:5])
        raise CommandExecutionError(f"{len(failed)} of {len(ops)} steps failed ({len(ops) - len(failed)} done): "
                                    f"{reasons}")
    return len(ops)


# ------------------------------------------------------------------ read
def list_(service=None, stats=True):
    """List the virtual services (or one, or those of a list of specs) with their
    destinations and, unless ``stats=False`` (the states' way: faster on big tables),
    their counters.

    service
        One service spec (``tcp:10.10.24.88:80``), a list of specs, or None: every service.

    stats
        With its counters (default); False reads faster on big tables.

    CLI Example:

    .. code-block:: bash

        salt director ipvs.list
        salt director ipvs.list service=tcp:10.10.24.88:80
    """
    return _read(only=_specs(service), stats=stats)


def _specs(service):
    """The canonical specs of ``service`` (a spec or a list of them), or None: all."""
    if service is None:
        return None
    return {lvstun.ipvs.service_spec(_parse_service(spec)) for spec in ([service] if isinstance(service, str) else
                                                                 list(service))}


def settings(service=None, wanted=None):
    """The table's settings as plans compare them (``lvstun.ipvs.unchanged``): per
    service spec, its scheduler, flags, persistence and each destination's forwarding
    method, weight, thresholds and tunnel; read without building records (the
    ``ipvs.managed`` state's first look at a large table).

    service
        One service spec, a list of specs, or None: every service.
    wanted
        The caller's ``lvstun.ipvs.wanted`` table, or None: the destinations of a
        service that the kernel holds byte for byte as wanted are not decoded.

    CLI Example:

    .. code-block:: bash

        salt director ipvs.settings
    """
    with _client() as ipvs:
        try:
            return ipvs.read_settings(_specs(service), wanted)
        except lvstun.ipvsclient.IPVSError as err:
            raise CommandExecutionError(f"cannot read the IPVS table: {err.strerror or err}") from err


def get_service(service):
    """Return one virtual service (with destinations), or None if absent.

    service
        The service spec: ``tcp:10.10.24.88:80``, ``udp:...``, ``fwmark:7``.

    CLI Example:

    .. code-block:: bash

        salt director ipvs.get_service tcp:10.10.24.88:80
    """
    found = list_(service)
    return found[0] if found else None


def listing():
    """The table as text an ``ipvsadm -Ln`` user recognises.

    CLI Example:

    .. code-block:: bash

        salt director ipvs.listing
    """
    return lvstun.ipvs.format_listing(list_())


# ------------------------------------------------------------------ services
@_invalid
def _parse_service(service):
    return lvstun.ipvs.parse_service(service)


def _service(service, scheduler, flags, persistent, netmask):
    return lvstun.ipvs.desired_service(service, {"scheduler": scheduler, "flags": flags, "persistent": persistent,
                                         "netmask": netmask, "destinations": None})


@_invalid
def add_service(service, scheduler="wlc", flags=None, persistent=0, netmask=None):
    """Add a virtual service.

    service
        Its spec: ``tcp:10.10.24.88:80``, ``udp:[2001:db8::1]:53``, ``fwmark:5``.
    scheduler
        An IPVS scheduler (its kernel module must be loadable).
    flags
        Scheduler flags (``ipvsadm -b``): ``sh-port``, ``sh-fallback``, ``mh-port`` ...
    persistent
        Persistence timeout in seconds (0: none).
    netmask
        Persistence granularity (``ipvsadm -M``).

    CLI Example:

    .. code-block:: bash

        salt director ipvs.add_service tcp:10.10.24.88:80 scheduler=rr
        salt director ipvs.add_service fwmark:5 scheduler=mh flags='[mh-port]'
    """
    _apply([("add_service", _service(service, scheduler, flags, persistent, netmask))])
    return True


@_invalid
def edit_service(service, scheduler="wlc", flags=None, persistent=0, netmask=None):
    """Change a virtual service's scheduler, flags or persistence (all given, not merged).

    service, scheduler, flags, persistent, netmask
        As :func:`add_service` takes them.

    CLI Example:

    .. code-block:: bash

        salt director ipvs.edit_service tcp:10.10.24.88:80 scheduler=wrr
    """
    _apply([("edit_service", _service(service, scheduler, flags, persistent, netmask))])
    return True


@_invalid
def delete_service(service):
    """Delete a virtual service and its destinations (their connections are cut).

    service
        The service spec: ``tcp:10.10.24.88:80``, ``udp:...``, ``fwmark:7``.

    CLI Example:

    .. code-block:: bash

        salt director ipvs.delete_service tcp:10.10.24.88:80
    """
    _apply([("del_service", lvstun.ipvs.parse_service(service))])
    return True


# ------------------------------------------------------------------ destinations
def _write_dest(op, service, dest, **settings):
    """Validate (as the states do: ``lvstun.ipvs.desired_dest``) and add or set a dest."""
    key = lvstun.ipvs.parse_service(service)
    _apply([(op, key, lvstun.ipvs.desired_dest(dest, settings, lvstun.ipvs.service_spec(key)))])
    return True


@_invalid
def add_dest(service, dest, forward="tunnel", weight=1, u_threshold=0, l_threshold=0, tun_type="ipip",
             tun_port=0, tun_flags=None):
    """Add a destination (real server) to a virtual service; TUN (ipip) by default.

    service
        The service's spec.
    dest
        ``address:port`` (``[address]:port`` for IPv6).
    forward
        ``tunnel`` (default), ``route``, ``masq``.
    weight
        0-65535.
    u_threshold, l_threshold
        Connection thresholds (0: none).
    tun_type, tun_port, tun_flags
        A tunnel's encapsulation: ``ipip``, ``gue`` (with ``tun_port``), ``gre``; flags
        ``nocsum``, ``csum``, ``remcsum``.

    CLI Example:

    .. code-block:: bash

        salt director ipvs.add_dest tcp:10.10.24.88:80 10.10.24.21:80 weight=2
    """
    return _write_dest("add_dest", service, dest, forward=forward, weight=weight, u_threshold=u_threshold,
                       l_threshold=l_threshold, tun_type=tun_type, tun_port=tun_port, tun_flags=tun_flags)


@_invalid
def edit_dest(service, dest, forward="tunnel", weight=1, u_threshold=0, l_threshold=0, tun_type="ipip",
              tun_port=0, tun_flags=None):
    """Change a destination (all fields given, not merged).

    service, dest, forward, weight, u_threshold, l_threshold, tun_type, tun_port, tun_flags
        As :func:`add_dest` takes them.

    CLI Example:

    .. code-block:: bash

        salt director ipvs.edit_dest tcp:10.10.24.88:80 10.10.24.21:80 weight=5
    """
    return _write_dest("edit_dest", service, dest, forward=forward, weight=weight, u_threshold=u_threshold,
                       l_threshold=l_threshold, tun_type=tun_type, tun_port=tun_port, tun_flags=tun_flags)


@_invalid
def delete_dest(service, dest):
    """Delete a destination at once (its connections are cut; see ``drain``).

    service
        The service's spec.
    dest
        ``address:port``.

    CLI Example:

    .. code-block:: bash

        salt director ipvs.delete_dest tcp:10.10.24.88:80 10.10.24.21:80
    """
    _apply([("del_dest", lvstun.ipvs.parse_service(service), lvstun.ipvs.parse_dest(dest))])
    return True


def _find_dest(service, dest):
    svc = get_service(service)
    if svc is None:
        raise CommandExecutionError(f"no such virtual service {service}")
    wanted = lvstun.ipvs.parse_dest(dest)
    for current in svc["destinations"]:
        if (current["address"], current["port"]) == (wanted["address"], wanted["port"]):
            return current
    raise CommandExecutionError(f"no destination {dest} in {service}")


@_invalid
def set_weight(service, dest, weight):
    """Set one destination's weight, keeping every other field as the kernel has it
    (on a director's table the site manages, put back within a round: use ``lvs.drain``).

    service
        The service's spec.
    dest
        ``address:port``.
    weight
        0-65535.

    CLI Example:

    .. code-block:: bash

        salt director ipvs.set_weight tcp:10.10.24.88:80 10.10.24.21:80 0
    """
    spec = lvstun.ipvs.service_spec(lvstun.ipvs.parse_service(service))
    changes = set_weights({spec: {dest: weight}})
    if changes.get("missing"):
        _find_dest(spec, dest)  # raises, saying whether the service or the destination is missing
    return True


@_invalid
def set_weights(weights):
    """Set many destinations' weights at once, ``{service: {dest: weight}}``: one read of
    those services' settings, a full read of those whose weights differ, and one batch of
    writes; other fields stay as the kernel has them.
    Returns ``{service: {dest: {"old", "new"}}}`` for the weights that changed, plus
    ``"missing": ["service dest", ...]`` for destinations the table does not have.

    weights
        ``{service spec: {destination address:port: weight}}``.

    CLI Example:

    .. code-block:: bash

        salt director ipvs.set_weights '{"tcp:10.10.24.88:80": {"10.10.24.21:80": 0, "10.10.24.22:80": 3}}'
    """
    wanted = {}
    for service, dests in (weights or {}).items():
        spec = lvstun.ipvs.service_spec(lvstun.ipvs.parse_service(service))
        for dest, weight in dests.items():
            parsed = lvstun.ipvs.parse_dest(dest)
            wanted.setdefault(spec, {})[(parsed["address"], parsed["port"])] = \
                lvstun.ipvs.check_weight(int(weight) if isinstance(weight, str) else weight)
    # First the weights alone (a director's thread asks twice a second); the services
    # whose weights differ are then read whole: an edit keeps every other field.
    with _client() as ipvs:
        try:
            held = ipvs.read_settings(set(wanted))
        except lvstun.ipvsclient.IPVSError as err:
            raise CommandExecutionError(f"cannot read the IPVS table: {err.strerror or err}") from err
    held = {spec: dests for spec, (_, dests) in held.items()}  # {spec: {(address, port): settings}}
    differ = {spec for spec, dests in wanted.items() if any(
        key in held.get(spec, {}) and held[spec][key][1] != weight for key, weight in dests.items())}  # [1]: weight
    current = {lvstun.ipvs.service_spec(s): s for s in _read(differ, stats=False)} if differ else {}
    ops, changes, missing = [], {}, []
    for spec, dests in wanted.items():
        have = {(d["address"], d["port"]): d for d in current.get(spec, {}).get("destinations", [])}
        for key, weight in dests.items():
            if key not in held.get(spec, {}):
                missing.append(f"{spec} {lvstun.ipvs.join_hostport(*key)}")
                continue
            record = have.get(key)
            if record is not None and record["weight"] != weight:
                ops.append(("edit_dest", current[spec], {**record, "weight": weight}))
                changes.setdefault(spec, {})[lvstun.ipvs.join_hostport(*key)] = {"old": record["weight"], "new": weight}
    _apply(ops)
    if missing:
        changes["missing"] = missing
    return changes


@_invalid
def drain(service, dest, timeout=60, interval=0.5, delete=False):
    """Gracefully remove a destination: weight 0, wait (at most ``timeout`` seconds)
    until its active connections reach 0, then optionally delete it.

    service
        The service's spec.
    dest
        ``address:port``.
    timeout
        Seconds to wait at most.
    interval
        Seconds between two looks at its connections.
    delete
        Delete it once it has none.

    Returns ``{"drained": bool, "active": n, "waited": seconds, "deleted": bool}``.

    CLI Example:

    .. code-block:: bash

        salt director ipvs.drain tcp:10.10.24.88:80 10.10.24.21:80 timeout=30 delete=True
    """
    set_weight(service, dest, 0)
    began = time.monotonic()
    while True:
        active = _find_dest(service, dest)["active"]
        waited = round(time.monotonic() - began, 2)
        if active == 0 or waited >= timeout:
            break
        time.sleep(interval)
    drained = active == 0
    if drained and delete:
        delete_dest(service, dest)
    return {"drained": drained, "active": active, "waited": waited, "deleted": bool(drained and delete)}


# ------------------------------------------------------------------ table-wide
def zero(service=None):
    """Zero the packet, byte and rate counters (of one service, or all).

    service
        The service spec (``tcp:10.10.24.88:80``), or None: every service.

    CLI Example:

    .. code-block:: bash

        salt director ipvs.zero
    """
    attrs = lvstun.genl.service_key(_parse_service(service)) if service else b""
    with _client() as ipvs:
        failed = ipvs.send([("zero", attrs, 0, "zero counters")])
    if failed:
        what = f"zero counters of {service or 'every service'}"
        raise CommandExecutionError(lvstun.ipvsclient.explain(failed[0][1], what))
    return True


# ------------------------------------------------------------------ connection sync
KERNEL_GROUP = "224.0.0.81"  # the sync daemons' multicast group when none is given (IP_VS_SYNC_GROUP)


def sync_daemons():
    """The running connection sync daemons: ``[{"state": "master", "interface": "eth0",
    "sync_id": 1, "group": "224.0.0.81"}, ...]``.

    CLI Example:

    .. code-block:: bash

        salt director ipvs.sync_daemons
    """
    with _client() as ipvs:
        try:
            return ipvs.daemons()
        except lvstun.ipvsclient.IPVSError as err:
            raise CommandExecutionError(f"cannot read the sync daemons: {err.strerror or err}") from err


def _sync_text(interface, sync_id, group):
    """A daemon as its drift records name it: ``eth0 syncid 1`` (the kernel's group) or
    ``eth0 syncid 1 group ff02::4c56``."""
    text = f"{interface} syncid {sync_id}"
    return text if group in (None, KERNEL_GROUP) else f"{text} group {group}"


def _sync_wanted(interface, sync_id, group):
    """``(drift text, canonical group)`` of the daemons asked for; SaltInvocationError
    naming a bad argument."""
    if not isinstance(interface, str) or not interface:
        raise SaltInvocationError(f"interface {interface!r} must be an interface name")
    if isinstance(sync_id, bool) or not isinstance(sync_id, int) or not 0 <= sync_id <= 255:
        raise SaltInvocationError(f"sync_id {sync_id!r} must be an integer from 0 to 255")
    if group is not None:
        try:
            canonical = lvstun.address.canonical(str(group))
        except ValueError:
            canonical = None
        if canonical is None or not netaddr.IPAddress(canonical).is_multicast():
            raise SaltInvocationError(f"group {group!r} must be a multicast address")
        group = canonical
    return _sync_text(interface, sync_id, group), group


def _sync_drifts(want):
    """The sync daemons that differ from ``want`` (a :func:`_sync_text`), as drifts."""
    have = {d["state"]: _sync_text(d["interface"], d["sync_id"], d.get("group")) for d in sync_daemons()}
    return [lvstun.drift.make("ipvs-sync", state, want, have.get(state))
            for state in ("master", "backup") if have.get(state) != want]


def sync_check(interface, sync_id, group=None):
    """How the sync daemons differ from a master and a backup on ``interface`` with
    ``sync_id`` (every director of a site runs both: each sends its connections to the
    others and keeps theirs): drift records, empty when none.

    interface
        The director's LAN interface the daemons send and listen on (``eth0``).
    sync_id
        The site's sync id (0-255): daemons of other sites on the same LAN ignore it.
    group
        The multicast group they use (default: the kernel's, 224.0.0.81; an IPv6 site
        gives an IPv6 group: its LAN may have no IPv4).

    CLI Example:

    .. code-block:: bash

        salt director ipvs.sync_check eth0 1
        salt director ipvs.sync_check eth0 1 group=ff02::4c56
    """
    return _sync_drifts(_sync_wanted(interface, sync_id, group)[0])


def sync_apply(interface, sync_id, group=None):
    """Run a master and a backup sync daemon on ``interface`` with ``sync_id`` and
    ``group`` (restarting one that runs otherwise); return the drifts repaired.

    interface, sync_id, group
        As :func:`sync_check` takes them.

    CLI Example:

    .. code-block:: bash

        salt director ipvs.sync_apply eth0 1
    """
    want, group = _sync_wanted(interface, sync_id, group)
    drifts = _sync_drifts(want)
    with _client() as ipvs:
        for record in drifts:
            try:
                if record["have"] is not None:
                    ipvs.stop_daemon(record["object"])
                ipvs.start_daemon(record["object"], interface, sync_id, group)
            except lvstun.ipvsclient.IPVSError as err:
                raise CommandExecutionError(f"cannot start the {record['object']} sync daemon on {interface}: "
                                            f"{err.strerror or err}") from err
    lvstun.records.store(__opts__, lvstun.records.IPVS_SYNC, {"interface": interface, "sync_id": sync_id,
                                                              "group": group})
    return drifts


def sync_check_absent():
    """The sync daemons the pack started (``sync_apply``) that still run, as drifts
    (want None); daemons started otherwise are not the pack's to stop.

    CLI Example:

    .. code-block:: bash

        salt director ipvs.sync_check_absent
    """
    started = lvstun.records.load(__opts__, lvstun.records.IPVS_SYNC)
    if not started:
        return []
    mine = _sync_text(started["interface"], started["sync_id"], started.get("group"))
    return [lvstun.drift.make("ipvs-sync", d["state"], None, mine) for d in sync_daemons()
            if _sync_text(d["interface"], d["sync_id"], d.get("group")) == mine]


def sync_forget():
    """Stop the sync daemons the pack started and forget them; return the drifts repaired.

    CLI Example:

    .. code-block:: bash

        salt director ipvs.sync_forget
    """
    drifts = sync_check_absent()
    with _client() as ipvs:
        for record in drifts:
            try:
                ipvs.stop_daemon(record["object"])
            except lvstun.ipvsclient.IPVSError as err:
                raise CommandExecutionError(f"cannot stop the {record['object']} sync daemon: "
                                            f"{err.strerror or err}") from err
    lvstun.records.store(__opts__, lvstun.records.IPVS_SYNC, None)
    return drifts


_TIMEOUTS = {"tcp": "timeout_tcp", "tcpfin": "timeout_tcp_fin", "udp": "timeout_udp"}


def get_timeouts():
    """The IPVS connection timeouts in seconds: ``{tcp, tcpfin, udp}``.

    CLI Example:

    .. code-block:: bash

        salt director ipvs.get_timeouts
    """
    with _client() as ipvs:
        try:
            reply = lvstun.genl.top(ipvs.ask("get_config"))
        except lvstun.ipvsclient.IPVSError as err:
            raise CommandExecutionError(f"read timeouts: {err.strerror or err}") from err
    return {name: lvstun.genl.u32(reply, lvstun.genl.ATTR["cmd"][attr]) for name, attr in _TIMEOUTS.items()}


def set_timeouts(tcp=None, tcpfin=None, udp=None):
    """Set the IPVS connection timeouts in seconds (None or 0 keeps the current value).

    tcp, tcpfin, udp
        Seconds for established TCP, TCP after FIN, and UDP connections (as ``ipvsadm
        --set``); None or 0 keeps that one.

    CLI Example:

    .. code-block:: bash

        salt director ipvs.set_timeouts tcp=900 tcpfin=120 udp=300
    """
    values = {"tcp": tcp, "tcpfin": tcpfin, "udp": udp}
    for name, value in values.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise SaltInvocationError(f"timeout {name}={value!r} must be a whole number of seconds")
    with _client() as ipvs:
        failed = ipvs.send([("set_config", lvstun.genl.timeouts(tcp or 0, tcpfin or 0, udp or 0), 0, "set timeouts")])
    if failed:
        raise CommandExecutionError(lvstun.ipvsclient.explain(failed[0][1], "set timeouts"))
    return get_timeouts()


def save():
    """The whole table as ``ipvsadm-save -n`` text.

    CLI Example:

    .. code-block:: bash

        salt director ipvs.save
    """
    return lvstun.ipvs.to_save(list_())


def restore(text=None, path=None, clear=False):
    """Load ``ipvsadm-save`` text (``text``, or the file ``path`` on the minion): add its
    services and destinations, edit existing ones.

    The text is parsed whole before anything changes; a bad line changes nothing.
    With ``clear=True`` every other service is deleted first (as ``ipvsadm-restore -C``).

    text
        ``ipvsadm-save`` text.

    path
        A file on the minion holding that text (instead of ``text``).

    clear
        Delete every other service first (``ipvsadm-restore -C``); default False.

    CLI Example:

    .. code-block:: bash

        salt director ipvs.restore path=/etc/ipvsadm.rules
    """
    if (text is None) == (path is None):
        raise SaltInvocationError("restore: give either text or path")
    if path is not None:
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as err:
            raise CommandExecutionError(f"restore: cannot read {path}: {err.strerror}") from err
    try:
        wanted = lvstun.ipvs.from_save(text)
    except lvstun.ipvs.SpecError as err:
        raise SaltInvocationError(f"restore: {err}") from None
    current = {lvstun.ipvs.service_spec(s): s for s in _read()}
    wanted_specs = {lvstun.ipvs.service_spec(s) for s in wanted}
    ops = [("del_service", svc) for spec, svc in current.items() if clear and spec not in wanted_specs]
    for svc in wanted:
        spec = lvstun.ipvs.service_spec(svc)
        ops.append(("edit_service" if spec in current else "add_service", svc))
        have = {(d["address"], d["port"]) for d in current.get(spec, {}).get("destinations", [])}
        ops += [("edit_dest" if (d["address"], d["port"]) in have else "add_dest", svc, d) for d in svc["destinations"]]
    apply_plan(ops)
    return {"services": len(wanted), "destinations": sum(len(s["destinations"]) for s in wanted)}


def apply_plan(ops):
    """Apply a plan from ``lvstun.ipvs.plan`` in batches over one socket; return the count.

    Used by the ``ipvs`` states. Every step is attempted; if the kernel refuses any,
    the error names each refused step and how many of the others succeeded.

    ops
        ``[[op, service record, destination record], ...]``: ``add_service``,
        ``edit_service``, ``del_service``, ``add_dest``, ``edit_dest``, ``del_dest``.

    CLI Example:

    .. code-block:: bash

        salt-call ipvs.apply_plan '[["add_service", {...}]]'
    """
    return _apply(ops)
