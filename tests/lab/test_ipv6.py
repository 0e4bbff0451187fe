"""IPv6 on the lab's kernels, through the pack's execution modules: a real server's
ip6ip6 device ``ip6tnl0`` holding an IPv6 VIP (``ipip``), IPv6 LAN addresses, the IPv6
default route and the VIP source routes that clamp the MSS (``lvs_net``), and an IPv6
IPVS service whose tunnel destination is that real server (``ipvs``).

The seed's site stays as it is beside (IPv4); the client is the router's namespace, on
the LAN. Every check reads the hosts with the kernel's own tools (ip, ipvsadm) or sends
traffic: never with the pack's own readers.
"""

import json
import os
import subprocess
import sys
import time

import pytest

from tests.lab.ipvs_helpers import call
from tests.lab.site_helpers import packet_too_big_dropped

LAN6 = "fd00:24::/64"
ROUTER6, DIRECTOR6, RS6, VIP6 = "fd00:24::1", "fd00:24::2", "fd00:24::21", "fd00:24::88"
SERVICE = f"tcp:[{VIP6}]:80"
TABLE = 4242
# On a 1500-byte LAN: 1500 - 40 (the outer IPv6 header of ip6ip6) - 60 (IPv6 and TCP).
MSS6 = 1400
BIG = 64 * 1024


def _ok(lab, host, *argv):
    code, out, err = lab.capture(host, *argv)
    assert code == 0, f"{host}: {' '.join(argv)}: {err or out}"
    return out


def _originals(lab, host):
    cachedir = call(lab, "config.get", "cachedir", minion=host)
    return os.path.join(cachedir, "lvs", "host-originals.json")


@pytest.fixture(scope="module", name="v6")
def fixture_v6(lab):
    """rs1 a real server for VIP6 over ip6ip6, the director an IPv6 IPVS service for it,
    both with IPv6 LAN addresses; everything taken off again at the end, and the hosts'
    records of what the pack changed put back as they were."""
    records = {}
    for host in ("director", "rs1"):
        path = _originals(lab, host)
        with open(path, encoding="utf-8") as fh:  # on the host folder the kernel mounts
            records[path] = fh.read()
    router_ns = lab.hosts["router"].netns
    subprocess.run(["ip", "-n", router_ns, "-6", "addr", "add", f"{ROUTER6}/64", "dev", "eth0", "nodad"], check=True)
    try:
        assert call(lab, "lvs_net.apply", minion="rs1", addresses=json.dumps({"eth0": [f"{RS6}/64"]}),
                    gateway=ROUTER6, vip_routes=json.dumps({
                        "vips": [VIP6], "table": TABLE, "advmss": MSS6, "gateway": ROUTER6, "interface": "eth0",
                        "subnet": LAN6}))
        assert call(lab, "ipip.present", json.dumps([VIP6]), device="ip6tnl0", minion="rs1")
        assert call(lab, "lvs_net.apply", minion="director", addresses=json.dumps({"eth0": [f"{DIRECTOR6}/64"]}),
                    vips=json.dumps({"interface": "eth0", "addresses": [f"{VIP6}/128"], "subnet": LAN6}))
        assert call(lab, "ipvs.add_service", SERVICE, scheduler="rr") is True
        assert call(lab, "ipvs.add_dest", SERVICE, f"[{RS6}]:80") is True
        for host in ("director", "rs1"):  # the LAN addresses past duplicate address detection
            _wait_no_tentative(lab, host)
        yield lab
    finally:
        subprocess.run(["ip", "-n", router_ns, "-6", "addr", "del", f"{ROUTER6}/64", "dev", "eth0"], check=False)
        subprocess.run(["ip", "-n", router_ns, "-6", "neigh", "flush", "dev", "eth0"], check=False)
        lab.capture("director", "ipvsadm", "-D", "-t", f"[{VIP6}]:80")
        for address in (f"{VIP6}/128", f"{DIRECTOR6}/64"):
            lab.capture("director", "ip", "-6", "addr", "del", address, "dev", "eth0")
        call(lab, "ipip.absent", device="ip6tnl0", minion="rs1")
        lab.capture("rs1", "sh", "-c", f"ip -6 rule del pref 1042; ip -6 route flush table {TABLE}; "
                                       f"ip -6 route del default; ip -6 addr del {RS6}/64 dev eth0")
        for path, text in records.items():
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)


