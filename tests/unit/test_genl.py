"""The IPVS message layouts and their codec (``lvstun.genl``), checked against pyroute2:
its declarations of ``include/uapi/linux/ip_vs.h``, its encoder (our decoder must read
back the values it encoded) and its decoder (it must read back what we encoded)."""

import socket
import struct

import pytest
from pyroute2.netlink.generic import ipvs as nl

import lvstun.genl as genl

# Where our layout says more than pyroute2's: the kernel reads TUN_PORT as __be16
# (pyroute2 declares a host-order uint16), NETMASK as 4 raw bytes (an IPv4 mask, or an
# IPv6 prefix length as a host-order u32; pyroute2 declares an IPv4 address) and the
# timeouts as u32 (pyroute2: raw "hex" bytes).
TYPES = {"u8": "uint8", "u16": "uint16", "u32": "uint32", "be16": "be16", "string": "asciiz", "flags": "flags"}
KNOWN_DIFFERENCES = {("dest", "tun_port"): ("be16", "uint16"), ("service", "netmask"): ("raw", "ip4addr"),
                     **{("cmd", name): ("u32", "hex") for name in ("timeout_tcp", "timeout_tcp_fin", "timeout_udp")}}


def _pyroute2_map(layout):
    return {"cmd": nl.ipvsmsg.nla_map, "service": nl.ipvsmsg.service.nla_map,
            "dest": nl.ipvsmsg.dest.nla_map}[layout]


@pytest.mark.parametrize("layout", ["cmd", "service", "dest"])
def test_the_layouts_are_the_kernel_uapi_ones_as_pyroute2_declares_them(layout):
    prefix = {"cmd": "IPVS_CMD_ATTR_", "service": "IPVS_SVC_ATTR_", "dest": "IPVS_DEST_ATTR_"}[layout]
    theirs = _pyroute2_map(layout)[1:]  # [0] is UNSPEC
    ours = genl.LAYOUTS[layout]
    assert [prefix + name.upper() for name, _ in ours] == [name for name, _ in theirs]
    for (name, kind), (_, their_kind) in zip(ours, theirs, strict=True):
        if (layout, name) in KNOWN_DIFFERENCES:
            assert (kind, their_kind) == KNOWN_DIFFERENCES[(layout, name)]
        elif kind in TYPES:
            assert TYPES[kind] == their_kind, name
        elif kind == "addr":
            assert their_kind.startswith("target("), name
        else:
            assert kind in ("nested", "u32") and their_kind in ("service", "dest", "hex", "stats", "stats64"), name


def test_the_commands_are_the_kernel_uapi_ones():
    for name, number in genl.CMD.items():
        assert getattr(nl, f"IPVS_CMD_{name.upper()}") == number
    assert genl.GENL_VERSION == nl.GENL_VERSION


def _encoded(cmd, attrs):
    msg = nl.ipvsmsg()
    msg["cmd"] = cmd
    msg["version"] = 1
    msg["attrs"] = attrs
    msg["header"]["type"] = 0x20
    msg.encode()
    return msg.data


def _decoded(data):
    msg = nl.ipvsmsg(data)
    msg.decode()
    return msg


STATS = {name: 1000 + i for i, name in enumerate(genl.STATS_NAMES)}


def _stats64():
    return {"attrs": [(f"IPVS_STATS_ATTR_{name.upper()}", 1000 + i) for i, name in enumerate(genl.STATS_NAMES)]}


SERVICES = [
    ({"af": 4, "protocol": "tcp", "address": "10.10.24.88", "port": 80, "fwmark": None}, "rr", [], 0, None),
    ({"af": 4, "protocol": "udp", "address": "10.10.24.89", "port": 53, "fwmark": None}, "sh", ["sched2"], 300,
     "255.255.255.0"),
    ({"af": 6, "protocol": "tcp", "address": "2001:db8::88", "port": 443, "fwmark": None}, "wlc", [], 0, 64),
    ({"af": 4, "protocol": None, "address": None, "port": None, "fwmark": 5}, "mh", ["sched1"], 0, None),
]
# IP_VS_TUNNEL_ENCAP_FLAG_* of include/uapi/linux/ip_vs.h (NOCSUM is 0: no bit).
KERNEL_TUN_FLAGS = {"csum": 1 << 0, "remcsum": 1 << 1}


