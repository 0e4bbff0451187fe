"""An IPv6 site on real kernels (pillar/lvs/ipv6.sls: a linux router, one director, two
real servers, ip6ip6 tunnels), deployed by ``state.apply`` beside the lab's seed (its own
LAN and client, ``Lab.add_site``) and taken away at the end, so that the next modules
find the seed's lab as it was.

Every check reads the hosts with the kernel's own tools (ipvsadm, ip, ip6tables
counters) or sends traffic from the site's client: never with the pack's own readers.
"""

import json
import subprocess

import pytest

from lvs_lab import health as hh
from lvs_lab import traffic
from lvs_lab.health import RESTORE, TIMEOUT
from tests.lab.site_helpers import beside, changes_by_minion, clean, packet_too_big_dropped, site_tree

SITE = "ipv6"
DIRECTOR = "v6-director"
WEB = "[2001:db8:24::88]:80"
RS1 = "2001:db8:24::21"
REAL_SERVERS = ("v6-rs1", "v6-rs2")
BIG = 64 * 1024
# ip6ip6 (IP protocol 41) dropped on a real server's LAN NIC: a network where only GUE or GRE pass
NO_IP6IP6 = ["INPUT", "-i", "eth0", "-p", "41", "-j", "DROP"]


@pytest.fixture(scope="module", name="v6")
def fixture_v6(lab):
    with beside(lab, SITE) as up:
        yield up


def _weights(lab):
    return hh.weights(lab, DIRECTOR, WEB)


def test_an_ipv6_client_is_answered_by_each_real_server_and_no_answer_crosses_the_director(v6):
    for service in ("web", "dns"):  # TCP and UDP
        report = traffic.run(v6, v6.site(SITE), count=12, service=service)
        assert report["ok"], traffic.describe(report)
        assert report["answers"] == {"v6-rs1": 6, "v6-rs2": 6}, service
        assert report["response_bytes_through_directors"] == 0
        assert report["directors"][DIRECTOR]["ipip"][0] > 0  # ip6ip6 packets (protocol 41) left the director
    # The router reaches the VIP by neighbour discovery: the director answers for it,
    # never a real server (whose ip6tnl0 holds it too).
    router = v6.hosts["v6-router"].netns
    mac = _mac(v6, DIRECTOR)
    neighbours = json.loads(subprocess.run(["ip", "-n", router, "-j", "-6", "neigh", "show", "2001:db8:24::88"],
                                           capture_output=True, text=True, check=True).stdout)
    assert [n.get("lladdr") for n in neighbours] == [mac]


def _mac(lab, host):
    code, out, err = lab.capture(host, "ip", "-j", "link", "show", "dev", "eth0")
    assert code == 0, err
    return json.loads(out)[0]["address"]


def test_a_second_apply_changes_nothing(v6):
    minions = v6.site_minions(SITE)
    assert changes_by_minion(v6.apply(minions=minions)) == {minion: {} for minion in minions}


def test_a_refused_ipv6_service_is_drained_and_comes_back(v6):
    block = ["ip6tables-legacy", "-I", "INPUT", "-p", "tcp", "--dport", "80", "-j", "REJECT",
             "--reject-with", "tcp-reset"]
    assert v6.capture("v6-rs1", *block)[0] == 0
    try:
        hh.wait_for(lambda: _weights(v6).get(RS1) == 0, TIMEOUT)
        assert _weights(v6)["2001:db8:24::22"] == 1
        report = traffic.run(v6, v6.site(SITE), count=6)
        assert report["failed"] == 0 and set(report["answers"]) == {"v6-rs2"}, traffic.describe(report)
    finally:
        v6.capture("v6-rs1", "ip6tables-legacy", "-D", *block[2:])
    hh.wait_for(lambda: _weights(v6).get(RS1) == 1, RESTORE)


def _big_post(lab, body, limit):
    """POST ``body`` (a file of BIG bytes) from the site's client to the VIP within
    ``limit`` seconds: ``(answered in full, what curl said)``."""
    client = lab.client_of(lab.hosts["v6-router"]).netns
    subprocess.run(["ip", "-n", client, "-6", "route", "flush", "cache"], check=False)  # a fresh path MTU
    proc = subprocess.run(["ip", "netns", "exec", client, "curl", "-sS", "-g", "-m", str(limit), "--data-binary",
                           f"@{body}", "http://[2001:db8:24::88]/"], capture_output=True, text=True, check=False)
    return proc.returncode == 0 and f"received {BIG} bytes" in proc.stdout, proc.stderr + proc.stdout[-160:]


