"""The two_vips lab switched to pillar/lvs/gue_gre.sls: the same hosts and services, the
web service's requests wrapped in GUE (UDP to port 6080) and the dns service's in GRE
(protocol 47), on a LAN where every real server drops IP protocol 4 on its NIC, as
public clouds do. Then back to ipip, as the site was (each switch is one apply).

Real kernels throughout: the directors' IPVS encapsulates, the real servers' fou and
ip_gre modules decapsulate, the directors' path checks go through the same
encapsulation (a real server that drops it is drained on every director)."""

import pytest

from lvs_lab import health as hh
from lvs_lab import traffic
from tests.lab.site_helpers import apply, changes_by_minion, site_tree

DIRECTORS = ("director", "director2")
REALSERVERS = ("rs1", "rs2", "rs3", "rs4")
GUE_PORT = 6080
DNS = "10.10.24.89:53"


def _iptables(lab, host, verb, *rule):
    """``iptables-legacy VERB INPUT RULE`` on ``host`` (-D repeated until none is left)."""
    if verb == "-D":
        lab.capture(host, "sh", "-c", f"while iptables-legacy -D INPUT {' '.join(rule)} 2>/dev/null; do :; done")
        return
    code, _, err = lab.capture(host, "iptables-legacy", verb, "INPUT", *rule)
    assert code == 0, f"{host}: {err}"


NO_IPIP = ("-i", "eth0", "-p", "4", "-m", "comment", "--comment", "lvslab-no-ipip", "-j", "DROP")


def _ipip_dropped(lab, rs):
    """Packets of IP protocol 4 that ``rs`` dropped on its NIC since the rule went in."""
    code, out, err = lab.capture(rs, "iptables-legacy-save", "-c", "-t", "filter")
    assert code == 0, err
    return [int(line[1:].split(":")[0]) for line in out.splitlines() if "lvslab-no-ipip" in line]


@pytest.fixture(scope="module", name="tunnels")
def fixture_tunnels(two_vips):
    two_vips.set_pillar(site_tree("gue_gre"))
    try:
        first = apply(two_vips)
        for rs in REALSERVERS:  # from now on, the LAN drops IP protocol 4 at every real server
            _iptables(two_vips, rs, "-I", *NO_IPIP)
        two_vips.wait_serving(120)
        yield two_vips, first
    finally:
        for rs in REALSERVERS:
            for rule in (NO_IPIP, ("-p", "udp", "--dport", str(GUE_PORT), "-j", "DROP"), ("-p", "47", "-j", "DROP")):
                _iptables(two_vips, rs, "-D", *rule)
        two_vips.set_pillar(site_tree("two_vips"))
        back = apply(two_vips)  # back to ipip: one apply (the last tests of this lab need no more)
        failed = {m: [s["__id__"] for s in states.values() if s["result"] is not True] for m, states in back.items()}
        assert all(not ids for ids in failed.values()), failed


def _report(lab, service, count):
    report = traffic.run(lab, lab.site(), count=count, service=service)
    assert report["ok"], traffic.describe(report)
    print(traffic.describe(report))
    return report


def test_the_switch_is_one_apply_that_names_what_each_host_gets(tunnels):
    lab, first = tunnels
    changes = changes_by_minion(first)
    for director in DIRECTORS:
        ipvs = changes[director]["lvs-director-ipvs"]
        web = {k: c for k, c in ipvs.items() if k.startswith("tcp:10.10.24.88:80 -> ")}
        dns = {k: c for k, c in ipvs.items() if k.startswith(f"udp:{DNS} -> ")}
        assert len(web) == 4 and all(c["new"]["tun_type"] == "gue" and c["new"]["tun_port"] == GUE_PORT
                                     for c in web.values()), ipvs
        assert len(dns) == 3 and all(c["new"]["tun_type"] == "gre" for c in dns.values()), ipvs
    # Every real server backs web (GUE); rs1 is not a dns backend (no GRE for it).
    for rs in REALSERVERS:
        tunnel = changes[rs]["lvs-realserver-tunnel"]
        assert tunnel[f"GUE port {GUE_PORT}"] == {"old": None, "new": "gue"}, tunnel
        assert ("gre0 up" in tunnel or "gre0" in tunnel) == (rs != "rs1"), tunnel
        code, out, _ = lab.capture(rs, "ip", "fou", "show")
        assert code == 0 and f"port {GUE_PORT} gue" in out, out
        # the MSS clamp fits GUE's 32 bytes: 1500 - 32 - 40
        code, out, _ = lab.capture(rs, "ip", "route", "show", "table", "4242")
        assert "advmss 1428" in out, out


def test_every_service_is_answered_by_every_backend_over_its_tunnel_without_ip_protocol_4(tunnels):
    lab, _ = tunnels
    web = _report(lab, "web", 100)
    assert set(web["answers"]) == set(REALSERVERS)
    dns = _report(lab, "dns", 60)
    assert set(dns["answers"]) == {"rs2", "rs3", "rs4"}
    for report, kind in ((web, "gue"), (dns, "gre")):
        assert report["response_bytes_through_directors"] == 0, traffic.describe(report)
        for director in DIRECTORS:
            counters = report["directors"][director]
            assert counters[kind][0] > 0, traffic.describe(report)  # the requests went that way
            assert counters["ipip"][0] == 0, traffic.describe(report)  # and nothing as protocol 4
    for rs in REALSERVERS:  # nothing reached a real server as protocol 4 (its NIC would have dropped it)
        assert _ipip_dropped(lab, rs) == [0], rs


def test_a_second_apply_changes_nothing(tunnels):
    lab, _ = tunnels
    assert changes_by_minion(apply(lab)) == {minion: {} for minion in lab.minions}


def _drained_everywhere(lab, service, minion, drained=True):
    def held():
        weights = [hh.weight_of(lab, minion, director, service) for director in DIRECTORS]
        return all((w == 0) == drained for w in weights)
    return held


@pytest.mark.parametrize(("service", "minion", "rule"), [
    (hh.WEB, "rs2", ("-p", "udp", "--dport", str(GUE_PORT), "-j", "DROP")),
    (DNS, "rs3", ("-p", "47", "-j", "DROP")),
], ids=["gue", "gre"])
def test_a_real_server_that_drops_the_encapsulation_is_drained_on_every_director(tunnels, service, minion, rule):
    lab, _ = tunnels
    _iptables(lab, minion, "-I", *rule)
    try:
        took = hh.wait_for(_drained_everywhere(lab, service, minion), hh.TIMEOUT)
        print(f"{minion} drained from {service} on every director {took:.1f} s after its NIC dropped {rule}")
    finally:
        _iptables(lab, minion, "-D", *rule)
    hh.wait_for(_drained_everywhere(lab, service, minion, drained=False), hh.RESTORE)
