"""A host's IP setup (``_modules/lvs_net.py``): argument checks, the MSS route plan, and
the drift computed from what netlink reports (a fake of ``lvstun.netlink`` here; the
kernel side runs on the lab's hosts)."""

import contextlib
import socket
import types

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

import lvstun.jsonstore
import lvstun.netlink
import lvstun.tun
from tests.unit.checkout import load

VIP_ROUTES = {"vips": ["10.10.24.88"], "table": 4242, "advmss": 1440, "gateway": "10.10.24.1",
              "interface": "eth0", "subnet": "10.10.24.0/24"}


class FakeNetlink:
    """What the kernel holds, as ``lvstun.netlink``'s readers return it (``family``: the
    one address family it holds routes and rules of)."""

    RTPROT_LVS = 76
    FAMILIES = lvstun.netlink.FAMILIES
    family_of = staticmethod(lvstun.netlink.family_of)
    default_destination = staticmethod(lvstun.netlink.default_destination)
    family = socket.AF_INET

    def __init__(self, links=None, addresses=None, gateway=None, rules=None, table=None, owned=None):
        self._links = links or {"eth0": 2}
        self._addresses = addresses or {}
        self._gateway = gateway
        self._rules = rules or {}
        self._table = table or {}
        self._owned = owned or {}

    def link(self, ipr, name):
        if name not in self._links:
            return None
        return {"index": self._links[name], "flags": 1}

    def addresses(self, ipr, index):
        return self._addresses.get(index, [])

    def default_gateway(self, ipr, family=socket.AF_INET):
        return (self._gateway, None) if family == self.family else (None, None)

    def source_rules(self, ipr, table, family=socket.AF_INET):
        return dict(self._rules) if family == self.family else {}

    def routes(self, ipr, table, family=socket.AF_INET):
        return dict(self._table) if family == self.family else {}

    def owned_routes(self, ipr):
        return dict(self._owned)


@pytest.fixture(name="lvs_net")
def fixture_lvs_net(monkeypatch, tmp_path):
    module = load("lvs_net_under_test", "_modules", "lvs_net.py")
    monkeypatch.setattr(module, "IPRoute", lambda: contextlib.nullcontext(object()), raising=False)
    monkeypatch.setattr(module.lvstun, "tun",
                        types.SimpleNamespace(addresses_in_use=set, stale_vips=lvstun.tun.stale_vips))
    module.__salt__ = {}
    module.__opts__ = {"cachedir": str(tmp_path)}
    return module


def _names(records):
    return sorted(f"{r['kind']} {r['object']} {r['want']} {r['have']}" for r in records)


def test_mss_route_plan_validates_and_names_the_table_routes(lvs_net):
    table, advmss, vips, routes, ifname, family = lvs_net._vip_route_plan(VIP_ROUTES)
    assert (table, advmss, vips, ifname, family) == (4242, 1440, ["10.10.24.88/32"], "eth0", socket.AF_INET)
    assert routes == {"10.10.24.0/24": None, "0.0.0.0/0": "10.10.24.1"}
    with pytest.raises(SaltInvocationError, match=r"vip_routes:vips: '10\.10\.24\.888' is not an IP address"):
        lvs_net._vip_route_plan({**VIP_ROUTES, "vips": ["10.10.24.888"]})
    with pytest.raises(SaltInvocationError, match=r"vip_routes:subnet: '10\.10\.24\.0' needs a prefix length"):
        lvs_net._vip_route_plan({**VIP_ROUTES, "subnet": "10.10.24.0"})


def test_an_ipv6_plan_has_host_routes_of_128_and_the_ipv6_default(lvs_net):
    v6 = {**VIP_ROUTES, "vips": ["fd00:24::88"], "gateway": "fd00:24::1", "subnet": "fd00:24::/64", "advmss": 1380}
    _, advmss, vips, routes, _, family = lvs_net._vip_route_plan(v6)
    assert (vips, family, advmss) == (["fd00:24::88/128"], socket.AF_INET6, 1380)
    assert routes == {"fd00:24::/64": None, "::/0": "fd00:24::1"}
    with pytest.raises(SaltInvocationError, match="of the subnet's family"):
        lvs_net._vip_route_plan({**v6, "gateway": "10.10.24.1"})


def test_an_ipv6_gateway_is_the_ipv6_default_route(lvs_net, monkeypatch):
    netlink = FakeNetlink(gateway="fd00:24::fe")
    netlink.family = socket.AF_INET6
    monkeypatch.setattr(lvs_net.lvstun, "netlink", netlink)
    assert _names(lvs_net.check(gateway="fd00:24::1")) == ["default-route6 main via fd00:24::1 via fd00:24::fe"]
    assert lvs_net.check(gateway="fd00:24::fe") == []


def test_route_text_reads_like_ip_route(lvs_net):
    assert lvs_net._route_text({"gateway": "10.10.24.1", "oif": 2, "advmss": 1440}, "eth0") == \
        "via 10.10.24.1 dev eth0 advmss 1440"
    assert lvs_net._route_text({"gateway": None, "oif": 2, "advmss": 1440}, "eth0") == "dev eth0 advmss 1440"
    assert lvs_net._route_text(None, "eth0") is None