def _kernel_tun_flags(dest):
    return sum(KERNEL_TUN_FLAGS[f] for f in dest.get("tun_flags", ()) if f != "nocsum")


DESTS = [
    {"address": "10.10.24.21", "port": 80, "forward": "tunnel", "weight": 3, "tun_type": "ipip"},
    {"address": "10.10.24.22", "port": 8080, "forward": "tunnel", "weight": 0, "u_threshold": 100,
     "l_threshold": 10, "tun_type": "gue", "tun_port": 6080, "tun_flags": ["csum"]},
    {"address": "10.10.24.24", "port": 80, "forward": "tunnel", "weight": 1, "tun_type": "gre",
     "tun_flags": ["remcsum"]},
    {"address": "10.10.24.23", "port": 80, "forward": "route", "weight": 65535},
    {"address": "2001:db8::21", "port": 443, "forward": "masq", "weight": 1},
]


@pytest.mark.parametrize(("key", "scheduler", "flags", "persistent", "netmask"), SERVICES)
def test_a_service_we_encode_reads_back_in_pyroute2_and_in_our_decoder(key, scheduler, flags, persistent,
                                                                       netmask):
    svc = {**key, "scheduler": scheduler, "flags": flags, "persistent": persistent, "netmask": netmask}
    data = genl.request(0x20, genl.CMD["new_service"], genl.service_full(svc), 1, 7)
    theirs = _decoded(data).get_attr("IPVS_CMD_ATTR_SERVICE")
    assert theirs.get_attr("IPVS_SVC_ATTR_AF") == genl.AF[key["af"]]
    assert theirs.get_attr("IPVS_SVC_ATTR_SCHED_NAME") == scheduler
    assert theirs.get_attr("IPVS_SVC_ATTR_TIMEOUT") == persistent
    assert theirs.get_attr("IPVS_SVC_ATTR_FLAGS")["mask"] == 0xFFFFFFFF
    if key["fwmark"]:
        assert theirs.get_attr("IPVS_SVC_ATTR_FWMARK") == key["fwmark"]
    else:
        assert theirs.get_attr("IPVS_SVC_ATTR_ADDR") == key["address"]
        assert theirs.get_attr("IPVS_SVC_ATTR_PORT") == key["port"]
    expected = {**key, "scheduler": scheduler, "flags": flags, "persistent": persistent,
                "netmask": netmask or ("255.255.255.255" if key["af"] == 4 else 128), "stats": {}}
    assert genl.service_record(data) == expected


@pytest.mark.parametrize(("key", "scheduler", "flags", "persistent", "netmask"), SERVICES)
def test_a_service_reply_pyroute2_encodes_decodes_to_the_values_sent(key, scheduler, flags, persistent, netmask):
    flag_bits = sum({"sched1": 0x8, "sched2": 0x10}[f] for f in flags) | (1 if persistent else 0)
    attrs = [("IPVS_SVC_ATTR_AF", genl.AF[key["af"]])]
    if key["fwmark"]:
        attrs.append(("IPVS_SVC_ATTR_FWMARK", key["fwmark"]))
    else:
        attrs += [("IPVS_SVC_ATTR_PROTOCOL", {"tcp": 6, "udp": 17}[key["protocol"]]),
                  ("IPVS_SVC_ATTR_ADDR", key["address"]), ("IPVS_SVC_ATTR_PORT", key["port"])]
    mask = (netmask or "255.255.255.255") if key["af"] == 4 else socket.inet_ntoa(
        struct.pack("=I", netmask or 128))
    attrs += [("IPVS_SVC_ATTR_SCHED_NAME", scheduler), ("IPVS_SVC_ATTR_FLAGS", {"flags": flag_bits, "mask": 0}),
              ("IPVS_SVC_ATTR_TIMEOUT", persistent), ("IPVS_SVC_ATTR_NETMASK", mask),
              ("IPVS_SVC_ATTR_STATS64", _stats64())]
    data = _encoded(nl.IPVS_CMD_NEW_SERVICE, [("IPVS_CMD_ATTR_SERVICE", {"attrs": attrs})])
    expected = {**key, "scheduler": scheduler, "flags": flags, "persistent": persistent,
                "netmask": netmask or ("255.255.255.255" if key["af"] == 4 else 128), "stats": STATS}
    assert genl.service_record(data) == expected


