"""The IPVS generic-netlink messages, declared once as data and coded with ``struct``.

The layouts below are ``include/uapi/linux/ip_vs.h`` in enum order (an attribute's
number is its position + 1); ``tests/unit/test_genl.py`` checks them against pyroute2's
declarations and round-trips messages through pyroute2's codec. Requests are encoded
from the layouts (:func:`nested`), replies decoded into the records of ``ipvs.list``
(:func:`service_record`, :func:`dest_record`). pyroute2's generic message objects cost
about a millisecond each on a UML kernel; these functions some microseconds.
"""

import socket
import struct

from .ipvs import (
    FORWARD,
    FORWARD_NAMES,
    PROTOCOL_NAMES,
    PROTOCOLS,
    SVC_F_PERSISTENT,
    TUN_FLAGS,
    TUN_TYPE_NAMES,
    TUN_TYPES,
    sched_flags_names,
    sched_flags_value,
)

GENL_HEADER = struct.Struct("=BBH")  # cmd, version, reserved
NLMSG_HEADER = struct.Struct("=IHHII")  # length, type, flags, seq, pid
NLA_HEADER = struct.Struct("=HH")
NLA_F_NESTED = 0x8000
NLA_TYPE_MASK = 0x3FFF
GENL_VERSION = 1

# ------------------------------------------------------------------ layouts (ip_vs.h)
COMMANDS = ("new_service", "set_service", "del_service", "get_service", "new_dest", "set_dest", "del_dest",
            "get_dest", "new_daemon", "del_daemon", "get_daemon", "set_config", "get_config", "set_info",
            "get_info", "zero", "flush")
CMD_ATTRS = (("service", "nested"), ("dest", "nested"), ("daemon", "nested"), ("timeout_tcp", "u32"),
             ("timeout_tcp_fin", "u32"), ("timeout_udp", "u32"))
SERVICE_ATTRS = (("af", "u16"), ("protocol", "u16"), ("addr", "addr"), ("port", "be16"), ("fwmark", "u32"),
                 ("sched_name", "string"), ("flags", "flags"), ("timeout", "u32"), ("netmask", "raw"),
                 ("stats", "nested"), ("pe_name", "string"), ("stats64", "nested"))
DEST_ATTRS = (("addr", "addr"), ("port", "be16"), ("fwd_method", "u32"), ("weight", "u32"), ("u_thresh", "u32"),
              ("l_thresh", "u32"), ("active_conns", "u32"), ("inact_conns", "u32"), ("persist_conns", "u32"),
              ("stats", "nested"), ("addr_family", "u16"), ("stats64", "nested"), ("tun_type", "u8"),
              ("tun_port", "be16"), ("tun_flags", "u16"))
# The connection sync daemons (pyroute2 does not declare these; the lab checks them on a kernel).
DAEMON_ATTRS = (("state", "u32"), ("mcast_ifn", "string"), ("sync_id", "u32"), ("sync_maxlen", "u16"),
                ("mcast_group", "raw"), ("mcast_group6", "raw"), ("mcast_port", "u16"), ("mcast_ttl", "u8"))
DAEMON_STATES = {"master": 1, "backup": 2}  # IP_VS_STATE_MASTER, IP_VS_STATE_BACKUP
STATS64_ATTRS = tuple((name, "u64") for name in ("conns", "inpkts", "outpkts", "inbytes", "outbytes", "cps",
                                                  "inpps", "outpps", "inbps", "outbps"))
LAYOUTS = {"cmd": CMD_ATTRS, "service": SERVICE_ATTRS, "dest": DEST_ATTRS, "stats64": STATS64_ATTRS,
           "daemon": DAEMON_ATTRS}

CMD = {name: number for number, name in enumerate(COMMANDS, 1)}
ATTR = {kind: {name: number for number, (name, _) in enumerate(layout, 1)} for kind, layout in LAYOUTS.items()}
STATS_NAMES = tuple(name for name, _ in STATS64_ATTRS)
AF = {4: socket.AF_INET, 6: socket.AF_INET6}
AF_VERSION = {socket.AF_INET: 4, socket.AF_INET6: 6}

_PACK = {
    "u8": struct.Struct("=B").pack, "u16": struct.Struct("=H").pack, "u32": struct.Struct("=I").pack,
    "u64": struct.Struct("=Q").pack, "be16": struct.Struct("!H").pack,
    "flags": lambda value: struct.pack("=II", value, 0xFFFFFFFF),  # struct ip_vs_flags {flags, mask}
    "string": lambda text: text.encode() + b"\0",
    "addr": lambda text: socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text).ljust(16, b"\0"),
    "raw": bytes,
}
_TYPES = {kind: {number: kind_ for number, (_, kind_) in enumerate(layout, 1)} for kind, layout in LAYOUTS.items()}


