"""Linux IPVS (LVS) over generic netlink (pyroute2): no ipvsadm processes.

Services are named by spec strings (``tcp:10.10.24.88:80``, ``fwmark:5``), destinations
by ``address:port``. Reads return plain dicts; writes validate their arguments first
(``SaltInvocationError``) and turn kernel errors into ``CommandExecutionError`` with a
message a person understands.

pyroute2 pitfalls avoided here: its ``"update"`` verb sends a DELETE; its
``from_message`` returns class defaults (it reports a tunnel dest as direct routing),
so dump attributes are read raw; ``TUN_PORT`` is declared host-order but the kernel
reads network order.
"""

import errno
import functools
import logging
import os
import socket
import struct
import sys
import time

import lvstun.genl
import lvstun.ipvs
from lvstun.fresh import fresh

try:
    from pyroute2 import IPVS, IPVSDest, IPVSService
    from pyroute2.netlink.exceptions import NetlinkError

    HAS_PYROUTE2 = True
except ImportError:  # pragma: no cover (checked by __virtual__)
    HAS_PYROUTE2 = False

from salt.exceptions import CommandExecutionError, SaltInvocationError

rec = fresh(lvstun.ipvs)
genl = fresh(lvstun.genl)
log = logging.getLogger(__name__)

__virtualname__ = "ipvs"
__func_alias__ = {"list_": "list"}

AF = {4: socket.AF_INET, 6: socket.AF_INET6}


def __virtual__():
    if not HAS_PYROUTE2:
        return False, "the ipvs module needs pyroute2"
    return __virtualname__


# ------------------------------------------------------------------ plumbing
def _socket():
    try:
        return IPVS()
    except NetlinkError as err:
        raise CommandExecutionError(
            f"cannot open the IPVS netlink family ({err}): is the ip_vs kernel module loaded?"
        ) from err
    except OSError as err:
        raise CommandExecutionError(f"cannot open a netlink socket: {err}") from err


def _invalid(func):
    """Decorator: turn malformed-argument errors into SaltInvocationError."""

    @functools.wraps(func)  # Salt reads the signature through __wrapped__
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except rec.SpecError as err:
            raise SaltInvocationError(str(err)) from None

    return wrapper


def _explain(err, action, scheduler=None):
    code = err.code
    if code == errno.EEXIST:
        return f"{action}: it exists already"
    if code in (errno.ESRCH, errno.ENOENT) and scheduler and action.startswith(("add service", "edit service")):
        return f"{action}: scheduler {scheduler!r} is not available: load ip_vs_{scheduler}"
    if code == errno.ESRCH:
        return f"{action}: no such virtual service"
    if code == errno.ENOENT:
        return f"{action}: no such destination"
    if code == errno.EINVAL:
        return f"{action}: the kernel rejected it as invalid (EINVAL: {err})"
    return f"{action}: {err}"


def _call(action, func, *args, scheduler=None, **kwargs):
    try:
        return func(*args, **kwargs)
    except NetlinkError as err:
        raise CommandExecutionError(_explain(err, action, scheduler)) from err