@pytest.mark.parametrize("dest", DESTS)
def test_a_dest_we_encode_reads_back_in_pyroute2_and_in_our_decoder(dest):
    key = {"af": 6 if ":" in dest["address"] else 4, "protocol": "tcp",
           "address": "2001:db8::88" if ":" in dest["address"] else "10.10.24.88", "port": 80, "fwmark": None}
    data = genl.request(0x20, genl.CMD["new_dest"], genl.service_key(key) + genl.dest_full(dest), 1, 7)
    theirs = _decoded(data).get_attr("IPVS_CMD_ATTR_DEST")
    assert theirs.get_attr("IPVS_DEST_ATTR_ADDR") == dest["address"]
    assert theirs.get_attr("IPVS_DEST_ATTR_PORT") == dest["port"]
    assert theirs.get_attr("IPVS_DEST_ATTR_WEIGHT") == dest["weight"]
    assert theirs.get_attr("IPVS_DEST_ATTR_U_THRESH") == dest.get("u_threshold", 0)
    if dest["forward"] == "tunnel":  # pyroute2 reads TUN_PORT host-order: swap it back
        assert socket.ntohs(theirs.get_attr("IPVS_DEST_ATTR_TUN_PORT")) == dest.get("tun_port", 0)
    expected = {"u_threshold": 0, "l_threshold": 0, **dest, "active": 0, "inactive": 0, "persistent_conns": 0,
                "stats": {}}
    if dest["forward"] == "tunnel":
        expected.setdefault("tun_port", 0)
        expected.setdefault("tun_flags", [])
    assert genl.dest_record(data, key["af"]) == expected


@pytest.mark.parametrize("dest", DESTS)
def test_a_dest_reply_pyroute2_encodes_decodes_to_the_values_sent(dest):
    attrs = [("IPVS_DEST_ATTR_ADDR", dest["address"]), ("IPVS_DEST_ATTR_PORT", dest["port"]),
             ("IPVS_DEST_ATTR_ADDR_FAMILY", socket.AF_INET6 if ":" in dest["address"] else socket.AF_INET),
             ("IPVS_DEST_ATTR_FWD_METHOD", {"masq": 0, "tunnel": 2, "route": 3}[dest["forward"]]),
             ("IPVS_DEST_ATTR_WEIGHT", dest["weight"]), ("IPVS_DEST_ATTR_U_THRESH", dest.get("u_threshold", 0)),
             ("IPVS_DEST_ATTR_L_THRESH", dest.get("l_threshold", 0)), ("IPVS_DEST_ATTR_ACTIVE_CONNS", 7),
             ("IPVS_DEST_ATTR_INACT_CONNS", 9), ("IPVS_DEST_ATTR_PERSIST_CONNS", 2),
             ("IPVS_DEST_ATTR_STATS64", _stats64())]
    if dest["forward"] == "tunnel":
        attrs += [("IPVS_DEST_ATTR_TUN_TYPE", {"ipip": 0, "gue": 1, "gre": 2}[dest["tun_type"]]),
                  ("IPVS_DEST_ATTR_TUN_PORT", socket.htons(dest.get("tun_port", 0))),
                  ("IPVS_DEST_ATTR_TUN_FLAGS", _kernel_tun_flags(dest))]
    data = _encoded(nl.IPVS_CMD_NEW_DEST, [("IPVS_CMD_ATTR_DEST", {"attrs": attrs})])
    expected = {"u_threshold": 0, "l_threshold": 0, **dest, "active": 7, "inactive": 9, "persistent_conns": 2,
                "stats": STATS}
    if dest["forward"] == "tunnel":
        expected.setdefault("tun_port", 0)
        expected.setdefault("tun_flags", [])
    assert genl.dest_record(data, 6 if ":" in dest["address"] else 4) == expected