# ------------------------------------------------------------------ encoding
def nla(kind, payload):
    """One attribute, padded to 4 bytes."""
    length = NLA_HEADER.size + len(payload)
    return NLA_HEADER.pack(length, kind) + payload + b"\0" * (-length % 4)


def nested(layout, values):
    """The attributes of ``values`` (``{name: value}``, None left out) laid out by
    ``layout`` (a key of ``LAYOUTS``), in its order."""
    numbers, types = ATTR[layout], _TYPES[layout]
    return b"".join(nla(numbers[name], _PACK[types[numbers[name]]](value))
                    for name, value in values.items() if value is not None)


def request(family, cmd, attrs, flags, seq):
    """A whole generic-netlink request: header, genl header, attribute bytes."""
    body = GENL_HEADER.pack(cmd, GENL_VERSION, 0) + attrs
    return NLMSG_HEADER.pack(NLMSG_HEADER.size + len(body), family, flags, seq, 0) + body


def _key_values(key):
    values = {"af": AF[key["af"]]}
    if key.get("fwmark"):
        values["fwmark"] = key["fwmark"]
    else:
        values.update(protocol=PROTOCOLS[key["protocol"]], addr=key["address"], port=key["port"])
    return values


def service_key(key):
    """IPVS_CMD_ATTR_SERVICE naming the service ``key`` (af, protocol, address, port or fwmark)."""
    return nla(ATTR["cmd"]["service"] | NLA_F_NESTED, nested("service", _key_values(key)))


def service_full(svc):
    """IPVS_CMD_ATTR_SERVICE with every setting of ``svc`` (a desired service record)."""
    value = sched_flags_value(svc.get("flags")) | (SVC_F_PERSISTENT if svc.get("persistent") else 0)
    netmask = svc.get("netmask")
    # IPv4: the mask's address; IPv6: a prefix length (u32)
    mask = (socket.inet_aton(netmask or "255.255.255.255") if svc["af"] == 4
            else struct.pack("=I", int(netmask or 128)))
    values = {**_key_values(svc), "sched_name": svc["scheduler"], "flags": value,
              "timeout": int(svc.get("persistent") or 0), "netmask": mask}
    return nla(ATTR["cmd"]["service"] | NLA_F_NESTED, nested("service", values))


def dest_key(dest):
    """IPVS_CMD_ATTR_DEST naming ``dest`` (address and port)."""
    return nla(ATTR["cmd"]["dest"] | NLA_F_NESTED, nested("dest", {"addr": dest["address"], "port": dest["port"]}))


def dest_full(dest):
    """IPVS_CMD_ATTR_DEST with every setting of ``dest`` (a desired destination record)."""
    values = {"addr": dest["address"], "port": dest["port"], "fwd_method": FORWARD[dest["forward"]],
              "weight": dest["weight"], "u_thresh": dest.get("u_threshold", 0),
              "l_thresh": dest.get("l_threshold", 0),
              "addr_family": socket.AF_INET6 if ":" in dest["address"] else socket.AF_INET}
    if dest["forward"] == "tunnel":
        values.update(tun_type=TUN_TYPES[dest.get("tun_type", "ipip")], tun_port=int(dest.get("tun_port", 0)),
                      tun_flags=sum(TUN_FLAGS[f] for f in dest.get("tun_flags", ())))
    return nla(ATTR["cmd"]["dest"] | NLA_F_NESTED, nested("dest", values))


def daemon(state, interface=None, sync_id=None):
    """IPVS_CMD_ATTR_DAEMON for the ``state`` (master, backup) daemon: all three to
    start one, the state alone to stop it."""
    values = {"state": DAEMON_STATES[state], "mcast_ifn": interface, "sync_id": sync_id}
    return nla(ATTR["cmd"]["daemon"] | NLA_F_NESTED, nested("daemon", values))


def timeouts(tcp, tcpfin, udp):
    """The SET_CONFIG attributes for the three timeouts (0 keeps a value)."""
    return nested("cmd", {"timeout_tcp": tcp, "timeout_tcp_fin": tcpfin, "timeout_udp": udp})


