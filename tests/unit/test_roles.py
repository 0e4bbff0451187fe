"""What each role must hold, computed from the site (the role states render this)."""

import os

import pytest
import yaml

import lvstun.roles
import lvstun.site

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tree(name):
    with open(os.path.join(REPO, "pillar", "lvs", f"{name}.sls"), encoding="utf-8") as fh:
        return yaml.safe_load(fh)["lvs"]


def _site(name):
    return lvstun.site.parse({"lvs": _tree(name)})


@pytest.fixture(name="seed")
def fixture_seed():
    return _site("seed")


@pytest.fixture(name="two_vips")
def fixture_two_vips():
    return _site("two_vips")


@pytest.fixture(name="two_vips_tree")
def fixture_two_vips_tree():
    return _tree("two_vips")


def test_seed_director_covers_the_seed_steps(seed):
    cfg = lvstun.roles.for_minion(seed, "director")
    # ip addr add 10.10.24.2/24 dev eth0; ip addr add 10.10.24.88/32 dev eth0
    assert cfg["addresses"] == {"eth0": ["10.10.24.2/24"]}
    assert cfg["vips"] == {"interface": "eth0", "addresses": ["10.10.24.88/32"], "subnet": "10.10.24.0/24"}
    # the seed's 192.168.1.1 is corrected to the site's gateway
    assert cfg["gateway"] == "10.10.24.1"
    # the seed's ip_forward 0, plus the pack's TUN defaults for port reuse and weight 0
    assert cfg["sysctls"] == {"net.ipv4.ip_forward": 0, "net.ipv4.vs.conn_reuse_mode": 3,
                              "net.ipv4.vs.expire_nodest_conn": 1, "net.ipv4.vs.expire_quiescent_template": 1}
    # ipvsadm -A -t 10.10.24.88:80 -s rr; ipvsadm -a ... -r 10.10.24.2x:80 -i
    assert cfg["services"] == {"tcp:10.10.24.88:80": {
        "scheduler": "rr", "flags": [], "persistent": 0, "netmask": None,
        "destinations": {f"10.10.24.2{i}:80": {"forward": "tunnel", "tun_type": "ipip", "weight": 1}
                         for i in (1, 2, 3)}}}


def test_ipvs_settings_given_replace_the_defaults_and_null_leaves_the_kernels_value():
    with open(os.path.join(REPO, "pillar", "lvs", "seed.sls"), encoding="utf-8") as fh:
        tree = yaml.safe_load(fh)
    tree["lvs"]["ipvs"] = {"conn_reuse_mode": 1, "expire_nodest_conn": None}
    sysctls = lvstun.roles.for_minion(lvstun.site.parse(tree), "director")["sysctls"]
    assert sysctls == {"net.ipv4.ip_forward": 0, "net.ipv4.vs.conn_reuse_mode": 1,
                       "net.ipv4.vs.expire_quiescent_template": 1}


def test_seed_realserver_covers_the_seed_steps(seed):
    cfg = lvstun.roles.for_minion(seed, "rs3")
    assert cfg["addresses"] == {"eth0": ["10.10.24.23/24"]}  # not RS2's .22, as the seed printed
    assert (cfg["device"], cfg["vips"], cfg["gateway"]) == ("tunl0", ["10.10.24.88"], "10.10.24.1")
    assert cfg["sysctls"] == {"net.ipv4.ip_forward": 0}
    # 1500-byte LAN - 20 (ipip) - 40 (IP + TCP headers)
    assert cfg["vip_routes"] == {"vips": ["10.10.24.88"], "table": 4242, "advmss": 1440,
                                 "gateway": "10.10.24.1", "interface": "eth0", "subnet": "10.10.24.0/24"}


def test_seed_router_maps_public_to_vip(seed):
    cfg = lvstun.roles.for_minion(seed, "router")
    assert cfg["sysctls"] == {"net.ipv4.ip_forward": 1}
    assert cfg["addresses"] == {"eth0": ["10.10.24.1/24"], "wan0": ["112.2.21.88/24"]}
    assert cfg["nat"] == {"table": "lvs_nat", "wan_interface": "wan0",
                          "mappings": [{"public": "112.2.21.88", "vip": "10.10.24.88"}]}


