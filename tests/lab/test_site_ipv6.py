"""An IPv6 site on real kernels (pillar/lvs/ipv6.sls: a linux router, one director, two
real servers, ip6ip6 tunnels), deployed by ``state.apply`` beside the lab's seed (its own
LAN and client, ``Lab.add_site``) and taken away at the end, so that the next modules
find the seed's lab as it was.

Every check reads the hosts with the kernel's own tools (ipvsadm, ip, ip6tables
counters) or sends traffic from the site's client: never with the pack's own readers.
"""

import json
import subprocess
import sys
import time

import pytest

from lvs_lab import health as hh
from lvs_lab import lab as lab_mod
from lvs_lab import traffic
from lvs_lab.health import RESTORE, TIMEOUT
from tests.lab.site_helpers import changes_by_minion, packet_too_big_dropped, site_tree

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
    began = time.monotonic()
    lab.add_site(SITE)  # boots its kernels, state.apply on its minions, waits until it serves
    sys.stderr.write(f"\nsite {SITE} up beside the seed's in {time.monotonic() - began:.0f} s\n")
    yield lab
    lab.remove_site(SITE)
    assert lab_mod.Lab().extra_sites == []


def _weights(lab):
    return hh.weights(lab, DIRECTOR, WEB)


def test_an_ipv6_client_is_answered_by_each_real_server_and_no_answer_crosses_the_director(v6):
    report = traffic.run(v6, v6.site(SITE), count=12)
    assert report["ok"], traffic.describe(report)
    assert report["answers"] == {"v6-rs1": 6, "v6-rs2": 6}
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


def test_a_large_request_passes_with_packet_too_big_filtered_at_the_ipv6_mss(v6, tmp_path):
    client = v6.client_of(v6.hosts["v6-router"]).netns
    body = tmp_path / "body"
    body.write_bytes(b"x" * BIG)
    with packet_too_big_dropped(client):
        proc = subprocess.run(["ip", "netns", "exec", client, "curl", "-sS", "-g", "-m", "20", "--data-binary",
                               f"@{body}", "http://[2001:db8:24::88]/"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and f"received {BIG} bytes" in proc.stdout, proc.stderr + proc.stdout


@pytest.mark.parametrize(("tunnel", "counter", "mss"), [({"kind": "gue", "port": 6080}, "gue", 1388),
                                                        ({"kind": "gre"}, "gre", 1396)])
def test_over_gue_or_gre_with_ip6ip6_dropped_every_request_is_answered_at_that_kinds_mss(v6, tunnel, counter, mss):
    tree = site_tree(SITE)
    tree["tunnel"] = tunnel
    v6.set_pillar(tree, key=SITE)
    minions = v6.site_minions(SITE)
    try:
        v6.apply(minions=minions)
        for rs in REAL_SERVERS:
            assert v6.capture(rs, "ip6tables-legacy", "-I", *NO_IP6IP6)[0] == 0
            code, out, _ = v6.capture(rs, "ip", "-6", "route", "show", "table", "4242")
            assert code == 0 and f"advmss {mss}" in out, out
        # The directors' path checks go through the new kind: every backend stays in.
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