def test_a_large_request_passes_with_packet_too_big_filtered_thanks_to_the_ipv6_mss_clamp(v6, tmp_path):
    body = tmp_path / "body"
    body.write_bytes(b"x" * BIG)
    with packet_too_big_dropped(v6.client_of(v6.hosts["v6-router"]).netns):
        answered, said = _big_post(v6, body, 20)
        assert answered, said
        # The control: without the VIP's source rules (the clamp) the same request stalls ...
        for rs in REAL_SERVERS:
            assert v6.capture(rs, "ip", "-6", "rule", "del", "pref", "1042")[0] == 0
        answered, said = _big_post(v6, body, 4)
        assert not answered, said
        # ... and one apply names the drift on each real server and repairs it.
        changes = changes_by_minion(v6.apply(minions=v6.site_minions(SITE)))
        for rs in REAL_SERVERS:
            assert changes[rs] == {"lvs-realserver-mss-routes": {
                "rule from 2001:db8:24::88/128 lookup 4242": {"old": None, "new": "priority 1042"}}}
        answered, said = _big_post(v6, body, 20)
        assert answered, said


def test_a_real_server_whose_ip6tnl0_is_down_is_found_by_the_directors_path_checks(v6):
    # The director's own checks go through ip6ip6 as its requests do: a real server whose
    # tunnel device is down answers nothing through it.
    assert v6.capture("v6-rs1", "ip", "link", "set", "ip6tnl0", "down")[0] == 0
    try:
        hh.wait_for(lambda: hh.path_verdicts(v6, DIRECTOR) == {"v6-rs1": ["dns", "web"]}, TIMEOUT)
        hh.wait_for(lambda: _weights(v6).get(RS1) == 0, TIMEOUT)
    finally:
        assert v6.capture("v6-rs1", "ip", "link", "set", "ip6tnl0", "up")[0] == 0
    hh.wait_for(lambda: hh.path_verdicts(v6, DIRECTOR) == {} and _weights(v6).get(RS1) == 1, RESTORE)


def test_over_gue_then_gre_with_ip6ip6_dropped_every_request_is_answered_at_each_kinds_mss(v6):
    minions = v6.site_minions(SITE)
    for rs in REAL_SERVERS:
        assert v6.capture(rs, "ip6tables-legacy", "-I", *NO_IP6IP6)[0] == 0
    try:
        for tunnel, counter, mss in (({"kind": "gue", "port": 6080}, "gue", 1388), ({"kind": "gre"}, "gre", 1396)):
            tree = site_tree(SITE)
            tree["tunnel"] = tunnel
            v6.set_pillar(tree, key=SITE)
            v6.apply(minions=minions)
            for rs in REAL_SERVERS:
                code, out, _ = v6.capture(rs, "ip", "-6", "route", "show", "table", "4242")
                assert code == 0 and f"advmss {mss}" in out, out
            # The director's path checks go through the new kind: every backend stays in.
            hh.wait_for(lambda: set(_weights(v6).values()) == {1}, TIMEOUT)
            report = traffic.run(v6, v6.site(SITE), count=8)
            assert report["ok"], traffic.describe(report)
            assert set(report["answers"]) == set(REAL_SERVERS)
            sent = report["directors"][DIRECTOR]
            assert sent[counter][0] > 0 and sent["ipip"][0] == 0, sent  # nothing as protocol 41
            code, out, _ = v6.capture(DIRECTOR, "ipvsadm-save", "-n")
            assert f"--tun-type {counter}" in out, out
    finally:
        for rs in REAL_SERVERS:
            v6.capture(rs, "ip6tables-legacy", "-D", *NO_IP6IP6)
        v6.reset_pillar(SITE)
        v6.apply(minions=minions)
    hh.wait_for(lambda: set(_weights(v6).values()) == {1}, TIMEOUT)


def test_a_real_server_that_leaves_is_cleaned_of_its_ipv6_setup_and_comes_back_in_one_apply(v6):
    # (The lab gives each host its LAN address and default route at boot: those are not the
    # pack's to take off.)
    predicted = clean(v6, "v6-rs1", test=True)
    assert "ip6tnl0 address 2001:db8:24::88/128" in predicted["lvs-clean-tunnel6"]
    network = predicted["lvs-clean-network"]
    assert any(name.startswith("rule from 2001:db8:24::88/128 lookup 4242") for name in network), network
    done = clean(v6, "v6-rs1")
    assert done["lvs-clean-tunnel6"] == predicted["lvs-clean-tunnel6"]
    assert "ip6tnl0 up" in done["lvs-clean-tunnel6"]  # down again, as its module made it
    for argv, gone in ((["ip", "-6", "addr", "show", "dev", "ip6tnl0"], "2001:db8:24::88"),
                       (["ip", "-6", "rule", "show"], "lookup 4242"),
                       (["ip", "-6", "route", "show", "table", "4242"], "advmss")):
        code, out, err = v6.capture("v6-rs1", *argv)
        assert code == 0 and gone not in out, (argv, out, err)
    assert clean(v6, "v6-rs1") == {}  # a second run changes nothing
    minions = v6.site_minions(SITE)
    v6.apply(minions=minions)
    hh.wait_for(lambda: set(_weights(v6).values()) == {1}, TIMEOUT)
    report = traffic.run(v6, v6.site(SITE), count=8)
    assert report["ok"] and set(report["answers"]) == set(REAL_SERVERS), traffic.describe(report)
