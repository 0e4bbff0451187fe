"""The router's director group on this host's kernel, in a namespace the test makes:
the ``ip`` commands of ``lvstun.dirgroup.plan`` are accepted, read back as wanted,
a dead director's removal moves only its own buckets, and a probe's mark reaches its
director's nexthop. (The director failover itself, with traffic: tests/lab.)"""

import copy
import json
import os
import shutil
import subprocess
import time

import pytest
import yaml

import lvstun.dirgroup as dg
import lvstun.site

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NS = f"lvsdg{os.getpid()}"


def _require(condition, why):
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(f"the director group cannot be tested on this CI machine: {why}")
        pytest.skip(why)


def ip(*args, check=True):
    proc = subprocess.run(["ip", "-n", NS, *map(str, args)], capture_output=True, text=True, check=False)
    if check:
        assert proc.returncode == 0, f"ip {' '.join(map(str, args))}: {proc.stderr}"
    return proc.stdout


@pytest.fixture(name="router")
def fixture_router():
    _require(os.geteuid() == 0, "namespaces need root")
    _require(shutil.which("ip"), "iproute2 is missing")
    subprocess.run(["ip", "netns", "add", NS], check=True)
    try:
        ip("link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")
        for dev in ("eth0", "eth0p", "lo"):
            ip("link", "set", dev, "up")
        ip("addr", "add", "10.10.24.1/24", "dev", "eth0")
        probe = subprocess.run(["ip", "-n", NS, "nexthop", "add", "id", "1", "group", "2", "type", "resilient"],
                               capture_output=True, text=True, check=False)
        _require("resilient" not in probe.stderr and "Unknown" not in probe.stderr,
                 f"this kernel or iproute2 has no resilient nexthop groups: {probe.stderr.strip()}")
        yield NS
    finally:
        subprocess.run(["ip", "netns", "del", NS], check=False)


def held():
    return dg.have(*(json.loads(ip("-j", *argv) or "[]") for argv in dg.READS))


def converge(spec, up=None):
    steps = dg.plan(dg.want(spec, up), held())
    for _, _, _, commands in steps:
        for argv in commands:
            ip(*argv)
    return steps


def buckets():
    out = json.loads(ip("-j", "nexthop", "bucket", "show", "id", 4200))
    return {b["bucket"]["index"]: b["bucket"]["nhid"] for b in out}


@pytest.fixture(name="spec")
def fixture_spec():
    with open(os.path.join(REPO, "pillar", "lvs", "two_vips.sls"), encoding="utf-8") as fh:
        tree = yaml.safe_load(fh)["lvs"]
    tree["directors"]["director3"] = {"address": "10.10.24.4"}
    return dg.spec(lvstun.site.parse({"lvs": tree}))


def test_the_group_is_made_read_back_and_left_alone(router, spec):
    ip("rule", "add", "fwmark", 7, "table", 7, "priority", 100)  # the operator's own
    assert converge(spec)
    assert held() == dg.want(spec)
    assert dg.plan(dg.want(spec), held()) == []  # idempotent
    # The VIPs go to the group; a probe marked for a director goes to that director alone.
    assert "nhid 4200" in ip("route", "show", "10.10.24.88/32")
    for member in spec["members"].values():
        assert f"via {member['via']} " in ip("route", "get", "10.10.24.88", "mark", member["id"])
    for _, _, _, commands in dg.plan({}, held()):  # the site back to one director
        for argv in commands:
            ip(*argv)
    assert held() == {}
    assert "fwmark 0x7 lookup 7" in ip("rule", "show")


def test_a_dead_director_moves_only_its_buckets_and_gets_idle_ones_back(router, spec):
    converge(spec)
    before = buckets()
    assert set(before.values()) == {4201, 4202, 4203}
    converge(spec, {"director2": False})
    after = buckets()
    assert set(after.values()) == {4201, 4203}
    assert {i: n for i, n in before.items() if n != 4202} == {i: after[i] for i, n in before.items() if n != 4202}
    converge(spec)  # back: idle buckets move to it, no other bucket changed hands
    back = buckets()
    assert 4202 in back.values()
    assert all(back[i] in (after[i], 4202) for i in back)