class _Wire:
    """One raw generic-netlink socket for the IPVS family: dumps, and pipelined requests
    whose acknowledgements are collected afterwards.

    pyroute2 encodes and decodes the messages; the socket I/O is done here because
    pyroute2's asyncio core costs tens of milliseconds per request on a kernel where
    system calls are expensive (a 1,000-service table is 1,001 dumps to read).
    """

    NETLINK_GENERIC, NLMSG_ERROR, NLMSG_DONE = 16, 2, 3
    F_REQUEST, F_ACK, F_DUMP = 0x1, 0x4, 0x300
    F_CREATE, F_EXCL, F_REPLACE = 0x400, 0x200, 0x100
    WINDOW = 256  # requests in flight before their acknowledgements are read

    def __init__(self):
        from pyroute2.netlink.generic import ipvs as nl  # noqa: PLC0415

        self.nl = nl
        with _socket() as ipvs:  # resolves the IPVS family id (and says if ip_vs is missing)
            self.family = ipvs.prid
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, self.NETLINK_GENERIC)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((0, 0))
        self.buffer = bytearray(1 << 20)
        self.seq = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()

    def _encode(self, cmd, attrs, flags):
        self.seq += 1
        msg = self.nl.ipvsmsg()
        msg["cmd"] = cmd
        msg["version"] = self.nl.GENL_VERSION
        msg["attrs"] = attrs
        msg["header"]["type"] = self.family
        msg["header"]["flags"] = flags
        msg["header"]["sequence_number"] = self.seq
        msg.encode()
        return self.seq, msg.data

    def _messages(self):
        """Yield (type, seq, payload bytes) for each message of the next datagram."""
        size = self.sock.recv_into(self.buffer)  # into one buffer: no 1 MiB allocation per datagram
        data = bytes(self.buffer[:size])
        offset = 0
        while offset + 16 <= len(data):
            length, kind, _flags, seq, _pid = struct.unpack_from("=IHHII", data, offset)
            yield kind, seq, data[offset:offset + length]
            offset += (length + 3) & ~3

    def dump(self, cmd, attrs=b""):
        """The replies of a dump request, as raw messages (``lvstun.genl`` decodes them);
        ``attrs`` are the request's encoded attributes."""
        self.seq += 1
        seq = self.seq
        self.sock.send(genl.request(self.family, cmd, attrs, self.F_REQUEST | self.F_DUMP, seq))
        out = []
        while True:
            for kind, rseq, payload in self._messages():
                if rseq != seq:
                    continue
                if kind == self.NLMSG_DONE:
                    return out
                if kind == self.NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload, 16)[0]
                    raise NetlinkError(code, os.strerror(code))
                out.append(payload)

    def pipeline(self, requests):
        """Send ``(cmd, attrs, flags, label)`` requests, WINDOW at a time; return
        ``[(label, NetlinkError)]`` for those the kernel refused (all are attempted)."""
        failed = []
        for start in range(0, len(requests), self.WINDOW):
            labels = {}
            for cmd, attrs, flags, label in requests[start:start + self.WINDOW]:
                seq, data = self._encode(cmd, attrs, self.F_REQUEST | self.F_ACK | flags)
                labels[seq] = label
                self.sock.send(data)
            while labels:
                for kind, seq, payload in self._messages():
                    if kind == self.NLMSG_ERROR and seq in labels:
                        label = labels.pop(seq)
                        code = -struct.unpack_from("=i", payload, 16)[0]
                        if code:
                            failed.append((label, NetlinkError(code, os.strerror(code))))
        return failed


def _svc_key_nl(key):
    """The pyroute2 record naming service ``key`` (only its key fields)."""
    if key["fwmark"]:
        return IPVSService(fwmark=key["fwmark"], af=AF[key["af"]])
    return IPVSService(addr=key["address"], port=key["port"], protocol=rec.PROTOCOLS[key["protocol"]],
                       af=AF[key["af"]])


def _svc_nl(key, scheduler, flags, persistent, netmask):
    svc = _svc_key_nl(key)
    value = rec.sched_flags_value(flags) | (rec.SVC_F_PERSISTENT if persistent else 0)
    svc["sched_name"] = scheduler
    svc["flags"] = {"flags": value, "mask": 0xFFFFFFFF}
    svc["timeout"] = int(persistent or 0)
    if key["af"] == 4:
        svc["netmask"] = netmask or "255.255.255.255"
    else:
        # The kernel wants a u32 prefix length for IPv6; pyroute2 declares an IPv4
        # address: send the prefix's host-order bytes as that "address".
        svc["netmask"] = socket.inet_ntoa(int(netmask or 128).to_bytes(4, sys.byteorder))
    return svc


def _dest_nl(dest):
    return IPVSDest(
        addr=dest["address"],
        port=dest["port"],
        addr_family=AF[rec.split_hostport(rec.join_hostport(dest["address"], 0))[0].version],
        fwd_method=rec.FORWARD[dest["forward"]],
        weight=dest["weight"],
        u_thresh=dest.get("u_threshold", 0),
        l_thresh=dest.get("l_threshold", 0),
        tun_type=rec.TUN_TYPES[dest.get("tun_type", "ipip")],
        tun_port=socket.htons(int(dest.get("tun_port", 0))),  # declared host-order, read as network order
        tun_flags=sum(rec.TUN_FLAGS[f] for f in dest.get("tun_flags", ())),
    )


def _read(only=None, stats=True):
    """The table (or the service ``only``) as records; one raw socket, one dump per
    service, replies decoded by ``lvstun.genl`` (the read path of every state)."""
    with _Wire() as wire:
        services = []
        for payload in _call("list services", wire.dump, genl.CMD_GET_SERVICE):
            svc = genl.service_record(payload, stats)
            if only is not None and rec.service_spec(svc) != rec.service_spec(only):
                continue
            dests = _call(f"list destinations of {rec.service_spec(svc)}", wire.dump, genl.CMD_GET_DEST,
                          genl.service_key(svc))
            svc["destinations"] = sorted((genl.dest_record(d, svc["af"], stats) for d in dests),
                                         key=lambda d: (d["address"], d["port"]))
            services.append(svc)
    return sorted(services, key=rec.service_spec)


