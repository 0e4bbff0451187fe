"""The IPVS generic-netlink messages, declared once as data and coded with ``struct``.

The layouts below are ``include/uapi/linux/ip_vs.h`` in enum order (an attribute's
number is its position + 1); ``tests/unit/test_genl.py`` checks them against pyroute2's
declarations and round-trips messages through pyroute2's codec. Requests are encoded
from the layouts (:func:`nested`), replies decoded into the records of ``ipvs.list``
(:func:`service_record`, :func:`dest_record`). pyroute2's generic message objects cost
about a millisecond each on a UML kernel; these functions some microseconds.
"""

import operator
import socket
import struct
import sys

from .ipvs import (
    FORWARD,
    FORWARD_NAMES,
    PROTOCOL_NAMES,
    PROTOCOLS,
    SVC_F_HASHED,
    SVC_F_PERSISTENT,
    TUN_FLAGS,
    TUN_TYPE_NAMES,
    TUN_TYPES,
    sched_flags_names,
    sched_flags_value,
    tun_flag_names,
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


# A service's key as one struct (every dump of a service's destinations sends one): the
# nested IPVS_CMD_ATTR_SERVICE and, in it, af, protocol, addr and port, as :func:`nested`
# lays them out.
_SERVICE_KEY = struct.Struct("=HH" "HHH2x" "HHH2x" "HH16s" "HHH2x")


def service_key(key):
    """IPVS_CMD_ATTR_SERVICE naming the service ``key`` (af, protocol, address, port or
    fwmark): the bytes :func:`service_key_generic` makes, an address's in one call."""
    if key.get("fwmark"):
        return service_key_generic(key)
    return _SERVICE_KEY.pack(_SERVICE_KEY.size, ATTR["cmd"]["service"] | NLA_F_NESTED, 6, _S["af"], AF[key["af"]],
                             6, _S["protocol"], PROTOCOLS[key["protocol"]], 20, _S["addr"], _addr16(key["address"]),
                             6, _S["port"], _HTONS(key["port"]))


def service_key_generic(key):
    """:func:`service_key` attribute by attribute (the reference its packed form is tested
    against, and the form of a firewall mark's)."""
    return nla(ATTR["cmd"]["service"] | NLA_F_NESTED, nested("service", _key_values(key)))


def service_full(svc):
    """IPVS_CMD_ATTR_SERVICE with every setting of ``svc`` (a desired service record)."""
    return nla(ATTR["cmd"]["service"] | NLA_F_NESTED, nested("service", {**_key_values(svc), **_settings_values(svc)}))


def _settings_values(svc, hashed=0):
    """The attribute values of a service's settings, in the order a kernel writes them
    after its key: scheduler, flags (``hashed``: the flag a kernel adds to its own),
    persistence timeout and netmask (IPv4: the mask's address; IPv6: a prefix length)."""
    value = sched_flags_value(svc.get("flags")) | (SVC_F_PERSISTENT if svc.get("persistent") else 0) | hashed
    netmask = svc.get("netmask")
    mask = (socket.inet_aton(netmask or "255.255.255.255") if svc["af"] == 4
            else struct.pack("=I", int(netmask or 128)))
    return {"sched_name": svc["scheduler"], "flags": value, "timeout": int(svc.get("persistent") or 0),
            "netmask": mask}


def dest_key(dest):
    """IPVS_CMD_ATTR_DEST naming ``dest`` (address and port)."""
    return nla(ATTR["cmd"]["dest"] | NLA_F_NESTED, nested("dest", {"addr": dest["address"], "port": dest["port"]}))


# A destination with every setting, as one struct (a table's first apply writes thousands):
# the nested IPVS_CMD_ATTR_DEST and, in it, addr, port, fwd_method, weight, u_thresh,
# l_thresh, addr_family (and for a tunnel: tun_type, tun_port, tun_flags), each attribute
# header (length, type) then its value padded to 4 bytes, as :func:`nested` lays them out.
_DEST_HEAD = "=HH" + "HH16s" + "HHH2x" + "HHI" * 4 + "HHH2x"
_DEST_PLAIN = struct.Struct(_DEST_HEAD)
_DEST_TUNNEL = struct.Struct(_DEST_HEAD + "HHB3x" + "HHH2x" + "HHH2x")
_ADDR_BYTES = {}  # address text -> its 16 bytes (a table names the same real servers in every service)


def _addr16(text):
    raw = _ADDR_BYTES.get(text)
    if raw is None:
        raw = _PACK["addr"](text)
        if len(_ADDR_BYTES) < 1 << 16:
            _ADDR_BYTES[text] = raw
    return raw


_A = ATTR["dest"]
_DEST_KIND = ATTR["cmd"]["dest"] | NLA_F_NESTED
_HTONS = socket.htons


def dest_full(dest):
    """IPVS_CMD_ATTR_DEST with every setting of ``dest`` (a desired destination record):
    the bytes :func:`dest_full_generic` makes, packed in one call."""
    address, forward = dest["address"], dest["forward"]
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    if forward != "tunnel":
        return _DEST_PLAIN.pack(
            _DEST_PLAIN.size, _DEST_KIND, 20, _A["addr"], _addr16(address), 6, _A["port"], _HTONS(dest["port"]),
            8, _A["fwd_method"], FORWARD[forward], 8, _A["weight"], dest["weight"], 8, _A["u_thresh"],
            dest.get("u_threshold", 0), 8, _A["l_thresh"], dest.get("l_threshold", 0), 6, _A["addr_family"], family)
    flags = dest.get("tun_flags")
    return _DEST_TUNNEL.pack(
        _DEST_TUNNEL.size, _DEST_KIND, 20, _A["addr"], _addr16(address), 6, _A["port"], _HTONS(dest["port"]),
        8, _A["fwd_method"], 2, 8, _A["weight"], dest["weight"], 8, _A["u_thresh"], dest.get("u_threshold", 0),
        8, _A["l_thresh"], dest.get("l_threshold", 0), 6, _A["addr_family"], family,
        5, _A["tun_type"], TUN_TYPES[dest.get("tun_type", "ipip")], 6, _A["tun_port"], _HTONS(dest.get("tun_port", 0)),
        6, _A["tun_flags"], sum(TUN_FLAGS[f] for f in flags) if flags else 0)


def dest_full_generic(dest):
    """:func:`dest_full` attribute by attribute (the reference its packed form is tested
    against)."""
    values = {"addr": dest["address"], "port": dest["port"], "fwd_method": FORWARD[dest["forward"]],
              "weight": dest["weight"], "u_thresh": dest.get("u_threshold", 0),
              "l_thresh": dest.get("l_threshold", 0),
              "addr_family": socket.AF_INET6 if ":" in dest["address"] else socket.AF_INET}
    if dest["forward"] == "tunnel":
        values.update(tun_type=TUN_TYPES[dest.get("tun_type", "ipip")], tun_port=int(dest.get("tun_port", 0)),
                      tun_flags=sum(TUN_FLAGS[f] for f in dest.get("tun_flags", ())))
    return nla(ATTR["cmd"]["dest"] | NLA_F_NESTED, nested("dest", values))


def daemon(state, interface=None, sync_id=None, group=None):
    """IPVS_CMD_ATTR_DAEMON for the ``state`` (master, backup) daemon: all three to
    start one, the state alone to stop it; ``group``: its multicast group (an IPv6 one
    for a LAN without IPv4; default: the kernel's, 224.0.0.81)."""
    values = {"state": DAEMON_STATES[state], "mcast_ifn": interface, "sync_id": sync_id}
    if group is not None:
        key = "mcast_group6" if ":" in group else "mcast_group"
        values[key] = socket.inet_pton(socket.AF_INET6 if ":" in group else socket.AF_INET, group)
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
    return _dest_from(_read_attr, dest, dest.get(_D["stats64"]), service_af, stats)


def _dest_from(read, dest, stats64, service_af, stats):
    """The record from a reply's attributes, ``read(attrs, name, kind)`` giving each
    value (``dest_record``: the attributes themselves; :class:`_DestLayout`: numbers
    already unpacked)."""
    version = AF_VERSION.get(read(dest, "addr_family", "u16"), service_af)
    forward = FORWARD_NAMES[read(dest, "fwd_method", "u32") & 0x7]
    record = {
        "address": _addr(dest[_D["addr"]], version),
        "port": read(dest, "port", "be16"),
        "forward": forward,
        "weight": read(dest, "weight", "u32"),
        "u_threshold": read(dest, "u_thresh", "u32"),
        "l_threshold": read(dest, "l_thresh", "u32"),
        "active": read(dest, "active_conns", "u32"),
        "inactive": read(dest, "inact_conns", "u32"),
        "persistent_conns": read(dest, "persist_conns", "u32"),
        "stats": (_stats(stats64) if isinstance(stats64, memoryview) else dict(stats64 or {})) if stats else {},
    }
    if forward == "tunnel":
        tun_type = dest.get(_D["tun_type"])
        record["tun_type"] = TUN_TYPE_NAMES.get(tun_type[0] if tun_type is not None else 0, "ipip")
        record["tun_port"] = read(dest, "tun_port", "be16")
        tun_flags = read(dest, "tun_flags", "u16")
        record["tun_flags"] = tun_flag_names(tun_flags)
    return record


_READERS = {"u32": u32, "u16": lambda a, k: _u16(a, k), "be16": lambda a, k: _be16(a, k)}


def _read_attr(attrs, name, kind):
    return _READERS[kind](attrs, _D[name])


# The counters of a destination (:func:`dest_counters`): a tuple of these, in this order.
COUNTERS = ("address", "port", "forward", "weight", "active", "inactive", *STATS_NAMES)


def counters(record):
    """The :data:`COUNTERS` tuple of an ``ipvs.list`` destination record."""
    stats = record.get("stats") or {}
    return (record["address"], record["port"], record["forward"], record["weight"], record["active"],
            record["inactive"], *(stats.get(name, 0) for name in STATS_NAMES))


_VALUE_FORMATS = {"u32": "I", "u16": "H", "be16": "H", "u8": "B", "u64": "Q"}  # struct formats of value kinds
_FIELDS = tuple(name for name, _ in DEST_ATTRS if name not in ("addr", "stats", "stats64")) + STATS_NAMES
_COUNTER_FIELDS = ("weight", "active_conns", "inact_conns", *STATS_NAMES)  # COUNTERS after address, port, forward
_BIG_ENDIAN = tuple(name for name, kind in DEST_ATTRS if kind == "be16")


def _headers(data, offset, end):
    """``(offset, length, type)`` of each attribute header in ``data[offset:end]``."""
    while offset + 4 <= end:
        length, kind = NLA_HEADER.unpack_from(data, offset)
        if length < 4:
            return
        yield offset, length, kind
        offset += (length + 3) & ~3


def _layout_struct(pieces):
    """One ``struct.Struct`` reading ``[(offset, format)]`` (in offset order) from a reply."""
    fmt, position = "=", 0
    for offset, piece in pieces:
        fmt += f"{offset - position}x{piece}" if offset > position else piece
        position = offset + struct.calcsize("=" + piece)
    return struct.Struct(fmt)


def _dest_attributes(payload, dest_span, headers, values):
    """Add the headers and the values (``(offset, struct format, field)``) of the
    destination attributes in ``dest_span`` of ``payload`` to ``headers`` and ``values``;
    whether the destination has 64-bit counters."""
    kinds = dict(DEST_ATTRS)
    names = {number: name for name, number in _D.items()}
    stats64 = False
    for offset, length, kind in _headers(payload, *dest_span):
        headers.append((offset, (length, kind)))
        name = names.get(kind & NLA_TYPE_MASK)
        if name == "stats64":
            stats64 = True
            for inner, ilength, ikind in _headers(payload, offset + 4, offset + length):
                headers.append((inner, (ilength, ikind)))
                index = (ikind & NLA_TYPE_MASK) - 1
                if 0 <= index < len(STATS_NAMES) and ilength >= 12:
                    values.append((inner + 4, "Q", STATS_NAMES[index]))
        elif name == "addr":
            values.append((offset + 4, f"{length - 4}s", name))
        elif kinds.get(name) in _VALUE_FORMATS and length - 4 >= struct.calcsize(_VALUE_FORMATS[kinds[name]]):
            values.append((offset + 4, _VALUE_FORMATS[kinds[name]], name))
    return stats64


class _DestLayout:
    """Where the kernel put the attributes of one GET_DEST reply, to read the other
    replies of the same dump in a few ``struct`` calls instead of a walk each.

    A reply is read this way only when it has the same length and every attribute
    header (the reply's, the destination's, its 64-bit counters') is where the first
    reply had it, with the same length and type (:meth:`match`): then a walk would find
    every value where the first reply had it. Any other reply goes through
    :func:`dest_record`.
    """

    def __init__(self, payload):
        self.length = len(payload)
        headers, values = [], []  # [(offset, (len, type))], [(offset, struct format, field)]
        start = NLMSG_HEADER.size + GENL_HEADER.size
        dest_span = None
        for offset, length, kind in _headers(payload, start, len(payload)):
            headers.append((offset, (length, kind)))
            if kind & NLA_TYPE_MASK == ATTR["cmd"]["dest"]:
                dest_span = (offset + 4, offset + length)
        if dest_span is None:
            raise ValueError("no destination in this reply")
        self.stats64 = _dest_attributes(payload, dest_span, headers, values)
        if not any(field == "addr" for _, _, field in values):
            raise ValueError("no address in this reply")
        # One struct reads every header and value, in offset order: a reply fits when
        # the headers it reads are those of the first reply (:meth:`match`).
        items = sorted([(offset, "HH", None) for offset, _ in headers] + values, key=lambda item: item[0])
        self.struct = _layout_struct([(offset, piece) for offset, piece, _ in items])
        slots, index, at = [], {}, 0
        for *_, field in items:
            if field is None:
                slots += [at, at + 1]
            else:
                index[field] = at
            at += 2 if field is None else 1
        self.headers = operator.itemgetter(*slots)
        self.expected = self.headers(self.struct.unpack_from(payload))
        # A field the reply lacks reads a 0 added at the end of the values (``padded``).
        self.index = {field: index.get(field, at) for field in ("addr", *_FIELDS)}
        self.padded = any(i == at for i in self.index.values())
        self.fields = operator.itemgetter(*(self.index[name] for name in (
            "addr", "addr_family", "port", "fwd_method", "weight", "u_thresh", "l_thresh", "active_conns",
            "inact_conns", "persist_conns", "tun_type", "tun_port", "tun_flags")))
        self.counter_values = operator.itemgetter(*(self.index[name] for name in (
            "addr", "addr_family", "port", "fwd_method", *_COUNTER_FIELDS)))
        self.has_tun_type = self.index["tun_type"] < at
        stats_at = [self.index[name] for name in STATS_NAMES]
        self.stats = lambda got: dict(zip(STATS_NAMES, (got[i] for i in stats_at), strict=True))

    def match(self, payload):
        """The values of ``payload`` when it has this layout, else None."""
        if len(payload) != self.length:
            return None
        got = self.struct.unpack_from(payload)
        if self.headers(got) != self.expected:
            return None
        return (*got, 0) if self.padded else got

    def read(self, got, service_af, stats):
        """The record of a reply from its values (:meth:`match`): what
        :func:`dest_record` makes of it, built at once (a table's read makes thousands)."""
        (addr, family, port, fwd_method, weight, u_thresh, l_thresh, active, inactive, persist, tun_type,
         tun_port, tun_flags) = self.fields(got)
        forward = FORWARD_NAMES[fwd_method & 0x7]
        record = {"address": _address_text(addr, AF_VERSION.get(family, service_af)), "port": _swap16(port),
                  "forward": forward, "weight": weight, "u_threshold": u_thresh, "l_threshold": l_thresh,
                  "active": active, "inactive": inactive, "persistent_conns": persist,
                  "stats": self.stats(got) if stats and self.stats64 else {}}
        if forward == "tunnel":
            record["tun_type"] = TUN_TYPE_NAMES.get(tun_type, "ipip") if self.has_tun_type else "ipip"
            record["tun_port"] = _swap16(tun_port)
            record["tun_flags"] = tun_flag_names(tun_flags) if tun_flags else []
        return record

    def settings(self, got, service_af):
        """``((address, port), settings, busy)`` of a reply from its values (:meth:`match`):
        :func:`settings` of its record, without the record."""
        (addr, family, port, fwd_method, weight, u_thresh, l_thresh, active, inactive, _, tun_type,
         tun_port, tun_flags) = self.fields(got)
        key = (_address_text(addr, AF_VERSION.get(family, service_af)), _swap16(port))
        forward = FORWARD_NAMES[fwd_method & 0x7]
        if forward == "tunnel":
            values = (forward, weight, u_thresh, l_thresh,
                      TUN_TYPE_NAMES.get(tun_type, "ipip") if self.has_tun_type else "ipip", _swap16(tun_port),
                      tun_flag_names(tun_flags) if tun_flags else [])
        else:
            values = (forward, weight, u_thresh, l_thresh)
        return key, values, bool(active or inactive)

    def counters_of(self, payloads, service_af):
        """:meth:`counters` of each reply of ``payloads`` this layout fits, in one loop (a
        scrape reads ten thousand), None for a reply it does not fit."""
        length, unpack, headers, expected = self.length, self.struct.unpack_from, self.headers, self.expected
        values, padded, addresses, little = self.counter_values, self.padded, _ADDRESSES, sys.byteorder == "little"
        out = []
        for payload in payloads:
            got = unpack(payload) if len(payload) == length else None
            if got is None or headers(got) != expected:
                out.append(None)
                continue
            got = values((*got, 0) if padded else got)
            key = (got[0], AF_VERSION.get(got[1], service_af))
            port = got[2]
            port = ((port & 0xFF) << 8) | (port >> 8) if little else port
            out.append((addresses.get(key) or _address_text(*key), port, FORWARD_NAMES[got[3] & 0x7], *got[4:]))
        return out


_ADDRESSES = {}  # (the 16 bytes of a reply's address, IP version) -> its text: a scrape reads the same ones
MAX_ADDRESSES = 1 << 16


def _address_text(raw, version):
    key = (raw, version)
    address = _ADDRESSES.get(key)
    if address is None:
        if len(_ADDRESSES) >= MAX_ADDRESSES:
            _ADDRESSES.clear()
        address = _ADDRESSES[key] = _addr(*key)
    return address


def _swap16(value):
    """A big-endian 16-bit value read as a native one, as the number it is."""
    return ((value & 0xFF) << 8) | (value >> 8) if sys.byteorder == "little" else value


_LAYOUTS = []  # the layouts learnt so far (a few: a kernel writes its replies alike)
MAX_LAYOUTS = 8


def _layout(payload):
    """``(layout, values)``: the learnt layout ``payload`` fits (learnt now when there is
    room) and the values it read; (None, None) when none does."""
    for layout in _LAYOUTS:
        got = layout.match(payload)
        if got is not None:
            return layout, got
    if len(_LAYOUTS) < MAX_LAYOUTS:
        try:
            layout = _DestLayout(payload)
        except (ValueError, struct.error):
            return None, None
        _LAYOUTS.append(layout)
        return layout, layout.match(payload)
    return None, None


def dest_records(payloads, service_af=4, stats=True):
    """:func:`dest_record` of every reply of a GET_DEST dump. The kernel writes such
    replies alike: a reply's layout is learnt once (:class:`_DestLayout`, a few at most,
    kept for later dumps) and every reply that shares it is read with it, three times
    faster on a UML kernel; any other reply is walked as :func:`dest_record` does."""
    out = []
    for payload in payloads:
        layout, got = _layout(payload)
        out.append(layout.read(got, service_af, stats) if layout else dest_record(payload, service_af, stats))
    return out


def settings(record):
    """A destination record's settings as a tuple, the form plans compare
    (``lvstun.ipvs.dest_values``): forward, weight, thresholds, and for a tunnel its
    type, port and flags."""
    if record["forward"] == "tunnel":
        return (record["forward"], record.get("weight"), record.get("u_threshold"), record.get("l_threshold"),
                record.get("tun_type"), record.get("tun_port"), record.get("tun_flags"))
    return record["forward"], record.get("weight"), record.get("u_threshold"), record.get("l_threshold")


def dest_settings(payloads, service_af=4):
    """``[((address, port), settings, busy)]`` of the replies of a GET_DEST dump: what a
    plan compares (:func:`settings`) and whether the destination holds connections,
    read by the learnt layouts without building records (see :func:`dest_records`)."""
    out = []
    for payload in payloads:
        layout, got = _layout(payload)
        if layout:
            out.append(layout.settings(got, service_af))
        else:
            record = dest_record(payload, service_af, False)
            out.append(((record["address"], record["port"]), settings(record),
                        bool(record["active"] or record["inactive"])))
    return out


# A destination's settings as a kernel since 5.3 writes them at the head of a GET_DEST
# reply's IPVS_CMD_ATTR_DEST (``ip_vs_genl_fill_dest``): addr, port, fwd_method, weight,
# tun_type, tun_port, tun_flags, u_thresh, l_thresh, each attribute header then its value
# padded with zeros; then active, inactive and persistent connections (which change), and
# addr_family. :func:`replies_hold` compares these bytes, not decoded values.
_SETTINGS_AT = NLMSG_HEADER.size + GENL_HEADER.size + NLA_HEADER.size
_SETTINGS = struct.Struct("=HH16s" "HHH2x" "HHI" "HHI" "HHB3x" "HHH2x" "HHH2x" "HHI" "HHI")
_FAMILY_AT = _SETTINGS_AT + _SETTINGS.size + 3 * 8
_FAMILY = struct.Struct("=HHH2x")
_REPLY_SETTINGS = operator.itemgetter(slice(_SETTINGS_AT, _FAMILY_AT - 3 * 8),
                                      slice(_FAMILY_AT, _FAMILY_AT + _FAMILY.size))
_FAMILY_BYTES = {family: _FAMILY.pack(6, _D["addr_family"], family) for family in AF.values()}


_REPLY_MEMO = {}  # (key, values without tunnel flags) -> _reply_settings: services share their backends
_REPLY_MEMO_MAX = 1 << 16


def _reply_settings(key, values):
    """The bytes of :data:`_REPLY_SETTINGS` in a GET_DEST reply for the destination ``key``
    (address, port) with ``values`` (as ``lvstun.ipvs.dest_values`` makes them), made
    once per process for a destination without tunnel flags (a site's services name the
    same backends)."""
    if len(values) < 7 or not values[6]:
        memo = (key, values[:6])
        found = _REPLY_MEMO.get(memo)
        if found is None:
            if len(_REPLY_MEMO) >= _REPLY_MEMO_MAX:
                _REPLY_MEMO.clear()
            found = _REPLY_MEMO[memo] = _packed_settings(key, values)
        return found
    return _packed_settings(key, values)


def _packed_settings(key, values):
    """:func:`_reply_settings`, packed: each attribute header as a literal (length,
    number in ``DEST_ATTRS``; ``tests/unit/test_genl.py`` builds the same replies
    attribute by attribute)."""
    (address, port), forward = key, values[0]
    if forward == "tunnel":
        flags = values[6]
        tunnel = (TUN_TYPES[values[4]], _HTONS(values[5]), sum(TUN_FLAGS[f] for f in flags) if flags else 0)
    else:
        tunnel = _NO_TUNNEL
    return (_SETTINGS.pack(20, 1, _addr16(address), 6, 2, _HTONS(port), 8, 3, FORWARD[forward], 8, 4, values[1],
                           5, 13, tunnel[0], 6, 14, tunnel[1], 6, 15, tunnel[2], 8, 5, values[2], 8, 6, values[3]),
            _FAMILY_BYTES[_AF_INET6 if ":" in address else _AF_INET])


_NO_TUNNEL = (0, 0, 0)
_AF_INET, _AF_INET6 = socket.AF_INET, socket.AF_INET6


def replies_hold(payloads, settings):
    """Whether the replies (bytes) of a GET_DEST dump are exactly the destinations ``settings``
    (``{(address, port): values}``, as ``lvstun.ipvs.dest_values`` makes them): their
    settings compared as the bytes the kernel wrote, no reply decoded (a no-change
    re-apply of a large table reads thousands). False tells nothing: a kernel that
    writes its attributes otherwise, or any difference; decode the replies then
    (:func:`dest_settings`)."""
    if len(payloads) != len(settings):
        return False
    try:
        expected = {_reply_settings(key, values) for key, values in settings.items()}
    except (struct.error, KeyError, TypeError):  # values no kernel can hold: they differ
        return False
    return set(map(_REPLY_SETTINGS, payloads)) == expected


class ServiceHeads:
    """The head of a GET_SERVICE reply (its service's attributes up to the counters) as
    a kernel writes it for each service of a wanted table (``lvstun.ipvs.wanted``), to
    know a reply that holds a wanted service as wanted without decoding it (a table's
    re-apply reads a thousand); any other reply is decoded (:func:`service_record`)."""

    def __init__(self, wanted):
        self.heads, lengths, tails = {}, set(), {}
        for spec, entry in wanted.items():
            if len(entry) < 3:  # no service record (``lvstun.ipvs.as_wanted``)
                continue
            svc = entry[2]
            shape = (svc["af"], svc["scheduler"], tuple(svc["flags"]), svc["persistent"], svc["netmask"])
            try:
                key = service_key(svc)
                tail = tails.get(shape)
                if tail is None:
                    tail = tails[shape] = nested("service", _settings_values(svc, SVC_F_HASHED))
            except (KeyError, OSError, ValueError, TypeError, struct.error):  # no kernel holds it
                continue
            head = key[NLA_HEADER.size:] + tail
            self.heads[head] = (spec, entry[0], svc["af"], key)
            lengths.add(len(head))
        self.spans = [slice(_SETTINGS_AT, _SETTINGS_AT + length) for length in sorted(lengths)]

    def match(self, payload):
        """``(spec, service values, IP version, key attribute)`` of the wanted service
        whose settings ``payload`` (a reply's bytes) holds, or None."""
        return _by_head(self.heads, self.spans, payload)


def _by_head(table, spans, payload):
    """What ``table`` holds for the head of ``payload``, tried at each of ``spans``, or None."""
    for span in spans:
        hit = table.get(payload[span])
        if hit is not None:
            return hit
    return None


class KnownServices:
    """Service records (without counters) and their key attributes, by the head of
    their GET_SERVICE replies (every attribute before the counters), learnt as replies
    are decoded: a scrape reads the same services every time, and decodes a reply only
    when its head is new (a service added or changed)."""

    MAX = 1 << 16  # heads kept at most (then forgotten all at once)
    SPANS = 8  # lengths of heads tried at most (a scheduler's name makes one)

    def __init__(self):
        self.known, self.spans = {}, []

    def get(self, payload):
        """``(service record, key attribute)`` of a reply (bytes), decoded when unknown
        (the record is shared by every read that finds it: not to be changed)."""
        hit = _by_head(self.known, self.spans, payload)
        if hit is not None:
            return hit
        svc = service_record(payload, False)
        hit = (svc, service_key(svc))
        end = _counters_at(payload)
        if end is not None:
            span = next((span for span in self.spans if span.stop == end), None)
            if span is None and len(self.spans) < self.SPANS:
                span = slice(_SETTINGS_AT, end)
                self.spans.append(span)
            if span is not None:
                if len(self.known) >= self.MAX:
                    self.known.clear()
                self.known[payload[span]] = hit
        return hit


def _counters_at(payload):
    """Where the counters of a GET_SERVICE reply begin (its service's first counters
    attribute), or None when its service attribute is not the first or has none."""
    at = NLMSG_HEADER.size + GENL_HEADER.size
    if len(payload) < _SETTINGS_AT or NLA_HEADER.unpack_from(payload, at)[1] & NLA_TYPE_MASK != ATTR["cmd"]["service"]:
        return None
    for offset, _, kind in _headers(payload, _SETTINGS_AT, len(payload)):
        if kind & NLA_TYPE_MASK in (_S["stats"], _S["stats64"]):
            return offset
    return None


def dest_counters(payloads, service_af=4):
    """The :data:`COUNTERS` tuples of the replies of a GET_DEST dump, in the kernel's
    order (what a scrape reads: no record built, see :func:`dest_records`)."""
    layout = _layout(payloads[0])[0] if payloads else None
    if layout is None:
        return [_counters_of(payload, service_af) for payload in payloads]
    out = layout.counters_of(payloads, service_af)  # the replies of a dump are alike, mostly
    if None in out:
        out = [row if row is not None else _counters_of(payload, service_af) for row, payload in
               zip(out, payloads, strict=True)]
    return out


def _counters_of(payload, service_af):
    layout, _ = _layout(payload)
    return layout.counters_of([payload], service_af)[0] if layout else counters(dest_record(payload, service_af,
                                                                                             True))


def daemon_record(payload):
    """``{"state", "interface", "sync_id", "group"}`` of a GET_DAEMON reply (``group``:
    its multicast group, None from a kernel that does not say, before 4.3)."""
    attrs = attributes(top(payload)[ATTR["cmd"]["daemon"]])
    numbers = ATTR["daemon"]
    states = {number: name for name, number in DAEMON_STATES.items()}
    ifn = attrs.get(numbers["mcast_ifn"])
    group = None
    for key, family in (("mcast_group6", socket.AF_INET6), ("mcast_group", socket.AF_INET)):
        if numbers[key] in attrs:
            group = socket.inet_ntop(family, bytes(attrs[numbers[key]]))
            break
    return {"state": states.get(u32(attrs, numbers["state"]), "unknown"),
            "interface": bytes(ifn).split(b"\0", 1)[0].decode() if ifn is not None else None,
            "sync_id": u32(attrs, numbers["sync_id"]), "group": group}
