"""IPv6 sites (``pillar/lvs/ipv6.sls``): the site model and what each role gets; what
an IPv6 site cannot have yet is refused by its pillar path."""

import pytest

import lvstun.dirgroup
import lvstun.roles
import lvstun.site
from tests.unit.checkout import example_site, site_errors


@pytest.fixture(name="tree")
def fixture_tree():
    return example_site("ipv6")


def test_the_example_is_an_ipv6_site_with_ip6ip6_tunnels_and_their_mss(tree):
    site = lvstun.site.parse(tree)
    assert (site.version, site.subnet, site.tunnel.device) == (6, "2001:db8:24::/64", "ip6tnl0")
    assert site.services["web"].public == site.services["web"].vip == "2001:db8:24::88"
    assert site.services["web"].spec == "tcp:[2001:db8:24::88]:80"
    # 1500 - 40 (the outer IPv6 header) - 60 (IPv6 and TCP headers)
    assert site.tunnel.mss == 1400


def test_each_role_gets_its_ipv6_setup(tree):
    site = lvstun.site.parse(tree)
    director = lvstun.roles.director(site, "v6-director")
    assert director["addresses"] == {"eth0": ["2001:db8:24::2/64"]}
    assert director["vips"]["addresses"] == ["2001:db8:24::88/128", "2001:db8:24::89/128"]
    assert director["vips"]["interface"] == "eth0"
    assert director["sysctls"]["net.ipv6.conf.all.forwarding"] == 0
    assert director["services"]["tcp:[2001:db8:24::88]:80"]["destinations"] == {
        f"[2001:db8:24::{n}]:80": {"forward": "tunnel", "tun_type": "ipip", "weight": 1} for n in (21, 22)}
    rs1 = lvstun.roles.realserver(site, "v6-rs1")
    assert (rs1["device"], rs1["vips"], rs1["gateway"]) == ("ip6tnl0", ["2001:db8:24::88", "2001:db8:24::89"],
                                                            "2001:db8:24::1")
    assert rs1["checks"]["dns"]["type"] == "udp" and rs1["checks"]["dns"]["vip"] == "2001:db8:24::89"
    assert rs1["sysctls"] == {"net.ipv6.conf.all.forwarding": 0}
    assert rs1["vip_routes"] == {"vips": ["2001:db8:24::88"], "table": 4242, "advmss": 1400,
                                 "gateway": "2001:db8:24::1", "interface": "eth0", "subnet": "2001:db8:24::/64"}
    router = lvstun.roles.router(site)
    assert router["addresses"] == {"eth0": ["2001:db8:24::1/64"], "wan0": ["2001:db8:112::88/64"]}
    assert router["sysctls"] == {"net.ipv6.conf.all.forwarding": 1}
    assert router["nat"]["mappings"] == [] and router["routes"] == {}


@pytest.mark.parametrize(("edit", "error"), [
    (lambda t: t["lvs"]["realservers"]["v6-rs1"].update(address="10.10.24.21"),
     "lvs:realservers:v6-rs1:address: '10.10.24.21' is an IPv4 address: the site is IPv6 (lvs:lan:subnet)"),
    (lambda t: t["lvs"]["services"]["web"].update(public="2001:db8:112::99"),
     "lvs:services:web:public: 2001:db8:112::99: an IPv6 VIP is routed to, not mapped (no NAT for IPv6)"),
    (lambda t: t["lvs"]["services"]["web"].update(vip="fe80::88"),
     "lvs:services:web:vip: fe80::88 is a link-local address (no router forwards it), not a host's address"),
    (lambda t: t["lvs"]["services"]["web"].update(vip="2001:db8:24::"),
     "lvs:services:web:vip: 2001:db8:24:: is the subnet-router anycast address of the LAN 2001:db8:24::/64"),
    (lambda t: t["lvs"].update(tunnel={"device": "tunl0"}),
     "lvs:tunnel:device: 'tunl0': an IPv6 site's VIPs go on ip6tnl0"),
    (lambda t: t["lvs"].update(tunnel={"lan_mtu": 1300}),
     "lvs:tunnel:lan_mtu: 1300: an IPv6 packet in a tunnel needs IPv6's 1280 bytes plus the tunnel's 40"),
    (lambda t: t["lvs"].update(tunnel={"lan_mtu": 1330, "kind": "gue"}),
     "lvs:tunnel:lan_mtu: 1330: an IPv6 packet in a tunnel needs IPv6's 1280 bytes plus the tunnel's 52"),
    (lambda t: t["lvs"]["router"].update(wan_address="112.2.21.88/24"),
     "lvs:router:wan_address: 112.2.21.88/24 is an IPv4 network: the site is IPv6 (lvs:lan:subnet)"),
])
def test_what_an_ipv6_site_cannot_have_is_refused_by_its_path(tree, edit, error):
    edit(tree)
    assert any(e.startswith(error) for e in site_errors(tree)), site_errors(tree)


