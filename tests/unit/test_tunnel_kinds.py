"""Sites over GUE and GRE: the tunnel kind per site with a per-service override, what
the directors' destinations and the real servers get from it, the MSS of the largest
encapsulation, and every wrong setting refused by its pillar path."""

import copy

import pytest

import lvstun.roles
import lvstun.site
from tests.unit.checkout import example_site, site_errors


@pytest.fixture(name="two_vips")
def fixture_two_vips():
    return example_site("two_vips")


@pytest.fixture(name="gue_gre")
def fixture_gue_gre():
    return example_site("gue_gre")


def dests(site, spec):
    return lvstun.roles.ipvs_services(site)[spec]["destinations"]


def test_the_default_site_stays_ipip_with_the_ipip_mss(two_vips):
    site = lvstun.site.parse(two_vips)
    assert all(svc.encap == lvstun.site.Encap("ipip", 0, "none") for svc in site.services.values())
    assert site.tunnel.mss == 1500 - 20 - 40
    assert {d["tun_type"] for spec in lvstun.roles.ipvs_services(site) for d in dests(site, spec).values()} == {"ipip"}
    assert lvstun.roles.for_minion(site, "rs1")["decap"] == {"gue_ports": [], "gre": False}


def test_the_example_site_wraps_web_in_gue_to_its_port_and_dns_in_gre(gue_gre):
    site = lvstun.site.parse(gue_gre)
    web, dns = site.services["web"], site.services["dns"]
    assert {str(d) for d in dests(site, web.spec).values()} == {
        str({"forward": "tunnel", "tun_type": "gue", "tun_port": 6080, "weight": w}) for w in (1, 2, 3, 4)}
    assert {str(d) for d in dests(site, dns.spec).values()} == {
        str({"forward": "tunnel", "tun_type": "gre", "weight": w}) for w in (1, 3, 2)}
    assert site.tunnel.mss == 1500 - 32 - 40  # outer IPv4, UDP and GUE headers: the largest
    assert lvstun.roles.for_minion(site, "rs1")["decap"] == {"gue_ports": [6080], "gre": False}  # web only
    assert lvstun.roles.for_minion(site, "rs2")["decap"] == {"gue_ports": [6080], "gre": True}


def test_a_service_overrides_the_sites_kind_and_the_mss_fits_the_largest(two_vips):
    tree = copy.deepcopy(two_vips)
    tree["lvs"]["tunnel"] = {"kind": "gue", "port": 7000, "checksum": "remcsum"}
    dns = tree["lvs"]["services"]["dns"]
    dns["tunnel"] = {"kind": "gre", "checksum": "csum"}
    site = lvstun.site.parse(tree)
    web, dns = site.services["web"], site.services["dns"]
    assert web.encap == lvstun.site.Encap("gue", 7000, "remcsum")
    assert dns.encap == lvstun.site.Encap("gre", 0, "csum")
    first = next(iter(dests(site, web.spec).values()))
    assert (first["tun_type"], first["tun_port"], first["tun_flags"]) == ("gue", 7000, ["remcsum"])
    first = next(iter(dests(site, dns.spec).values()))
    assert (first["tun_type"], first["tun_flags"], "tun_port" in first) == ("gre", ["csum"], False)
    assert site.tunnel.mss == 1500 - (32 + 8) - 40  # GUE with its remote checksum field: the largest
    backing_both = next(m.minion_id for m in dns.backends if any(b.minion_id == m.minion_id for b in web.backends))
    assert lvstun.roles.for_minion(site, backing_both)["decap"] == {"gue_ports": [7000], "gre": True}


def test_a_service_of_another_kind_takes_the_sites_port_only_for_gue(two_vips):
    tree = copy.deepcopy(two_vips)
    tree["lvs"]["services"]["web"]["tunnel"] = {"kind": "gue"}
    site = lvstun.site.parse(tree)
    assert site.services["web"].encap == lvstun.site.Encap("gue", 5555, "none")  # the schema's port
    assert site.services["dns"].encap == lvstun.site.Encap("ipip", 0, "none")
    assert site.tunnel.mss == 1500 - 32 - 40


@pytest.mark.parametrize(("tunnel", "service", "expected"), [
    ({"kind": "vxlan"}, None, "lvs:tunnel:kind: 'vxlan' is not one of ipip, gue, gre"),
    ({"kind": "gre", "checksum": "remcsum"}, None, "lvs:tunnel:checksum: 'remcsum' is not one of none, csum"),
    ({"checksum": "csum"}, None, "lvs:tunnel:checksum: 'csum' is not one of none"),
    ({"kind": "gue", "port": 0}, None, "lvs:tunnel:port: 0 must be an integer from 1 to 65535"),
    ({"kind": "gue", "port": "5555"}, None, "lvs:tunnel:port: '5555' must be an integer from 1 to 65535"),
    (None, {"kind": "ipip6"}, "lvs:services:web:tunnel:kind: 'ipip6' is not one of ipip, gue, gre"),
    (None, {"kind": "gue", "port": 70000}, "lvs:services:web:tunnel:port: 70000 must be an integer from 1 to 65535"),
    (None, {"knd": "gue"}, "lvs:services:web:tunnel:knd: unknown setting (did you mean kind?)"),
    (None, "gue", "lvs:services:web:tunnel: must be a mapping, got str"),
    ({"kind": "gue", "port": 53}, None,
     "lvs:tunnel:port: 53 is the UDP port of lvs:services:dns: a real server's GUE socket would take that "
     "service's datagrams"),
    (None, {"kind": "gue", "port": 53},
     "lvs:services:web:tunnel:port: 53 is the UDP port of lvs:services:dns: a real server's GUE socket would "
     "take that service's datagrams"),
    ({"kind": "gue", "mss": 1430}, None,
     "lvs:tunnel:mss: 1430 does not fit in a tunnelled packet on a 1500-byte LAN (at most 1428 with 32 bytes of "
     "encapsulation)"),
])
def test_a_wrong_tunnel_setting_is_refused_by_its_path(two_vips, tunnel, service, expected):
    tree = copy.deepcopy(two_vips)
    if tunnel is not None:
        tree["lvs"]["tunnel"] = tunnel
    if service is not None:
        tree["lvs"]["services"]["web"]["tunnel"] = service
    assert expected in site_errors(tree)