def test_keys_and_timeouts_encode_as_pyroute2_reads_them():
    for key in ({"af": 4, "protocol": "tcp", "address": "10.10.24.88", "port": 80, "fwmark": None},
                {"af": 6, "protocol": "sctp", "address": "2001:db8::1", "port": 9, "fwmark": None},
                {"af": 4, "protocol": None, "address": None, "port": None, "fwmark": 77}):
        data = genl.request(0x20, genl.CMD["del_dest"],
                            genl.service_key(key) + genl.dest_key({"address": "10.0.0.1", "port": 8}), 1, 1)
        svc = _decoded(data).get_attr("IPVS_CMD_ATTR_SERVICE")
        assert svc.get_attr("IPVS_SVC_ATTR_AF") == genl.AF[key["af"]]
        if key["fwmark"]:
            assert svc.get_attr("IPVS_SVC_ATTR_FWMARK") == 77
        else:
            assert (svc.get_attr("IPVS_SVC_ATTR_ADDR"), svc.get_attr("IPVS_SVC_ATTR_PORT"),
                    svc.get_attr("IPVS_SVC_ATTR_PROTOCOL")) == (key["address"], key["port"],
                                                                {"tcp": 6, "sctp": 132}[key["protocol"]])
        dest = _decoded(data).get_attr("IPVS_CMD_ATTR_DEST")
        assert (dest.get_attr("IPVS_DEST_ATTR_PORT"), dest.get_attr("IPVS_DEST_ATTR_WEIGHT")) == (8, None)
    data = genl.request(0x20, genl.CMD["set_config"], genl.timeouts(900, 0, 300), 1, 1)
    top = genl.top(data)
    assert [genl.u32(top, genl.ATTR["cmd"][name]) for name in ("timeout_tcp", "timeout_tcp_fin",
                                                                 "timeout_udp")] == [900, 0, 300]


@pytest.mark.parametrize("state, interface, sync_id, group", [("master", "eth0", 1, None),
                                                              ("backup", "enp3s0f1", 255, "ff02::4c56"),
                                                              ("master", "eth0", 7, "239.1.2.3")])
def test_a_sync_daemon_we_encode_reads_back_in_our_decoder(state, interface, sync_id, group):
    reply = genl.request(0x20, genl.CMD["get_daemon"], genl.daemon(state, interface, sync_id, group), 0, 1)
    assert genl.daemon_record(reply) == {"state": state, "interface": interface, "sync_id": sync_id, "group": group}
    # Stopping one names only its state (the kernel's DEL_DAEMON reads nothing else).
    inner = genl.attributes(genl.top(genl.request(0x20, genl.CMD["del_daemon"], genl.daemon(state), 0, 1))[3])
    assert set(inner) == {genl.ATTR["daemon"]["state"]}