# ------------------------------------------------------------------ decoding
def attributes(data, offset=0, end=None):
    """``{type: memoryview}`` of the attributes in ``data[offset:end]`` (nested flag dropped)."""
    view = memoryview(data)
    end = len(data) if end is None else end
    out = {}
    while offset + 4 <= end:
        length, kind = NLA_HEADER.unpack_from(view, offset)
        if length < 4:
            break
        out[kind & NLA_TYPE_MASK] = view[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return out


def top(payload):
    """The attributes of one reply (after the netlink and genl headers)."""
    return attributes(payload, NLMSG_HEADER.size + GENL_HEADER.size)


def u32(attrs, kind, default=0):
    value = attrs.get(kind)
    return struct.unpack("=I", value[:4])[0] if value is not None else default


def _u16(attrs, kind, default=0):
    value = attrs.get(kind)
    return struct.unpack("=H", value[:2])[0] if value is not None else default


def _be16(attrs, kind, default=0):
    value = attrs.get(kind)
    return struct.unpack("!H", value[:2])[0] if value is not None else default


def _addr(value, version):
    return socket.inet_ntop(AF[version], bytes(value[:4 if version == 4 else 16]))


def _stats(value):
    if value is None:
        return {}
    inner = attributes(value)
    return {name: struct.unpack("=Q", inner[i][:8])[0] if i in inner else 0
            for i, name in enumerate(STATS_NAMES, 1)}


_S, _D = ATTR["service"], ATTR["dest"]


def service_record(payload, stats=True):
    """The ``ipvs.list`` record (without destinations) of a GET_SERVICE reply
    (``stats`` empty unless asked for)."""
    svc = attributes(top(payload)[ATTR["cmd"]["service"]])
    version = AF_VERSION[_u16(svc, _S["af"])]
    fwmark = u32(svc, _S["fwmark"]) or None
    flags = u32(svc, _S["flags"])
    netmask = svc.get(_S["netmask"])
    if netmask is not None:
        netmask = socket.inet_ntoa(bytes(netmask[:4])) if version == 4 else struct.unpack("=I", netmask[:4])[0]
    sched = svc.get(_S["sched_name"])
    return {
        "af": version,
        "protocol": None if fwmark else PROTOCOL_NAMES.get(_u16(svc, _S["protocol"])),
        "address": None if fwmark else _addr(svc[_S["addr"]], version),
        "port": None if fwmark else _be16(svc, _S["port"]),
        "fwmark": fwmark,
        "scheduler": bytes(sched).rstrip(b"\0").decode() if sched is not None else None,
        "flags": sched_flags_names(flags),
        "persistent": u32(svc, _S["timeout"]) if flags & SVC_F_PERSISTENT else 0,
        "netmask": netmask,
        "stats": _stats(svc.get(_S["stats64"])) if stats else {},
    }


def dest_record(payload, service_af=4, stats=True):
    """The ``ipvs.list`` destination record of a GET_DEST reply."""
    dest = attributes(top(payload)[ATTR["cmd"]["dest"]])
    version = AF_VERSION.get(_u16(dest, _D["addr_family"]), service_af)
    forward = FORWARD_NAMES[u32(dest, _D["fwd_method"]) & 0x7]
    record = {
        "address": _addr(dest[_D["addr"]], version),
        "port": _be16(dest, _D["port"]),
        "forward": forward,
        "weight": u32(dest, _D["weight"]),
        "u_threshold": u32(dest, _D["u_thresh"]),
        "l_threshold": u32(dest, _D["l_thresh"]),
        "active": u32(dest, _D["active_conns"]),
        "inactive": u32(dest, _D["inact_conns"]),
        "persistent_conns": u32(dest, _D["persist_conns"]),
        "stats": _stats(dest.get(_D["stats64"])) if stats else {},
    }
    if forward == "tunnel":
        tun_type = dest.get(_D["tun_type"])
        record["tun_type"] = TUN_TYPE_NAMES.get(tun_type[0] if tun_type is not None else 0, "ipip")
        record["tun_port"] = _be16(dest, _D["tun_port"])
        tun_flags = _u16(dest, _D["tun_flags"])
        record["tun_flags"] = sorted(n for n, bit in TUN_FLAGS.items() if tun_flags & bit)
    return record


def daemon_record(payload):
    """``{"state", "interface", "sync_id"}`` of a GET_DAEMON reply."""
    attrs = attributes(top(payload)[ATTR["cmd"]["daemon"]])
    numbers = ATTR["daemon"]
    states = {number: name for name, number in DAEMON_STATES.items()}
    ifn = attrs.get(numbers["mcast_ifn"])
    return {"state": states.get(u32(attrs, numbers["state"]), "unknown"),
            "interface": bytes(ifn).split(b"\0", 1)[0].decode() if ifn is not None else None,
            "sync_id": u32(attrs, numbers["sync_id"])}