def _wait_no_tentative(lab, host):
    deadline = time.monotonic() + 10
    while _ok(lab, host, "ip", "-6", "addr", "show", "dev", "eth0", "tentative").strip():
        assert time.monotonic() < deadline, f"{host}: an address stays tentative"
        time.sleep(0.2)


def _get(lab, path="/", data=None, limit=10):
    """An HTTP request from the router's namespace to the VIP: ``(exit code, output)``."""
    argv = ["ip", "netns", "exec", lab.hosts["router"].netns, "curl", "-sS", "-g", "-m", str(limit)]
    if data is not None:
        argv += ["--data-binary", "@-"]
    proc = subprocess.run([*argv, f"http://[{VIP6}]{path}"], input=data, capture_output=True, check=False)
    return proc.returncode, (proc.stdout + proc.stderr).decode(errors="replace")


def _link_stats(lab, host, device):
    stats = json.loads(_ok(lab, host, "ip", "-j", "-s", "link", "show", "dev", device))[0]["stats64"]
    return stats["rx"]["packets"]


def test_an_ipv6_client_is_answered_by_the_real_server_over_ip6ip6_bypassing_the_director(v6):
    before = _link_stats(v6, "rs1", "ip6tnl0")
    code, said = _get(v6)
    assert code == 0 and said == "served by rs1\n", said
    assert _link_stats(v6, "rs1", "ip6tnl0") > before  # the request came in through the tunnel
    # -> [fd00:24::21]:80  Conns InPkts OutPkts InBytes OutBytes: requests in, no answer
    # through (the kernel sums its per-CPU counters every 2 s)
    deadline = time.monotonic() + 10
    while True:
        stats = _ok(v6, "director", "ipvsadm", "-Ln", "--stats", "-t", f"[{VIP6}]:80")
        dest = next(line.split() for line in stats.splitlines() if f"[{RS6}]:80" in line)
        if int(dest[2]) >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert int(dest[2]) >= 1 and int(dest[3]) > 0 and int(dest[4]) == 0, stats
    # The VIP is the director's on the LAN (neighbour discovery): never rs1's, whose
    # ip6tnl0 holds it too.
    director_mac = json.loads(_ok(v6, "director", "ip", "-j", "link", "show", "dev", "eth0"))[0]["address"]
    neighbours = subprocess.run(["ip", "-n", v6.hosts["router"].netns, "-j", "-6", "neigh", "show", VIP6],
                                capture_output=True, text=True, check=True).stdout
    assert [n.get("lladdr") for n in json.loads(neighbours)] == [director_mac]


def test_the_ipv6_setup_is_the_kernels_and_a_second_apply_changes_nothing(v6):
    assert "fd00:24::88/128" in _ok(v6, "rs1", "ip", "-6", "addr", "show", "dev", "ip6tnl0")
    assert f"default via {ROUTER6} dev eth0" in _ok(v6, "rs1", "ip", "-6", "route", "show", "default")
    assert f"advmss {MSS6}" in _ok(v6, "rs1", "ip", "-6", "route", "show", "table", str(TABLE), "default")
    assert f"from {VIP6} lookup {TABLE}" in _ok(v6, "rs1", "ip", "-6", "rule", "show", "pref", "1042")
    assert call(v6, "ipip.check", json.dumps([VIP6]), device="ip6tnl0", minion="rs1") == []
    assert call(v6, "lvs_net.check", minion="rs1", addresses=json.dumps({"eth0": [f"{RS6}/64"]}), gateway=ROUTER6,
                vip_routes=json.dumps({"vips": [VIP6], "table": TABLE, "advmss": MSS6, "gateway": ROUTER6,
                                       "interface": "eth0", "subnet": LAN6})) == []
    assert call(v6, "lvs_net.check", minion="director", vips=json.dumps(
        {"interface": "eth0", "addresses": [f"{VIP6}/128"], "subnet": LAN6})) == []