def _dest_reply(dest, active=7, base=1000, order=None):
    """A GET_DEST reply for ``dest`` as pyroute2 encodes it (attributes in ``order``)."""
    attrs = [("IPVS_DEST_ATTR_ADDR", dest["address"]), ("IPVS_DEST_ATTR_PORT", dest["port"]),
             ("IPVS_DEST_ATTR_ADDR_FAMILY", socket.AF_INET6 if ":" in dest["address"] else socket.AF_INET),
             ("IPVS_DEST_ATTR_FWD_METHOD", {"masq": 0, "tunnel": 2, "route": 3}[dest["forward"]]),
             ("IPVS_DEST_ATTR_WEIGHT", dest["weight"]), ("IPVS_DEST_ATTR_U_THRESH", dest.get("u_threshold", 0)),
             ("IPVS_DEST_ATTR_L_THRESH", dest.get("l_threshold", 0)), ("IPVS_DEST_ATTR_ACTIVE_CONNS", active),
             ("IPVS_DEST_ATTR_INACT_CONNS", 9), ("IPVS_DEST_ATTR_PERSIST_CONNS", 2),
             ("IPVS_DEST_ATTR_STATS64", {"attrs": [(f"IPVS_STATS_ATTR_{name.upper()}", base + i)
                                                   for i, name in enumerate(genl.STATS_NAMES)]})]
    if dest["forward"] == "tunnel":
        attrs += [("IPVS_DEST_ATTR_TUN_TYPE", {"ipip": 0, "gue": 1, "gre": 2}[dest["tun_type"]]),
                  ("IPVS_DEST_ATTR_TUN_PORT", socket.htons(dest.get("tun_port", 0))),
                  ("IPVS_DEST_ATTR_TUN_FLAGS", _kernel_tun_flags(dest))]
    if order:
        attrs = [attrs[i] for i in order]
    return _encoded(nl.IPVS_CMD_NEW_DEST, [("IPVS_CMD_ATTR_DEST", {"attrs": attrs})])


def test_a_dump_read_by_learnt_layouts_equals_a_walk_of_every_reply(monkeypatch):
    replies = []
    for i in range(40):  # replies alike (a dump of one service) with every value different ...
        dest = {"address": f"10.10.{i // 200}.{i % 200 + 1}", "port": 80 + i, "forward": "tunnel",
                "weight": i * 7, "tun_type": "ipip", "u_threshold": i}
        replies.append(_dest_reply(dest, active=i, base=10**12 + i))
    replies += [_dest_reply(dest) for dest in DESTS]  # ... and other layouts among them
    replies.append(_dest_reply(DESTS[0], order=[1, 0, *range(2, 14)]))  # the same length, moved headers
    replies.append(_dest_reply(DESTS[2], active=3))
    fifth = {"address": "2001:db8::22", "port": 80, "forward": "tunnel", "weight": 2, "tun_type": "ipip"}
    replies.append(_dest_reply(fifth))  # a fifth layout: more than are learnt
    monkeypatch.setattr(genl, "_LAYOUTS", [])
    monkeypatch.setattr(genl, "MAX_LAYOUTS", 4)
    for stats in (True, False):
        fast = genl.dest_records(replies, 4, stats)
        assert fast == [genl.dest_record(reply, 4, stats) for reply in replies]
    # A plan's settings read by the same layouts are those of the walked records.
    assert genl.dest_settings(replies, 4) == [
        ((r["address"], r["port"]), genl.settings(r), bool(r["active"] or r["inactive"]))
        for r in (genl.dest_record(reply, 4, False) for reply in replies)]
    # A scrape's counters read by the same layouts are those of the walked records.
    assert genl.dest_counters(replies, 4) == [genl.counters(genl.dest_record(reply, 4)) for reply in replies]
    assert genl.dest_counters(replies[5:6])[0][:6] == ("10.10.0.6", 85, "tunnel", 35, 5, 9)
    assert fast[5]["weight"] == 35 and genl.dest_records(replies)[5]["stats"]["outbps"] == 10**12 + 5 + 9
    # Four layouts did the reading (tunnel, route, IPv6 masq, and the moved headers, which the
    # first layout refused), learnt once for every dump; only a fifth layout's reply was walked.
    assert len(genl._LAYOUTS) == 4
    walked = []
    monkeypatch.setattr(genl, "dest_record", lambda payload, *args: walked.append(payload) or {})
    genl.dest_records(replies)
    assert walked == [replies[-1]]


def test_a_destination_packed_in_one_call_is_the_attributes_laid_out_one_by_one():
    import random  # noqa: PLC0415

    rng = random.Random(7)
    for _ in range(500):
        dest = _random_dest(rng, ["10.10.24.21", "192.0.2.255", "2001:db8::1", "::ffff:1.2.3.4", "fe80::1"])
        assert genl.dest_full(dest) == genl.dest_full_generic(dest), dest