def test_seed_single_director_holds_the_vips_on_its_lan_nic_and_the_router_needs_no_route(seed):
    assert lvstun.roles.for_minion(seed, "director")["vips"]["interface"] == "eth0"
    assert lvstun.roles.for_minion(seed, "router")["routes"] == {}


def test_two_directors_hold_the_vips_on_lo_behind_the_routers_director_group(two_vips):
    for name in ("director", "director2"):
        cfg = lvstun.roles.for_minion(two_vips, name)
        assert cfg["vips"] == {"interface": "lo", "addresses": ["10.10.24.88/32", "10.10.24.89/32"],
                               "subnet": "10.10.24.0/24"}
        assert cfg["sysctls"]["net.ipv4.conf.eth0.arp_ignore"] == 1
        assert cfg["sysctls"]["net.ipv4.conf.all.arp_announce"] == 2
    assert lvstun.roles.for_minion(two_vips, "director2")["addresses"] == {"eth0": ["10.10.24.3/24"]}
    router = lvstun.roles.for_minion(two_vips, "router")
    assert router["routes"] == {}  # the VIPs go to the director group instead
    group = router["directors"]
    assert group["vips"] == ["10.10.24.88/32", "10.10.24.89/32"]
    assert group["members"] == {"director": {"id": 4201, "via": "10.10.24.2"},
                                "director2": {"id": 4202, "via": "10.10.24.3"}}
    assert group["probe"] == {"check": two_vips.services["web"].check, "vip": "10.10.24.88"}
    assert router["sysctls"]["net.ipv4.fib_multipath_hash_policy"] == 1


def test_an_ios_router_with_two_directors_gets_ecmp_static_routes(two_vips_tree):
    two_vips_tree["router"].update(kind="ios", lan_interface="GigabitEthernet0/0",
                                   wan_interface="GigabitEthernet0/1")
    router = lvstun.roles.for_minion(lvstun.site.parse({"lvs": two_vips_tree}), "router")
    assert router["routes"] == {vip: {"via": ["10.10.24.2", "10.10.24.3"], "interface": "GigabitEthernet0/0"}
                                for vip in ("10.10.24.88/32", "10.10.24.89/32")}
    assert "directors" not in router


def test_two_vips_weights_overrides_and_public_addresses(two_vips):
    director = lvstun.roles.for_minion(two_vips, "director")
    dns = director["services"]["udp:10.10.24.89:53"]["destinations"]
    assert {d: v["weight"] for d, v in dns.items()} == {"10.10.24.22:53": 1, "10.10.24.23:53": 3,
                                                         "10.10.24.24:53": 2}
    web = director["services"]["tcp:10.10.24.88:80"]["destinations"]
    assert [v["weight"] for v in web.values()] == [1, 2, 3, 4]
    assert director["sysctls"]["net.ipv4.vs.expire_nodest_conn"] == 1
    # rs1 serves only the web VIP; rs4 both; only TCP VIPs get MSS routes
    assert lvstun.roles.for_minion(two_vips, "rs1")["vips"] == ["10.10.24.88"]
    rs4 = lvstun.roles.for_minion(two_vips, "rs4")
    assert rs4["vips"] == ["10.10.24.88", "10.10.24.89"] and rs4["vip_routes"]["vips"] == ["10.10.24.88"]
    router = lvstun.roles.for_minion(two_vips, "router")
    assert router["addresses"]["wan0"] == ["112.2.21.88/24", "112.2.21.89/32"]
    assert [m["public"] for m in router["nat"]["mappings"]] == ["112.2.21.88", "112.2.21.89"]


def test_mss_policy_off_and_smaller_lan():
    with open(os.path.join(REPO, "pillar", "lvs", "seed.sls"), encoding="utf-8") as fh:
        tree = yaml.safe_load(fh)
    tree["lvs"]["tunnel"] = {"mss": "off"}
    assert lvstun.roles.for_minion(lvstun.site.parse(tree), "rs1")["vip_routes"] is None
    tree["lvs"]["tunnel"] = {"lan_mtu": 1400}
    assert lvstun.roles.for_minion(lvstun.site.parse(tree), "rs1")["vip_routes"]["advmss"] == 1340


def test_a_minion_outside_the_site_has_no_role(seed):
    assert lvstun.roles.for_minion(seed, "stranger") == {"role": None}
