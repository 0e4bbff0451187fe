"""IPVS generic-netlink messages for the read path, with ``struct`` (no pyroute2).

Reading a table of 1,000 services is 1,001 dump requests and ~11,000 replies; pyroute2's
generic message objects cost about a millisecond each on a UML kernel, so the read
path encodes its requests and decodes the replies here, straight from the attribute
layout of ``include/uapi/linux/ip_vs.h``. Writes keep pyroute2's encoder (they are
pipelined and few when nothing changed). The records are those of ``ipvs.list``.
"""

import socket
import struct

GENL_HEADER = struct.Struct("=BBH")  # cmd, version, reserved
NLMSG_HEADER = struct.Struct("=IHHII")  # length, type, flags, seq, pid
NLA_HEADER = struct.Struct("=HH")
NLA_F_NESTED = 0x8000
NLA_TYPE_MASK = 0x3FFF
GENL_VERSION = 1

CMD_GET_SERVICE, CMD_GET_DEST = 4, 8  # IPVS_CMD_GET_SERVICE, IPVS_CMD_GET_DEST
CMD_ATTR_SERVICE, CMD_ATTR_DEST = 1, 2
# IPVS_SVC_ATTR_*
SVC_AF, SVC_PROTOCOL, SVC_ADDR, SVC_PORT, SVC_FWMARK, SVC_SCHED_NAME, SVC_FLAGS, SVC_TIMEOUT, SVC_NETMASK, \
    SVC_STATS, SVC_PE_NAME, SVC_STATS64 = range(1, 13)
# IPVS_DEST_ATTR_*
DEST_ADDR, DEST_PORT, DEST_FWD_METHOD, DEST_WEIGHT, DEST_U_THRESH, DEST_L_THRESH, DEST_ACTIVE_CONNS, \
    DEST_INACT_CONNS, DEST_PERSIST_CONNS, DEST_STATS, DEST_ADDR_FAMILY, DEST_STATS64, DEST_TUN_TYPE, \
    DEST_TUN_PORT, DEST_TUN_FLAGS = range(1, 16)
STATS_NAMES = ("conns", "inpkts", "outpkts", "inbytes", "outbytes", "cps", "inpps", "outpps", "inbps", "outbps")
AF_VERSION = {socket.AF_INET: 4, socket.AF_INET6: 6}
SVC_F_PERSISTENT = 0x1


def nla(kind, payload):
    """One attribute, padded to 4 bytes."""
    length = NLA_HEADER.size + len(payload)
    return NLA_HEADER.pack(length, kind) + payload + b"\0" * (-length % 4)


def request(family, cmd, attrs, flags, seq):
    """A whole generic-netlink request: header, genl header, attribute bytes."""
    body = GENL_HEADER.pack(cmd, GENL_VERSION, 0) + attrs
    return NLMSG_HEADER.pack(NLMSG_HEADER.size + len(body), family, flags, seq, 0) + body


def service_key(key):
    """IPVS_CMD_ATTR_SERVICE naming the service ``key`` (af, protocol, address, port or fwmark)."""
    af = socket.AF_INET if key["af"] == 4 else socket.AF_INET6
    parts = [nla(SVC_AF, struct.pack("=H", af))]
    if key.get("fwmark"):
        parts.append(nla(SVC_FWMARK, struct.pack("=I", key["fwmark"])))
    else:
        from .ipvs import PROTOCOLS  # noqa: PLC0415

        addr = socket.inet_pton(af, key["address"]).ljust(16, b"\0")
        parts += [nla(SVC_PROTOCOL, struct.pack("=H", PROTOCOLS[key["protocol"]])), nla(SVC_ADDR, addr),
                  nla(SVC_PORT, struct.pack("!H", key["port"]))]
    return nla(CMD_ATTR_SERVICE | NLA_F_NESTED, b"".join(parts))


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


def _u16(attrs, kind, default=0):
    value = attrs.get(kind)
    return struct.unpack("=H", value[:2])[0] if value is not None else default