def _kernel_reply(dest, active=7):
    """A GET_DEST reply for ``dest`` laid out as a kernel since 5.3 writes it
    (``ip_vs_genl_fill_dest``): the address in 16 bytes, the settings first (the
    tunnel's always), then the connections, the address family and the counters."""
    attr = genl.ATTR["dest"]
    tunnel = dest["forward"] == "tunnel"
    family = socket.AF_INET6 if ":" in dest["address"] else socket.AF_INET
    values = [("port", "!H", dest["port"]), ("fwd_method", "=I", genl.FORWARD[dest["forward"]]),
              ("weight", "=I", dest["weight"]),
              ("tun_type", "=B", genl.TUN_TYPES[dest["tun_type"]] if tunnel else 0),
              ("tun_port", "!H", dest.get("tun_port", 0) if tunnel else 0),
              ("tun_flags", "=H", _kernel_tun_flags(dest) if tunnel else 0),
              ("u_thresh", "=I", dest.get("u_threshold", 0)), ("l_thresh", "=I", dest.get("l_threshold", 0)),
              ("active_conns", "=I", active), ("inact_conns", "=I", 9), ("persist_conns", "=I", 2),
              ("addr_family", "=H", family)]
    body = genl.nla(attr["addr"], socket.inet_pton(family, dest["address"]).ljust(16, b"\0"))
    body += b"".join(genl.nla(attr[name], struct.pack(fmt, value)) for name, fmt, value in values)
    body += genl.nla(attr["stats64"] | genl.NLA_F_NESTED, b"".join(
        genl.nla(i, struct.pack("=Q", 1000 + i)) for i in range(1, len(genl.STATS_NAMES) + 1)))
    return genl.request(0x20, genl.CMD["new_dest"], genl.nla(genl.ATTR["cmd"]["dest"] | genl.NLA_F_NESTED, body),
                        2, 1)


def _random_dest(rng, addresses=("10.10.24.21", "192.0.2.255", "2001:db8::1", "a0a:1815::", "fe80::1")):
    """A destination of random settings, at one of ``addresses``."""
    forward = rng.choice(["tunnel", "tunnel", "route", "masq"])
    dest = {"address": rng.choice(list(addresses)),
            "port": rng.randint(0, 65535), "forward": forward, "weight": rng.randint(0, 65535),
            "u_threshold": rng.randint(0, 2**32 - 1), "l_threshold": rng.randint(0, 2**32 - 1)}
    if forward == "tunnel":
        dest.update(tun_type=rng.choice(["ipip", "gue", "gre"]), tun_port=rng.randint(0, 65535),
                    tun_flags=sorted(rng.sample(["csum", "remcsum"], rng.randint(0, 2))))
    return dest


