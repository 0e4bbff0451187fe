"""The struct codec of the IPVS read path.

Reply messages are built and encoded with pyroute2 (as the kernel lays them out) from
known values; our decoder must give back exactly those values.
"""


import pytest
from pyroute2.netlink.generic import ipvs as nl

import lvstun.genl
from tests.unit.checkout import load


@pytest.fixture(scope="module", name="ipvs")
def fixture_ipvs():
    return load("ipvs_module_under_test", "_modules", "ipvs.py")


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


STATS = {name: 1000 + i for i, name in enumerate(lvstun.genl.STATS_NAMES)}


def _stats64():
    return {"attrs": [(name, 1000 + i) for i, name in enumerate(
        ("IPVS_STATS_ATTR_CONNS", "IPVS_STATS_ATTR_INPKTS", "IPVS_STATS_ATTR_OUTPKTS", "IPVS_STATS_ATTR_INBYTES",
         "IPVS_STATS_ATTR_OUTBYTES", "IPVS_STATS_ATTR_CPS", "IPVS_STATS_ATTR_INPPS", "IPVS_STATS_ATTR_OUTPPS",
         "IPVS_STATS_ATTR_INBPS", "IPVS_STATS_ATTR_OUTBPS"))]}


@pytest.mark.parametrize("key,scheduler,flags,persistent,netmask", [
    ({"af": 4, "protocol": "tcp", "address": "10.10.24.88", "port": 80, "fwmark": None}, "rr", [], 0, None),
    ({"af": 4, "protocol": "udp", "address": "10.10.24.89", "port": 53, "fwmark": None}, "sh", ["sched2"], 300,
     "255.255.255.0"),
    ({"af": 6, "protocol": "tcp", "address": "2001:db8::88", "port": 443, "fwmark": None}, "wlc", [], 0, 64),
    ({"af": 4, "protocol": None, "address": None, "port": None, "fwmark": 5}, "mh", ["sched1"], 0, None),
])
def test_service_replies_decode_to_the_values_sent(ipvs, key, scheduler, flags, persistent, netmask):
    svc = ipvs._svc_nl(key, scheduler, flags, persistent, netmask)
    attrs = svc.dump_nla()["attrs"] + [("IPVS_SVC_ATTR_STATS64", _stats64())]
    data = _encoded(nl.IPVS_CMD_NEW_SERVICE, [("IPVS_CMD_ATTR_SERVICE", {"attrs": attrs})])
    expected = {**key, "scheduler": scheduler, "flags": flags, "persistent": persistent,
                "netmask": netmask or ("255.255.255.255" if key["af"] == 4 else 128), "stats": STATS}
    assert lvstun.genl.service_record(data) == expected


@pytest.mark.parametrize("dest", [
    {"address": "10.10.24.21", "port": 80, "forward": "tunnel", "weight": 3, "tun_type": "ipip"},
    {"address": "10.10.24.22", "port": 8080, "forward": "tunnel", "weight": 0, "u_threshold": 100,
     "l_threshold": 10, "tun_type": "gue", "tun_port": 6080, "tun_flags": ["csum"]},
    {"address": "10.10.24.23", "port": 80, "forward": "route", "weight": 65535},
    {"address": "2001:db8::21", "port": 443, "forward": "masq", "weight": 1},
])
def test_dest_replies_decode_to_the_values_sent(ipvs, dest):
    nla = ipvs._dest_nl(dest).dump_nla()
    nla["attrs"] += [("IPVS_DEST_ATTR_ACTIVE_CONNS", 7), ("IPVS_DEST_ATTR_INACT_CONNS", 9),
                     ("IPVS_DEST_ATTR_PERSIST_CONNS", 2), ("IPVS_DEST_ATTR_STATS64", _stats64())]
    data = _encoded(nl.IPVS_CMD_NEW_DEST, [("IPVS_CMD_ATTR_DEST", nla)])
    expected = {"u_threshold": 0, "l_threshold": 0, **dest, "active": 7, "inactive": 9, "persistent_conns": 2,
                "stats": STATS}
    if dest["forward"] == "tunnel":
        expected.setdefault("tun_port", 0)
        expected.setdefault("tun_flags", [])
    assert lvstun.genl.dest_record(data, 6 if ":" in dest["address"] else 4) == expected


def test_service_key_encodes_as_pyroute2_does(ipvs):
    for key in ({"af": 4, "protocol": "tcp", "address": "10.10.24.88", "port": 80, "fwmark": None},
                {"af": 6, "protocol": "sctp", "address": "2001:db8::1", "port": 9, "fwmark": None},
                {"af": 4, "protocol": None, "address": None, "port": None, "fwmark": 77}):
        ours = lvstun.genl.request(0x20, nl.IPVS_CMD_GET_DEST, lvstun.genl.service_key(key), 0x301, 1)
        theirs = _encoded(nl.IPVS_CMD_GET_DEST, [("IPVS_CMD_ATTR_SERVICE", ipvs._svc_key_nl(key).dump_key())])
        decoded = _decoded(ours).get_attr("IPVS_CMD_ATTR_SERVICE")
        reference = _decoded(theirs).get_attr("IPVS_CMD_ATTR_SERVICE")
        for attr in ("IPVS_SVC_ATTR_AF", "IPVS_SVC_ATTR_PROTOCOL", "IPVS_SVC_ATTR_ADDR", "IPVS_SVC_ATTR_PORT",
                     "IPVS_SVC_ATTR_FWMARK"):
            assert decoded.get_attr(attr) == reference.get_attr(attr), (key, attr)


def test_command_and_attribute_numbers_are_the_kernel_uapi_ones():
    # include/uapi/linux/ip_vs.h, as pyroute2 also declares them
    assert (lvstun.genl.CMD_GET_SERVICE, lvstun.genl.CMD_GET_DEST) == (nl.IPVS_CMD_GET_SERVICE, nl.IPVS_CMD_GET_DEST)
    assert lvstun.genl.GENL_VERSION == nl.GENL_VERSION
    names = [name for name, _ in nl.ipvsmsg.service.nla_map]
    assert names.index("IPVS_SVC_ATTR_STATS64") == lvstun.genl.SVC_STATS64
    names = [name for name, _ in nl.ipvsmsg.dest.nla_map]
    assert names.index("IPVS_DEST_ATTR_TUN_FLAGS") == lvstun.genl.DEST_TUN_FLAGS