def test_a_real_server_missing_its_clamp_gets_its_rule_and_routes(lvs_net, monkeypatch):
    monkeypatch.setattr(lvs_net.lvstun, "netlink", FakeNetlink())
    assert _names(lvs_net.check(vip_routes=VIP_ROUTES)) == [
        "rule from 10.10.24.88/32 lookup 4242 priority 1042 None",
        "table-route 4242 route 0.0.0.0/0 via 10.10.24.1 dev eth0 advmss 1440 None",
        "table-route 4242 route 10.10.24.0/24 dev eth0 advmss 1440 None"]


def test_a_clamp_in_place_is_no_drift_and_a_stale_rule_goes(lvs_net, monkeypatch):
    table = {"10.10.24.0/24": {"gateway": None, "oif": 2, "advmss": 1440},
             "0.0.0.0/0": {"gateway": "10.10.24.1", "oif": 2, "advmss": 1440}}
    monkeypatch.setattr(lvs_net.lvstun, "netlink", FakeNetlink(rules={"10.10.24.88/32": 1042}, table=table))
    assert lvs_net.check(vip_routes=VIP_ROUTES) == []
    monkeypatch.setattr(lvs_net.lvstun, "netlink", FakeNetlink(rules={"10.10.24.88/32": 1042, "10.10.24.89/32": 1042},
                                                   table={**table, "10.10.99.0/24": table["10.10.24.0/24"]}))
    assert _names(lvs_net.check(vip_routes=VIP_ROUTES)) == [
        "rule from 10.10.24.89/32 lookup 4242 None priority 1042",
        "table-route 4242 route 10.10.99.0/24 None dev eth0 advmss 1440"]


def test_addresses_are_added_never_removed_and_the_gateway_is_named(lvs_net, monkeypatch):
    monkeypatch.setattr(lvs_net.lvstun, "netlink", FakeNetlink(addresses={2: ["192.0.2.9/24"]}, gateway="10.10.24.254"))
    drifts = lvs_net.check(addresses={"eth0": ["10.10.24.21/24"]}, gateway="10.10.24.1")
    assert _names(drifts) == ["address eth0 10.10.24.21/24 None",
                              "default-route main via 10.10.24.1 via 10.10.24.254"]


def test_an_interface_that_is_not_there_fails_the_check(lvs_net, monkeypatch):
    monkeypatch.setattr(lvs_net.lvstun, "netlink", FakeNetlink())
    with pytest.raises(CommandExecutionError, match="interface eth9 does not exist"):
        lvs_net.check(addresses={"eth9": ["10.10.24.21/24"]})


def test_a_director_keeps_exactly_its_vips_and_keeps_a_busy_stale_one(lvs_net, monkeypatch):
    vips = {"interface": "eth0", "addresses": ["10.10.24.88/32"], "subnet": "10.10.24.0/24"}
    held = ["10.10.24.2/24", "10.10.24.89/32", "10.10.24.90/32", "10.10.24.91/32", "192.0.2.1/32"]
    lvstun.jsonstore.store(lvs_net.__opts__, "host-originals", {"addresses": {"eth0": [
        "10.10.24.88/32", "10.10.24.89/32", "10.10.24.90/32", "192.0.2.1/32"]}})
    monkeypatch.setattr(lvs_net.lvstun, "netlink", FakeNetlink(addresses={2: held}))
    monkeypatch.setattr(lvs_net.lvstun, "tun", types.SimpleNamespace(addresses_in_use=lambda: {"10.10.24.90"},
                                                              stale_vips=lvstun.tun.stale_vips))
    # Missing VIP added; a stale /32 of the LAN the pack added removed; a busy one (a
    # connection), one the pack did not add (.91: an operator's, another tool's) and
    # addresses outside the LAN or of another prefix left alone.
    assert _names(lvs_net.check(vips=vips)) == ["address eth0 10.10.24.88/32 None",
                                                "address eth0 None 10.10.24.89/32"]


def test_router_routes_are_exactly_the_owned_ones(lvs_net, monkeypatch):
    routes = {"10.10.24.88/32": {"via": ["10.10.24.3", "10.10.24.2"], "interface": "eth0"}}
    monkeypatch.setattr(lvs_net.lvstun, "netlink", FakeNetlink(owned={"10.10.24.88/32": ["10.10.24.2", "10.10.24.3"]}))
    assert lvs_net.check(routes=routes) == []
    monkeypatch.setattr(lvs_net.lvstun, "netlink", FakeNetlink(owned={"10.10.24.88/32": ["10.10.24.2"],
                                                          "10.10.24.77/32": ["10.10.24.2"]}))
    assert _names(lvs_net.check(routes=routes)) == [
        "route 10.10.24.77/32 None via 10.10.24.2",
        "route 10.10.24.88/32 via 10.10.24.2, 10.10.24.3 via 10.10.24.2"]
    assert lvs_net.check(routes=None) == []  # not asked: routes are not looked at