def test_replies_that_hold_the_wanted_destinations_are_known_by_their_bytes():
    """A dump whose replies are the wanted destinations is recognised without decoding;
    any difference a decode would see (each setting, the address family, a destination
    more or less), and replies laid out otherwise, are not: the caller decodes them."""
    import random  # noqa: PLC0415

    rng = random.Random(11)
    for _ in range(300):
        dests = list({(d["address"], d["port"]): d for d in (_random_dest(rng) for _ in range(rng.randint(1, 6)))}
                     .values())
        replies = [_kernel_reply(d, active=rng.randint(0, 9)) for d in dests]
        wanted = {key: values for key, values, _ in genl.dest_settings(replies, 4)}
        assert wanted == {(d["address"], d["port"]): genl.settings(genl.dest_record(r, 4)) for d, r in
                          zip(dests, replies, strict=True)}
        assert genl.replies_hold(replies, wanted) is True
        assert genl.replies_hold(replies[::-1], wanted) is True  # order does not matter
        changed = rng.choice(dests)
        key = (changed["address"], changed["port"])
        values = wanted[key]
        field = rng.randrange(len(values))
        other = {1: values[1] ^ 1, 2: values[2] ^ 1, 3: values[3] ^ 1, 5: values[5] ^ 1 if len(values) > 5 else 0,
                 0: "route" if values[0] == "tunnel" else "tunnel",
                 4: "gre" if len(values) > 4 and values[4] != "gre" else "ipip",
                 6: [] if len(values) > 6 and values[6] else ["csum"]}[field]
        mutated = (*values[:field], other, *values[field + 1:])
        if mutated[0] == "tunnel" and len(mutated) == 4:
            mutated += ("ipip", 0, [])
        assert genl.replies_hold(replies, {**wanted, key: mutated[:4] if mutated[0] != "tunnel" else mutated}) \
            is False, (values, mutated)
        assert genl.replies_hold(replies[1:], wanted) is False
        assert genl.replies_hold(replies, {**wanted, ("10.99.0.1", 1): ("route", 1, 0, 0)}) is False
    # The same 16 address bytes in the other family (IPv4 10.10.24.21, IPv6 a0a:1815::).
    v4 = {"address": "10.10.24.21", "port": 80, "forward": "route", "weight": 1}
    assert genl.replies_hold([_kernel_reply(v4)], {("a0a:1815::", 80): ("route", 1, 0, 0)}) is False
    assert genl.replies_hold([_kernel_reply(v4)], {("10.10.24.21", 80): ("route", 1, 0, 0)}) is True
    # Replies of another layout (the attributes in uapi order): not known, decoded as usual.
    assert genl.replies_hold([bytes(_dest_reply(DESTS[0]))], {("10.10.24.21", 80): genl.settings(
        genl.dest_record(_dest_reply(DESTS[0])))}) is False
    # Values no kernel holds (a negative threshold) are simply not held.
    assert genl.replies_hold([_kernel_reply(v4)], {("10.10.24.21", 80): ("route", 1, -1, 0)}) is False


def test_a_service_key_packed_in_one_call_is_the_attributes_laid_out_one_by_one():
    import random  # noqa: PLC0415

    rng = random.Random(5)
    for _ in range(300):
        address = rng.choice(["10.10.24.88", "0.0.0.0", "255.255.255.255", "2001:db8::88", "::1", "fe80::1"])
        key = {"af": 6 if ":" in address else 4, "protocol": rng.choice(["tcp", "udp", "sctp"]),
               "address": address, "port": rng.randint(0, 65535), "fwmark": None}
        assert genl.service_key(key) == genl.service_key_generic(key), key
    fwmark = {"af": 4, "protocol": None, "address": None, "port": None, "fwmark": 7}
    assert genl.service_key(fwmark) == genl.service_key_generic(fwmark)


def _kernel_service_reply(key, scheduler, flags, persistent, netmask=None, pe=None, conns=5):
    """A GET_SERVICE reply laid out as a kernel writes it (``ip_vs_genl_fill_service``):
    af, the key, scheduler, (persistence engine), flags with the kernel's own ``hashed``
    and an all-ones mask, timeout, netmask, then the counters."""
    attr = genl.ATTR["service"]
    family = genl.AF[key["af"]]
    body = genl.nla(attr["af"], struct.pack("=H", family))
    if key["fwmark"]:
        body += genl.nla(attr["fwmark"], struct.pack("=I", key["fwmark"]))
    else:
        body += genl.nla(attr["protocol"], struct.pack("=H", genl.PROTOCOLS[key["protocol"]]))
        body += genl.nla(attr["addr"], socket.inet_pton(family, key["address"]).ljust(16, b"\0"))
        body += genl.nla(attr["port"], struct.pack("!H", key["port"]))
    body += genl.nla(attr["sched_name"], scheduler.encode() + b"\0")
    if pe:
        body += genl.nla(attr["pe_name"], pe.encode() + b"\0")
    value = genl.sched_flags_value(flags) | (genl.SVC_F_PERSISTENT if persistent else 0) | genl.SVC_F_HASHED
    body += genl.nla(attr["flags"], struct.pack("=II", value, 0xFFFFFFFF))
    body += genl.nla(attr["timeout"], struct.pack("=I", persistent))
    body += genl.nla(attr["netmask"], socket.inet_aton(netmask or "255.255.255.255") if key["af"] == 4
                     else struct.pack("=I", netmask or 128))
    body += genl.nla(attr["stats64"] | genl.NLA_F_NESTED, b"".join(
        genl.nla(i, struct.pack("=Q", conns + i)) for i in range(1, len(genl.STATS_NAMES) + 1)))
    return genl.request(0x20, genl.CMD["new_service"], genl.nla(genl.ATTR["cmd"]["service"], body), 2, 1)