# ------------------------------------------------------------------ read
def list_(service=None, stats=True):
    """List the virtual services (or one) with their destinations and, unless
    ``stats=False`` (the states' way: faster on big tables), their counters.

    CLI Example:

    .. code-block:: bash

        salt director ipvs.list
        salt director ipvs.list service=tcp:10.10.24.88:80
    """
    key = _parse_service(service) if service else None
    return _read(only=key, stats=stats)


def get_service(service):
    """Return one virtual service (with destinations), or None if absent.

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
    return rec.format_listing(list_())


# ------------------------------------------------------------------ services
@_invalid
def _parse_service(service):
    return rec.parse_service(service)


def _write_service(verb, service, scheduler, flags, persistent, netmask):
    key = rec.parse_service(service)
    svc = _svc_nl(key, scheduler, flags, persistent, netmask)
    action = f"{'add' if verb == 'add' else 'edit'} service {rec.service_spec(key)}"
    with _socket() as ipvs:
        _call(action, ipvs.service, verb, service=svc, scheduler=scheduler)
    return True


@_invalid
def add_service(service, scheduler="wlc", flags=None, persistent=0, netmask=None):
    """Add a virtual service.

    CLI Example:

    .. code-block:: bash

        salt director ipvs.add_service tcp:10.10.24.88:80 scheduler=rr
        salt director ipvs.add_service fwmark:5 scheduler=mh flags='[mh-port]'
    """
    return _write_service("add", service, scheduler, flags, persistent, netmask)


@_invalid
def edit_service(service, scheduler="wlc", flags=None, persistent=0, netmask=None):
    """Change a virtual service's scheduler, flags or persistence (all given, not merged).

    CLI Example:

    .. code-block:: bash

        salt director ipvs.edit_service tcp:10.10.24.88:80 scheduler=wrr
    """
    return _write_service("set", service, scheduler, flags, persistent, netmask)


@_invalid
def delete_service(service):
    """Delete a virtual service and its destinations (their connections are cut).

    CLI Example:

    .. code-block:: bash

        salt director ipvs.delete_service tcp:10.10.24.88:80
    """
    key = rec.parse_service(service)
    with _socket() as ipvs:
        _call(f"delete service {rec.service_spec(key)}", ipvs.service, "del", service=_svc_key_nl(key))
    return True


# ------------------------------------------------------------------ destinations
def _write_dest(verb, service, dest, **settings):
    """Validate (as the states do: ``lvstun.ipvs.desired_dest``) and add or set a dest."""
    key = rec.parse_service(service)
    record = rec.desired_dest(dest, settings, rec.service_spec(key))
    action = f"{'add' if verb == 'add' else 'edit'} destination {dest} of {rec.service_spec(key)}"
    with _socket() as ipvs:
        _call(action, ipvs.dest, verb, service=_svc_key_nl(key), dest=_dest_nl(record))
    return True


@_invalid
def add_dest(service, dest, forward="tunnel", weight=1, u_threshold=0, l_threshold=0, tun_type="ipip",
             tun_port=0, tun_flags=None):
    """Add a destination (real server) to a virtual service; TUN (ipip) by default.

    CLI Example:

    .. code-block:: bash

        salt director ipvs.add_dest tcp:10.10.24.88:80 10.10.24.21:80 weight=2
    """
    return _write_dest("add", service, dest, forward=forward, weight=weight, u_threshold=u_threshold,
                       l_threshold=l_threshold, tun_type=tun_type, tun_port=tun_port, tun_flags=tun_flags)


@_invalid
def edit_dest(service, dest, forward="tunnel", weight=1, u_threshold=0, l_threshold=0, tun_type="ipip",
              tun_port=0, tun_flags=None):
    """Change a destination (all fields given, not merged).

    CLI Example:

    .. code-block:: bash

        salt director ipvs.edit_dest tcp:10.10.24.88:80 10.10.24.21:80 weight=5
    """
    return _write_dest("set", service, dest, forward=forward, weight=weight, u_threshold=u_threshold,
                       l_threshold=l_threshold, tun_type=tun_type, tun_port=tun_port, tun_flags=tun_flags)


@_invalid
def delete_dest(service, dest):
    """Delete a destination at once (its connections are cut; see ``drain``).

    CLI Example:

    .. code-block:: bash

        salt director ipvs.delete_dest tcp:10.10.24.88:80 10.10.24.21:80
    """
    key = rec.parse_service(service)
    record = rec.parse_dest(dest)
    with _socket() as ipvs:
        _call(f"delete destination {dest} of {rec.service_spec(key)}", ipvs.dest, "del",
              service=_svc_key_nl(key), dest=IPVSDest(addr=record["address"], port=record["port"]))
    return True


def _find_dest(service, dest):
    svc = get_service(service)
    if svc is None:
        raise CommandExecutionError(f"no such virtual service {service}")
    wanted = rec.parse_dest(dest)
    for current in svc["destinations"]:
        if (current["address"], current["port"]) == (wanted["address"], wanted["port"]):
            return current
    raise CommandExecutionError(f"no destination {dest} in {service}")


@_invalid
def set_weight(service, dest, weight):
    """Set one destination's weight, keeping every other field as the kernel has it.

    CLI Example:

    .. code-block:: bash

        salt director ipvs.set_weight tcp:10.10.24.88:80 10.10.24.21:80 0
    """
    rec.check_weight(weight)
    current = _find_dest(service, dest)
    fields = {k: current.get(k, d) for k, d in (("tun_type", "ipip"), ("tun_port", 0), ("tun_flags", []))}
    return edit_dest(service, dest, forward=current["forward"], weight=weight,
                     u_threshold=current["u_threshold"], l_threshold=current["l_threshold"], **fields)


@_invalid
def drain(service, dest, timeout=60, interval=0.5, delete=False):
    """Gracefully remove a destination: weight 0, wait (at most ``timeout`` seconds)
    until its active connections reach 0, then optionally delete it.

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

    CLI Example:

    .. code-block:: bash

        salt director ipvs.zero
    """
    from pyroute2.netlink.generic import ipvs as nl  # noqa: PLC0415

    with _socket() as ipvs:
        msg = nl.ipvsmsg()
        msg["cmd"] = nl.IPVS_CMD_ZERO
        msg["version"] = nl.GENL_VERSION
        if service:
            msg["attrs"] = [("IPVS_CMD_ATTR_SERVICE", _svc_key_nl(_parse_service(service)).dump_key())]
        _call("zero counters", ipvs.nlm_request, msg, msg_type=ipvs.prid, msg_flags=1 | 4)
    return True


_TIMEOUT_ATTRS = (("tcp", "IPVS_CMD_ATTR_TIMEOUT_TCP"), ("tcpfin", "IPVS_CMD_ATTR_TIMEOUT_TCP_FIN"),
                  ("udp", "IPVS_CMD_ATTR_TIMEOUT_UDP"))


def _config_request(ipvs, cmd, attrs=None, flags=1):
    """GET/SET_CONFIG. pyroute2 declares the timeouts as raw "hex" attributes: they
    travel as 4 bytes in host order (the kernel's u32) and come back as a hexdump."""
    from pyroute2.netlink.generic import ipvs as nl  # noqa: PLC0415

    msg = nl.ipvsmsg()
    msg["cmd"] = cmd
    msg["version"] = nl.GENL_VERSION
    msg["attrs"] = [(attr, value.to_bytes(4, sys.byteorder)) for attr, value in attrs or ()]
    return list(ipvs.nlm_request(msg, msg_type=ipvs.prid, msg_flags=flags))


def _u32_from_hexdump(text):
    return int.from_bytes(bytes.fromhex(text.replace(":", "")), sys.byteorder)


def get_timeouts():
    """The IPVS connection timeouts in seconds: ``{tcp, tcpfin, udp}``.

    CLI Example:

    .. code-block:: bash

        salt director ipvs.get_timeouts
    """
    from pyroute2.netlink.generic import ipvs as nl  # noqa: PLC0415

    with _socket() as ipvs:
        (reply,) = _call("read timeouts", _config_request, ipvs, nl.IPVS_CMD_GET_CONFIG)
    return {name: _u32_from_hexdump(reply.get_attr(attr)) for name, attr in _TIMEOUT_ATTRS}


def set_timeouts(tcp=None, tcpfin=None, udp=None):
    """Set the IPVS connection timeouts in seconds (None or 0 keeps the current value).

    CLI Example:

    .. code-block:: bash

        salt director ipvs.set_timeouts tcp=900 tcpfin=120 udp=300
    """
    from pyroute2.netlink.generic import ipvs as nl  # noqa: PLC0415

    values = {"tcp": tcp, "tcpfin": tcpfin, "udp": udp}
    for name, value in values.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise SaltInvocationError(f"timeout {name}={value!r} must be a whole number of seconds")
    with _socket() as ipvs:
        attrs = [(attr, values[name] or 0) for name, attr in _TIMEOUT_ATTRS]
        _call("set timeouts", _config_request, ipvs, nl.IPVS_CMD_SET_CONFIG, attrs, flags=1 | 4)
    return get_timeouts()


def save():
    """The whole table as ``ipvsadm-save -n`` text.

    CLI Example:

    .. code-block:: bash

        salt director ipvs.save
    """
    return rec.to_save(list_())


def restore(text=None, path=None, clear=False):
    """Load ``ipvsadm-save`` text (``text``, or the file ``path`` on the minion): add its
    services and destinations, edit existing ones.

    The text is parsed whole before anything changes; a bad line changes nothing.
    With ``clear=True`` every other service is deleted first (as ``ipvsadm-restore -C``).

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
        wanted = rec.from_save(text)
    except rec.SpecError as err:
        raise SaltInvocationError(f"restore: {err}") from None
    current = {rec.service_spec(s): s for s in _read()}
    wanted_specs = {rec.service_spec(s) for s in wanted}
    ops = [("del_service", svc) for spec, svc in current.items() if clear and spec not in wanted_specs]
    for svc in wanted:
        spec = rec.service_spec(svc)
        ops.append(("edit_service" if spec in current else "add_service", svc))
        have = {(d["address"], d["port"]) for d in current.get(spec, {}).get("destinations", [])}
        ops += [("edit_dest" if (d["address"], d["port"]) in have else "add_dest", svc, d) for d in svc["destinations"]]
    apply_plan(ops)
    return {"services": len(wanted), "destinations": sum(len(s["destinations"]) for s in wanted)}


def apply_plan(ops):
    """Run a plan from ``lvstun.ipvs.plan`` over one socket, pipelined; return the count.

    Used by the ``ipvs`` states. Every step is attempted; if the kernel refuses any,
    the error names each refused step and how many of the others succeeded.

    CLI Example:

    .. code-block:: bash

        salt-call ipvs.apply_plan '[["add_service", {...}]]'
    """
    with _Wire() as wire:
        nl = wire.nl
        requests = []
        for op, svc, *rest in ops:
            spec = rec.service_spec(svc)
            if op in ("add_service", "edit_service"):
                nl_svc = _svc_nl(svc, svc["scheduler"], svc["flags"], svc["persistent"], svc.get("netmask"))
                cmd, flags = ((nl.IPVS_CMD_NEW_SERVICE, wire.F_CREATE | wire.F_EXCL) if op == "add_service"
                              else (nl.IPVS_CMD_SET_SERVICE, wire.F_REPLACE))
                label = (f"{op.replace('_', ' ')} {spec}", svc["scheduler"])
                requests.append((cmd, [("IPVS_CMD_ATTR_SERVICE", nl_svc.dump_nla())], flags, label))
            elif op == "del_service":
                requests.append((nl.IPVS_CMD_DEL_SERVICE, [("IPVS_CMD_ATTR_SERVICE", _svc_key_nl(svc).dump_nla())],
                                 0, (f"delete service {spec}", None)))
            else:
                dest = rest[0]
                where = f"{rec.join_hostport(dest['address'], dest['port'])} of {spec}"
                nl_dest = (IPVSDest(addr=dest["address"], port=dest["port"]) if op == "del_dest" else _dest_nl(dest))
                cmd, flags = {"add_dest": (nl.IPVS_CMD_NEW_DEST, wire.F_CREATE | wire.F_EXCL),
                              "edit_dest": (nl.IPVS_CMD_SET_DEST, wire.F_REPLACE),
                              "del_dest": (nl.IPVS_CMD_DEL_DEST, 0)}[op]
                requests.append((cmd, [("IPVS_CMD_ATTR_SERVICE", _svc_key_nl(svc).dump_key()),
                                       ("IPVS_CMD_ATTR_DEST", nl_dest.dump_nla())],
                                 flags, (f"{op.replace('_', ' ').replace('del', 'delete')} {where}", None)))
        failed = wire.pipeline(requests)
    if failed:
        reasons = "; ".join(_explain(err, action, scheduler) for (action, scheduler), err in failed[:5])
        raise CommandExecutionError(f"{len(failed)} of {len(ops)} steps failed ({len(ops) - len(failed)} done): "
                                    f"{reasons}")
    return len(ops)