def _u32(attrs, kind, default=0):
    value = attrs.get(kind)
    return struct.unpack("=I", value[:4])[0] if value is not None else default


def _be16(attrs, kind, default=0):
    value = attrs.get(kind)
    return struct.unpack("!H", value[:2])[0] if value is not None else default


def _addr(value, version):
    return socket.inet_ntop(socket.AF_INET if version == 4 else socket.AF_INET6, bytes(value[:4 if version == 4
                                                                                            else 16]))


def _stats(attrs, kind64):
    value = attrs.get(kind64)
    if value is None:
        return {}
    inner = attributes(value)
    return {name: struct.unpack("=Q", inner[i + 1][:8])[0] if i + 1 in inner else 0
            for i, name in enumerate(STATS_NAMES)}


def _top(payload):
    """The attributes of one reply (after the netlink and genl headers)."""
    return attributes(payload, NLMSG_HEADER.size + GENL_HEADER.size)


def service_record(payload, stats=True):
    """The ``ipvs.list`` record (without destinations) of a GET_SERVICE reply
    (``stats`` empty unless asked for)."""
    from .ipvs import PROTOCOL_NAMES, sched_flags_names  # noqa: PLC0415

    svc = attributes(_top(payload)[CMD_ATTR_SERVICE])
    version = AF_VERSION[_u16(svc, SVC_AF)]
    fwmark = _u32(svc, SVC_FWMARK) or None
    flags = _u32(svc, SVC_FLAGS)
    netmask = svc.get(SVC_NETMASK)
    if netmask is not None:
        netmask = socket.inet_ntoa(bytes(netmask[:4])) if version == 4 else struct.unpack("=I", netmask[:4])[0]
    return {
        "af": version,
        "protocol": None if fwmark else PROTOCOL_NAMES.get(_u16(svc, SVC_PROTOCOL)),
        "address": None if fwmark else _addr(svc[SVC_ADDR], version),
        "port": None if fwmark else _be16(svc, SVC_PORT),
        "fwmark": fwmark,
        "scheduler": bytes(svc[SVC_SCHED_NAME]).rstrip(b"\0").decode() if SVC_SCHED_NAME in svc else None,
        "flags": sched_flags_names(flags),
        "persistent": _u32(svc, SVC_TIMEOUT) if flags & SVC_F_PERSISTENT else 0,
        "netmask": netmask,
        "stats": _stats(svc, SVC_STATS64) if stats else {},
    }


def dest_record(payload, service_af=4, stats=True):
    """The ``ipvs.list`` destination record of a GET_DEST reply."""
    from .ipvs import FORWARD_NAMES, TUN_FLAGS, TUN_TYPE_NAMES  # noqa: PLC0415

    dest = attributes(_top(payload)[CMD_ATTR_DEST])
    family = _u16(dest, DEST_ADDR_FAMILY)
    version = AF_VERSION.get(family, service_af)
    forward = FORWARD_NAMES[_u32(dest, DEST_FWD_METHOD) & 0x7]
    record = {
        "address": _addr(dest[DEST_ADDR], version),
        "port": _be16(dest, DEST_PORT),
        "forward": forward,
        "weight": _u32(dest, DEST_WEIGHT),
        "u_threshold": _u32(dest, DEST_U_THRESH),
        "l_threshold": _u32(dest, DEST_L_THRESH),
        "active": _u32(dest, DEST_ACTIVE_CONNS),
        "inactive": _u32(dest, DEST_INACT_CONNS),
        "persistent_conns": _u32(dest, DEST_PERSIST_CONNS),
        "stats": _stats(dest, DEST_STATS64) if stats else {},
    }
    if forward == "tunnel":
        tun_type = dest.get(DEST_TUN_TYPE)
        record["tun_type"] = TUN_TYPE_NAMES.get(tun_type[0] if tun_type is not None else 0, "ipip")
        record["tun_port"] = _be16(dest, DEST_TUN_PORT)
        tun_flags = _u16(dest, DEST_TUN_FLAGS)
        record["tun_flags"] = sorted(n for n, bit in TUN_FLAGS.items() if tun_flags & bit)
    return record