def test_a_service_reply_that_holds_a_wanted_service_is_known_by_its_bytes():
    """A GET_SERVICE reply of a wanted service with its wanted settings is known without
    decoding (what it answers is what decoding gives); any setting that differs, a
    persistence engine, or a service not wanted is not known: the caller decodes it."""
    import lvstun.ipvs as model  # noqa: PLC0415

    schedulers = ["rr", "wrr", "wlc", "sh", "mh", "lblcr"]
    table = {}
    for i, (key, _, _, _, _) in enumerate(SERVICES):
        spec = model.service_spec(key)
        table[spec] = {"scheduler": schedulers[i % len(schedulers)], "persistent": 300 * (i % 2),
                       "flags": ["sh-port"] if i % 3 == 0 else [], "destinations": {}}
    table["fwmark:77"] = {"scheduler": "rr", "destinations": None}
    wanted = model.wanted(table)
    heads = genl.ServiceHeads(wanted)
    for spec, (values, _, svc) in wanted.items():
        reply = _kernel_service_reply(svc, svc["scheduler"], svc["flags"], svc["persistent"])
        decoded = genl.service_record(reply, False)
        assert (model.service_spec(decoded), model.service_values(decoded)) == (spec, values)
        assert heads.match(reply) == (spec, values, svc["af"], genl.service_key(svc))
        for change in ({"scheduler": "dh"}, {"flags": ["sh-fallback"]}, {"persistent": 301},
                       {"persistent": 0 if svc["persistent"] else 60}, {"pe": "sip"}):
            other = {"scheduler": svc["scheduler"], "flags": svc["flags"], "persistent": svc["persistent"], **change}
            assert heads.match(_kernel_service_reply(svc, **other)) is None, (spec, change)
    stranger = {"af": 4, "protocol": "tcp", "address": "10.10.24.99", "port": 80, "fwmark": None}
    assert heads.match(_kernel_service_reply(stranger, "rr", [], 0)) is None
    assert genl.ServiceHeads({}).match(_kernel_service_reply(stranger, "rr", [], 0)) is None


def test_a_service_read_again_is_known_by_the_head_of_its_reply(monkeypatch):
    """A scrape's services are decoded once: a reply whose attributes before the counters
    are those of a reply decoded earlier gives that reply's record and key; any setting
    changed (or a persistence engine) is decoded anew."""
    decoded = []
    decode = genl.service_record
    monkeypatch.setattr(genl, "service_record", lambda payload, stats=True: decoded.append(1) or decode(payload, stats))
    known = genl.KnownServices()
    for key, scheduler, flags, persistent, netmask in SERVICES:
        reply = _kernel_service_reply(key, scheduler, flags, persistent, netmask)
        first = known.get(reply)
        assert first == (decode(reply, False), genl.service_key(first[0]))
        assert known.get(_kernel_service_reply(key, scheduler, flags, persistent, netmask, conns=999)) is first
        for change in ({"scheduler": "dh" if scheduler != "dh" else "rr"}, {"persistent": persistent + 1},
                       {"pe": "sip"}, {"flags": [] if flags else ["sh-port"]}):
            args = {"scheduler": scheduler, "flags": flags, "persistent": persistent, "netmask": netmask, **change}
            other = _kernel_service_reply(key, **args)
            assert known.get(other) == (decode(other, False), genl.service_key(decode(other, False)))
    assert len(decoded) == 5 * len(SERVICES)  # each first read and each change; no counters changed alone