@pytest.mark.parametrize(("tunnel", "mss", "dest", "decap"), [
    ({"kind": "gue", "port": 6080}, 1388, {"tun_type": "gue", "tun_port": 6080}, {"gue_ports": [6080], "gre": False}),
    ({"kind": "gre"}, 1396, {"tun_type": "gre"}, {"gue_ports": [], "gre": True}),
])
def test_an_ipv6_site_over_gue_or_gre_has_that_kinds_ipv6_mss_and_decapsulation(tree, tunnel, mss, dest, decap):
    # 1500 - 60 (IPv6 and TCP) - the outer IPv6 header (40) and GUE's 12 bytes or GRE's 4
    tree["lvs"]["tunnel"] = tunnel
    site = lvstun.site.parse(tree)
    assert site.tunnel.mss == mss
    director = lvstun.roles.director(site, "v6-director")
    assert director["services"]["tcp:[2001:db8:24::88]:80"]["destinations"]["[2001:db8:24::21]:80"] == {
        "forward": "tunnel", **dest, "weight": 1}
    rs1 = lvstun.roles.realserver(site, "v6-rs1")
    assert (rs1["device"], rs1["decap"], rs1["vip_routes"]["advmss"]) == ("ip6tnl0", decap, mss)


def test_an_ipv6_site_of_several_directors_gets_an_ipv6_group_sync_and_hash_and_no_arp_sysctls(tree):
    tree["lvs"]["directors"]["v6-director2"] = {"address": "2001:db8:24::3"}
    site = lvstun.site.parse(tree)
    director = lvstun.roles.director(site, "v6-director2")
    assert director["vips"]["interface"] == "lo"
    assert director["vips"]["addresses"] == ["2001:db8:24::88/128", "2001:db8:24::89/128"]
    assert director["sync"] == {"interface": "eth0", "sync_id": 1, "group": "ff02::4c56"}
    assert not [name for name in director["sysctls"] if "arp_" in name]  # no ARP on an IPv6 LAN
    router = lvstun.roles.router(site)
    assert router["sysctls"] == {"net.ipv6.conf.all.forwarding": 1, "net.ipv6.fib_multipath_hash_policy": 1}
    group = router["directors"]
    assert group["family"] == 6 and group["vips"] == ["2001:db8:24::88/128", "2001:db8:24::89/128"]
    assert {name: m["via"] for name, m in group["members"].items()} == {"v6-director": "2001:db8:24::2",
                                                                       "v6-director2": "2001:db8:24::3"}
    assert group["probe"]["vip"] == "2001:db8:24::88"
    want = lvstun.dirgroup.want(group)
    assert want["route6 2001:db8:24::88/128"] == "nhid 4200" and "rule6 fwmark 4201" in want


def test_an_ipv4_site_keeps_its_ipv4_devices_and_mss(tree):
    site = lvstun.site.parse(example_site("seed"))
    assert (site.version, site.tunnel.device, site.tunnel.mss) == (4, "tunl0", 1440)
    assert lvstun.roles.realserver(site, "rs1")["sysctls"] == {"net.ipv4.ip_forward": 0}


def test_the_status_view_matches_an_ipv6_directors_table_to_its_backends(tree):
    import lvstun.sitestatus  # noqa: PLC0415

    site = lvstun.site.parse(tree)
    dest = {"address": "2001:db8:24::21", "port": 80, "weight": 1, "active": 2, "inactive": 5,
            "stats": {"conns": 30, "inbytes": 2000, "outbytes": 0}}
    table = [{"protocol": "tcp", "address": "2001:db8:24::88", "port": 80, "af": 6, "destinations": [dest]}]
    web = lvstun.sitestatus.services_view(site, {}, {"v6-director": table}, {}, ["v6-director"])["web"]
    assert web["spec"] == "tcp:[2001:db8:24::88]:80"
    assert web["backends"]["v6-rs1"]["address"] == "[2001:db8:24::21]:80"
    assert web["backends"]["v6-rs1"]["live"] == {"v6-director": {"weight": 1, "active": 2, "inactive": 5, "conns": 30,
                                                                 "inbytes": 2000, "outbytes": 0}}
    assert web["backends"]["v6-rs2"]["live"] == {"v6-director": "missing"}