def _ipv6(spec):
    """``spec`` as an IPv6 site's group: the directors and VIPs in 2001:db8:24::/64."""
    six = copy.deepcopy(spec)
    six["family"] = 6
    for member in six["members"].values():
        member["via"] = "2001:db8:24::" + member["via"].rsplit(".", 1)[1]
    six["vips"] = ["2001:db8:24::" + vip.split("/")[0].rsplit(".", 1)[1] + "/128" for vip in spec["vips"]]
    return six


def test_an_ipv6_group_is_made_read_back_marks_its_probes_and_is_taken_away(router, spec):
    ip("-6", "addr", "add", "2001:db8:24::1/64", "dev", "eth0", "nodad")
    ip("-6", "rule", "add", "fwmark", 7, "table", 7, "priority", 100)  # the operator's own
    six = _ipv6(spec)
    assert converge(six)
    assert held() == dg.want(six)
    assert any(name.startswith("route6 2001:db8:24::88/128") for name in held())
    assert dg.plan(dg.want(six), held()) == []  # idempotent
    assert "nhid 4200" in ip("-6", "route", "show", "2001:db8:24::88/128")
    for member in six["members"].values():
        assert f"via {member['via']} " in ip("-6", "route", "get", "2001:db8:24::88", "mark", member["id"])
    converge(six, {"director2": False})  # a dead director leaves the IPv6 group as it leaves an IPv4 one
    assert set(buckets().values()) == {4201, 4203}
    for _, _, _, commands in dg.plan({}, held()):  # the site back to one director
        for argv in commands:
            ip(*argv)
    assert held() == {}
    assert "fwmark 0x7 lookup 7" in ip("-6", "rule", "show")


def test_a_site_that_changes_family_gets_the_other_familys_group_in_one_plan(router, spec):
    ip("-6", "addr", "add", "2001:db8:24::1/64", "dev", "eth0", "nodad")
    converge(spec)
    six = _ipv6(spec)
    converge(six)
    assert held() == dg.want(six)  # the IPv4 routes and rules gone with the IPv4 nexthops
    converge(spec)
    assert held() == dg.want(spec)


def _two_directors(idle_timer):
    with open(os.path.join(REPO, "pillar", "lvs", "two_vips.sls"), encoding="utf-8") as fh:
        tree = yaml.safe_load(fh)["lvs"]
    tree["ha"] = {"idle_timer": idle_timer}
    return dg.spec(lvstun.site.parse({"lvs": tree}))


def _directors_of_flows(count):
    """The director each of ``count`` UDP flows to the VIP is routed to now (a route
    lookup is a packet's: with several members it marks the flow's bucket busy)."""
    out = []
    for sport in range(2000, 2000 + count):
        route = ip("route", "get", "10.10.24.88", "ipproto", "udp", "sport", sport, "dport", 53)
        out.append(route.split(" via ", 1)[1].split()[0])
    return out


def _converge_held(spec, up=None):
    now = held()
    for _, _, _, commands in dg.plan(dg.want(spec, up, held=now), now):
        for argv in commands:
            ip(*argv)


def test_a_director_joining_a_group_of_one_takes_no_bucket_in_use(router):
    subprocess.run(["ip", "netns", "exec", NS, "sysctl", "-qw", "net.ipv4.fib_multipath_hash_policy=1"], check=True)
    spec = _two_directors(idle_timer=2)
    alone = {"director2": False}
    # Why: in a group of one the kernel marks no bucket busy, so a director added at its
    # full weight takes its share at once, buckets in use included.
    converge(spec, alone)
    time.sleep(2.5)  # every bucket idle
    assert set(_directors_of_flows(16)) == {"10.10.24.2"}
    converge(spec)  # the director at its full weight at once (what the pack did)
    assert "10.10.24.3" in _directors_of_flows(16), "no flow moved: the kernel marked buckets busy"
    # The pack: into a group of one at weight 1 (no bucket) for a round, then its weight.
    converge(spec, alone)
    time.sleep(2.5)
    _converge_held(spec)
    assert held()["group 4200"].startswith("4201,255/4202 ")
    assert set(_directors_of_flows(16)) == {"10.10.24.2"}  # in use now, so busy buckets
    _converge_held(spec)
    assert held() == dg.want(spec)  # both at their full weight
    assert set(_directors_of_flows(16)) == {"10.10.24.2"}  # no flow in use moved
    assert 4202 in buckets().values()  # the idle buckets did