def test_a_large_ipv6_request_passes_with_packet_too_big_filtered_thanks_to_the_mss_clamp(v6):
    netns = v6.hosts["router"].netns
    with packet_too_big_dropped(netns):
        code, said = _get(v6, data=b"x" * BIG, limit=20)
        assert code == 0 and f"received {BIG} bytes" in said, said
        # The control: without the VIP's source rule (the clamp) the same request stalls.
        _ok(v6, "rs1", "ip", "-6", "rule", "del", "pref", "1042")
        subprocess.run(["ip", "-n", netns, "-6", "route", "flush", "cache"], check=False)
        code, said = _get(v6, data=b"x" * BIG, limit=4)
        assert code != 0, said
        # One apply names the drift and repairs it.
        repaired = call(v6, "lvs_net.apply", minion="rs1", vip_routes=json.dumps({
            "vips": [VIP6], "table": TABLE, "advmss": MSS6, "gateway": ROUTER6, "interface": "eth0",
            "subnet": LAN6}))
        assert [(d["kind"], d["object"]) for d in repaired] == [("rule", f"from {VIP6}/128 lookup {TABLE}")]


def test_ipip_absent_takes_the_ipv6_vip_off_and_sets_ip6tnl0_back(v6):
    # (The fixture takes the rest away; this undo is the module's own.)
    undone = call(v6, "ipip.absent", device="ip6tnl0", minion="rs1")
    assert ("address", "ip6tnl0") in [(d["kind"], d["object"]) for d in undone]
    assert VIP6 not in _ok(v6, "rs1", "ip", "-6", "addr", "show", "dev", "ip6tnl0")
    assert call(v6, "ipip.check_absent", device="ip6tnl0", minion="rs1") == []
    assert call(v6, "ipip.present", json.dumps([VIP6]), device="ip6tnl0", minion="rs1")  # back for the others


def _path_checks(lab, probes):
    """``lvstun.pathcheck.run`` on the director from its IPv6 address: ``{key: [(ok, reason)]}``."""
    utils = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "_utils")
    script = (f"import json, sys; sys.path.insert(0, {utils!r}); import lvstun.pathcheck as pc; "
              f"print(json.dumps(pc.run({DIRECTOR6!r}, {{key: pc.Probe(*args) for key, args in "
              f"json.loads(sys.argv[1]).items()}})))")
    return json.loads(_ok(lab, "director", sys.executable, "-c", script, json.dumps(probes)))


def test_a_directors_path_checks_go_to_the_ipv6_vip_over_ip6ip6(v6):
    outcomes = _path_checks(v6, {"http": ["http", RS6, VIP6, 80, 2.0], "tcp": ["tcp", RS6, VIP6, 80, 2.0],
                                 "closed": ["tcp", RS6, VIP6, 81, 2.0, 1]})
    assert outcomes["http"] == [[True, "HTTP 200 through the tunnel"]]
    assert outcomes["tcp"] == [[True, "connected through the tunnel"]]
    assert outcomes["closed"] == [[False, "connection refused through the tunnel"]]
    # The real server's ip6ip6 device down: the check through it hears nothing.
    _ok(v6, "rs1", "ip", "link", "set", "ip6tnl0", "down")
    try:
        silent = _path_checks(v6, {"http": ["http", RS6, VIP6, 80, 1.0]})["http"]
    finally:
        _ok(v6, "rs1", "ip", "link", "set", "ip6tnl0", "up")
    assert silent == [[False, "no SYN-ACK within 1s (silent)"]]
