"""The ipvs execution module against the director's real kernel, through the lab's
salt-master; ipvsadm inside the director is the independent witness."""

import errno
import json
import os
import sys
import time

import pytest

from tests.lab.ipvs_helpers import call, clear, ipvsadm_save

# The health beacons would re-weight or fail this module's own tables and tunnels.
pytestmark = pytest.mark.usefixtures("health_paused")

SVC = "tcp:10.10.24.88:80"
UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "_utils")


@pytest.fixture(name="table")
def fixture_table(lab):
    clear(lab)
    yield lab
    clear(lab)


def test_add_services_and_tunnel_dests_as_ipvsadm_sees_them(table):
    assert call(table, "ipvs.add_service", SVC, scheduler="wrr") is True
    for last, weight in ((21, 1), (22, 10), (23, 0)):
        assert call(table, "ipvs.add_dest", SVC, f"10.10.24.{last}:80", weight=weight) is True
    assert ipvsadm_save(table) == sorted([
        "-A -t 10.10.24.88:80 -s wrr",
        "-a -t 10.10.24.88:80 -r 10.10.24.21:80 -i -w 1 --tun-type ipip",
        "-a -t 10.10.24.88:80 -r 10.10.24.22:80 -i -w 10 --tun-type ipip",
        "-a -t 10.10.24.88:80 -r 10.10.24.23:80 -i -w 0 --tun-type ipip",  # weight 0 is kept
    ])
    (svc,) = call(table, "ipvs.list")
    assert (svc["protocol"], svc["address"], svc["port"], svc["scheduler"]) == ("tcp", "10.10.24.88", 80, "wrr")
    assert [(d["address"], d["forward"], d["tun_type"], d["weight"]) for d in svc["destinations"]] == [
        ("10.10.24.21", "tunnel", "ipip", 1), ("10.10.24.22", "tunnel", "ipip", 10),
        ("10.10.24.23", "tunnel", "ipip", 0)]
    assert set(svc["stats"]) >= {"conns", "inpkts", "inbytes", "outbytes", "cps"}
    assert "TCP  10.10.24.88:80 wrr" in call(table, "ipvs.listing")


def test_other_kinds_of_service_and_dest(table):
    call(table, "ipvs.add_service", "udp:10.10.24.89:53", scheduler="sh", flags='["sh-port"]', persistent=300)
    call(table, "ipvs.add_service", "fwmark:7", scheduler="rr")
    assert call(table, "ipvs.add_service", "tcp:[2001:db8::88]:443", scheduler="rr") is True
    call(table, "ipvs.add_dest", "udp:10.10.24.89:53", "10.10.24.21:53", tun_type="gue", tun_port=6080)
    call(table, "ipvs.add_dest", "udp:10.10.24.89:53", "10.10.24.22:53", tun_type="gue", tun_port=6081,
         tun_flags='["remcsum"]')
    call(table, "ipvs.add_dest", "udp:10.10.24.89:53", "10.10.24.23:53", tun_type="gre", tun_flags='["csum"]')
    call(table, "ipvs.add_dest", "fwmark:7", "10.10.24.22:0", forward="route", weight=3)
    save = ipvsadm_save(table)
    assert "-A -u 10.10.24.89:53 -s sh -p 300 -b sh-port" in save
    assert [line for line in save if line.startswith("-a -u")] == [
        "-a -u 10.10.24.89:53 -r 10.10.24.21:53 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum",
        "-a -u 10.10.24.89:53 -r 10.10.24.22:53 -i -w 1 --tun-type gue --tun-port 6081 --tun-remcsum",
        "-a -u 10.10.24.89:53 -r 10.10.24.23:53 -i -w 1 --tun-type gre --tun-csum"]  # the kernel's flag bits
    assert "-A -f 7 -s rr" in save and "-a -f 7 -r 10.10.24.22:0 -g -w 3" in save
    assert "-A -t [2001:db8::88]:443 -s rr" in save
    by_spec = {f"{s['protocol'] or 'fwmark'}": s for s in call(table, "ipvs.list")}
    gue, remcsum, gre = by_spec["udp"]["destinations"]
    assert (gue["tun_type"], gue["tun_port"]) == ("gue", 6080)  # the port is not byte-swapped
    assert (remcsum["tun_flags"], gre["tun_type"], gre["tun_flags"]) == (["remcsum"], "gre", ["csum"])
    assert by_spec["udp"]["persistent"] == 300 and by_spec["udp"]["flags"] == ["sched2"]


def test_edit_and_set_weight_keep_the_tunnel(table):
    call(table, "ipvs.add_service", SVC, scheduler="rr")
    call(table, "ipvs.add_dest", SVC, "10.10.24.21:80", weight=5, u_threshold=100)
    call(table, "ipvs.set_weight", SVC, "10.10.24.21:80", 0)
    call(table, "ipvs.edit_service", SVC, scheduler="wlc")
    assert ipvsadm_save(table) == sorted([
        "-A -t 10.10.24.88:80 -s wlc",
        "-a -t 10.10.24.88:80 -r 10.10.24.21:80 -i -w 0 --tun-type ipip",  # still -i, not DR
    ])
    # ipvsadm-save omits thresholds; its listing shows them: the threshold survived.
    code, out, _ = table.capture("director", "ipvsadm", "-Ln", "--thresholds")
    assert code == 0 and "10.10.24.21:80               100        0" in out


def test_delete_dest_and_service(table):
    call(table, "ipvs.add_service", SVC)
    call(table, "ipvs.add_dest", SVC, "10.10.24.21:80")
    call(table, "ipvs.delete_dest", SVC, "10.10.24.21:80")
    assert ipvsadm_save(table) == ["-A -t 10.10.24.88:80 -s wlc"]
    call(table, "ipvs.delete_service", SVC)
    assert ipvsadm_save(table) == []
    assert call(table, "ipvs.get_service", SVC) is None


def test_kernel_errors_are_explained(table):
    call(table, "ipvs.add_service", SVC)
    assert call(table, "ipvs.add_service", SVC) == f"ERROR: add service {SVC}: it exists already"
    assert call(table, "ipvs.delete_service", "tcp:10.10.24.99:80") == (
        "ERROR: delete service tcp:10.10.24.99:80: no such virtual service")
    assert call(table, "ipvs.add_service", "tcp:10.10.24.99:80", scheduler="nosuch") == (
        "ERROR: add service tcp:10.10.24.99:80: scheduler 'nosuch' is not available: load ip_vs_nosuch")


def test_bad_arguments_are_rejected_before_the_kernel(table):
    for ret in (
        call(table, "ipvs.add_service", "tcp:10.10.24.300:80"),
        call(table, "ipvs.add_dest", SVC, "10.10.24.21", weight=1),
        call(table, "ipvs.add_dest", SVC, "10.10.24.21:80", weight=70000),
        call(table, "ipvs.add_dest", SVC, "10.10.24.21:80", forward="carrier-pigeon"),
    ):
        assert "ERROR executing" in ret and ("is not" in ret or "must be" in ret), ret
    assert ipvsadm_save(table) == []


def test_drain_waits_for_zero_then_deletes(table):
    call(table, "ipvs.add_service", SVC)
    call(table, "ipvs.add_dest", SVC, "10.10.24.21:80", weight=4)
    ret = call(table, "ipvs.drain", SVC, "10.10.24.21:80", timeout=5, delete=True)
    assert ret["drained"] is True and ret["deleted"] is True and ret["active"] == 0
    assert ipvsadm_save(table) == ["-A -t 10.10.24.88:80 -s wlc"]


def test_timeouts_round_trip(table):
    before = call(table, "ipvs.get_timeouts")
    assert call(table, "ipvs.set_timeouts", tcp=901, udp=302) == {"tcp": 901, "tcpfin": before["tcpfin"], "udp": 302}
    code, out, _ = table.capture("director", "ipvsadm", "-L", "--timeout")
    assert code == 0 and f"901 {before['tcpfin']} 302" in out
    call(table, "ipvs.set_timeouts", tcp=before["tcp"], udp=before["udp"])


def _with_tun_type(text):
    """ipvsadm 1.31 prints the tunnel type of -i destinations."""
    return [line + " --tun-type ipip" if " -i " in line else line for line in text.splitlines()]


def _write(lab, path, text):
    code, _, err = lab.capture("director", "sh", "-c", f"cat > {path} <<'EOF'\n{text}EOF")
    assert code == 0, err


def test_save_restore_round_trip_and_bad_text_changes_nothing(table):
    text = ("-A -t 10.10.24.88:80 -s rr\n-a -t 10.10.24.88:80 -r 10.10.24.21:80 -i -w 2\n"
            "-A -u 10.10.24.88:53 -s wrr\n-a -u 10.10.24.88:53 -r 10.10.24.22:53 -i -w 0\n")
    _write(table, "/tmp/rules.save", text)
    assert call(table, "ipvs.restore", path="/tmp/rules.save") == {"services": 2, "destinations": 2}
    assert ipvsadm_save(table) == sorted(_with_tun_type(text))
    assert sorted(call(table, "ipvs.save").splitlines()) == sorted(text.splitlines())
    _write(table, "/tmp/bad.save", text.replace("-w 2", "-w 9") + "-a -t 10.10.24.77:80 -r 10.10.24.21:80 -i\n")
    assert "line 5: server for tcp:10.10.24.77:80" in call(table, "ipvs.restore", path="/tmp/bad.save")
    assert ipvsadm_save(table) == sorted(_with_tun_type(text))  # -w 9 was not applied either


ZERO_SVC = "tcp:10.10.24.88:8080"  # nothing listens there: the connections end at once (RST)


def test_zero_clears_counters(table, lab):
    # A port of its own: IPVS keeps finished connections (and revives a deleted
    # destination with them); other tests must not inherit this test's connections.
    call(table, "ipvs.add_service", ZERO_SVC, scheduler="rr")
    for last in (21, 22, 23):
        call(table, "ipvs.add_dest", ZERO_SVC, f"10.10.24.{last}:8080")
    # IPVS sees only packets for a local address: the director's role state holds the
    # VIP; hold it for this test if the role was not applied. Connect from the router.
    held = "10.10.24.88/32" in lab.capture("director", "ip", "-o", "addr", "show", "dev", "eth0")[1]
    if not held:
        assert lab.capture("director", "ip", "addr", "add", "10.10.24.88/32", "dev", "eth0")[0] == 0
    try:
        code, _, err = lab.capture("router", "python3", "-c",
                                   "import socket\nfor i in range(3):\n"
                                   " s=socket.socket(); s.settimeout(1)\n"
                                   " try: s.connect(('10.10.24.88', 8080))\n"
                                   " except OSError: pass\n s.close()")
        assert code == 0, err
        # The kernel folds its per-CPU counters into the published ones on its 2 s rate
        # estimator tick: read until they show (bounded), then zero.
        deadline = time.monotonic() + 10
        while call(table, "ipvs.list")[0]["stats"]["conns"] < 3 and time.monotonic() < deadline:
            time.sleep(1)
        assert call(table, "ipvs.list")[0]["stats"]["conns"] >= 3
        assert call(table, "ipvs.zero") is True
        assert call(table, "ipvs.list")[0]["stats"]["conns"] == 0
    finally:
        if not held:
            lab.capture("director", "ip", "addr", "del", "10.10.24.88/32", "dev", "eth0")


_BIG_PLAN = """
import json, sys
sys.path.insert(0, {utils!r})
import lvstun.ipvsclient
svc = {{"af": 4, "protocol": "tcp", "address": "10.10.24.88", "port": 80, "fwmark": None, "scheduler": "rr",
        "flags": [], "persistent": 0, "netmask": None}}
def dest(i, weight=1):
    return {{"address": f"10.20.{{i // 250}}.{{i % 250 + 1}}", "port": 80, "forward": "tunnel", "weight": weight,
             "u_threshold": 0, "l_threshold": 0, "tun_type": "ipip", "tun_port": 0, "tun_flags": []}}
ops = [("add_service", svc)] + [("add_dest", svc, dest(i)) for i in range(1500)]
ops.insert(100, ("add_dest", svc, dest(50)))                                   # exists already
ops.append(("add_dest", svc, dest(1400)))                                      # exists already
ops.append(("edit_dest", {{**svc, "address": "10.10.24.99"}}, dest(1, 5)))     # no such service
ops.append(("edit_dest", svc, dest(7, 9)))
with lvstun.ipvsclient.Client() as ipvs:
    failed = ipvs.apply(ops)
    records = ipvs.read(stats=True)
    counters = ipvs.read_counters()  # what a scrape reads: a dump of many datagrams
import lvstun.genl
by_records = {{(s["address"], d["address"]): lvstun.genl.counters(d) for s in records for d in s["destinations"]}}
by_counters = {{(s["address"], d[0]): tuple(d) for s, dests in counters for d in dests}}
print(json.dumps({{"ops": len(ops), "failed": [[step, code] for step, _, code in failed],
                  "dests": len(by_records), "same": by_records == by_counters}}))
"""


def test_a_plan_of_many_batches_reports_exactly_the_steps_the_kernel_refused(table):
    """1,505 steps go out in several batches without acknowledgements: the kernel's
    error reports name exactly the three refused steps (in the first batch, the last,
    and a missing service), and every other step is in the table."""
    code, out, err = table.capture("director", sys.executable, "-c", _BIG_PLAN.format(utils=UTILS))
    assert code == 0, err
    result = json.loads(out)
    assert result["ops"] == 1505
    # Read back: 1,500 destinations (a dump of many datagrams) as records and as a
    # scrape's counters, the same.
    assert (result["dests"], result["same"]) == (1500, True)
    assert result["failed"] == [["add destination 10.20.0.51:80 of tcp:10.10.24.88:80", errno.EEXIST],
                                ["add destination 10.20.5.151:80 of tcp:10.10.24.88:80", errno.EEXIST],
                                ["edit destination 10.20.0.2:80 of tcp:10.10.24.99:80", errno.ESRCH]]
    lines = ipvsadm_save(table)
    assert len(lines) == 1501 and "-A -t 10.10.24.88:80 -s rr" in lines
    assert "-a -t 10.10.24.88:80 -r 10.20.0.8:80 -i -w 9 --tun-type ipip" in lines  # the step after the errors
    assert sum(" -w 1 " in line for line in lines) == 1499


_CHAINS = """
import collections, json, sys
sys.path.insert(0, {utils!r})
import lvstun.dumpchain, lvstun.genl, lvstun.ipvsclient
SIZES = [0, 1, 10, 300, 0, 0, 3, 10, 0, 40, 10, 10, 10, 0] + [10] * 30 + [1]
def svc(i):
    return {{"af": 4, "protocol": "tcp", "address": "10.10.24.88", "port": 1000 + i, "fwmark": None,
             "scheduler": "rr", "flags": [], "persistent": 0, "netmask": None}}
def dest(i, j):
    return {{"address": f"10.20.{{j // 250}}.{{j % 250 + 1}}", "port": 80, "forward": "tunnel", "weight": i,
             "u_threshold": 0, "l_threshold": 0, "tun_type": "ipip", "tun_port": 0, "tun_flags": []}}
ops = []
for i, size in enumerate(SIZES):
    ops += [("add_service", svc(i))] + [("add_dest", svc(i), dest(i, j)) for j in range(size)]
runs = collections.Counter()
run = lvstun.dumpchain.DumpChains.run
def counted(self, sock, requests):
    done, clean = run(self, sock, requests)
    runs["chains"] += 1
    runs["unclean"] += not clean
    return done, clean
lvstun.dumpchain.DumpChains.run = counted
with lvstun.ipvsclient.Client() as ipvs:
    assert ipvs.apply(ops) == []
    chained = ipvs.read_counters()
    records = ipvs.read(stats=True)
with lvstun.ipvsclient.Client() as ipvs:
    ipvs._chains = False  # no io_uring: one dump at a time
    single = ipvs.read_counters()
def broken(self, sock, requests):
    raise OSError(12, "io_uring_enter: Cannot allocate memory")
lvstun.dumpchain.DumpChains.run = broken
with lvstun.ipvsclient.Client() as ipvs:
    fallen = ipvs.read_counters()  # the ring fails: the rest one at a time
    runs["fell back"] = ipvs._chains is False
def by_port(table):
    return {{svc["port"]: sorted(dests) for svc, dests in table}}
as_counters = [(s, [lvstun.genl.counters(d) for d in s["destinations"]]) for s in records]
print(json.dumps({{"sizes": sorted(len(d) for _, d in chained) == sorted(SIZES),
                  "same": by_port(chained) == by_port(single), "records": by_port(chained) == by_port(as_counters),
                  "after a failure": by_port(fallen) == by_port(single),
                  **runs}}))
"""


def test_destination_dumps_run_in_io_uring_chains_read_what_one_by_one_reads(table):
    """45 services of 0 to 300 destinations read in io_uring chains (a chain stops at an
    empty service, a service of several datagrams is read the usual way on a new
    socket) give what one dump at a time gives, as counters and as records; and so does
    a client whose ring fails."""
    code, out, err = table.capture("director", sys.executable, "-c", _CHAINS.format(utils=UTILS))
    assert code == 0, err
    result = json.loads(out)
    assert (result["sizes"], result["same"], result["records"]) == (True, True, True), result
    # A ring that fails (io_uring_enter refused) leaves the client reading one dump at a time.
    assert (result["after a failure"], result["fell back"]) == (True, True), result
    # Chains ran (twice: the counters and the records), and the 300-destination service,
    # several datagrams, left its chain unclean each time.
    assert result["chains"] >= 2 * 6 and result["unclean"] == 2, result


_AS_WANTED = """
import json, subprocess, sys
sys.path.insert(0, {utils!r})
import lvstun.genl, lvstun.ipvs, lvstun.ipvsclient
TABLE = {{
    "tcp:10.10.24.88:80": {{"scheduler": "wrr", "destinations": {{
        "10.10.24.21:80": {{"weight": 3}}, "10.10.24.22:8080": {{"weight": 0, "u_threshold": 100, "l_threshold": 10}},
        "10.10.24.23:80": {{"tun_type": "gue", "tun_port": 6080, "tun_flags": ["csum"]}},
        "10.10.24.24:80": {{"tun_type": "gre", "tun_flags": ["nocsum"]}}}}}},
    "udp:10.10.24.89:53": {{"scheduler": "sh", "flags": ["sh-port"], "persistent": 300, "destinations": {{
        "10.10.24.21:53": {{"forward": "route", "weight": 65535}}, "10.10.24.22:53": {{"forward": "masq"}}}}}},
    "tcp:[2001:db8::88]:443": {{"scheduler": "rr", "destinations": {{
        "[2001:db8::21]:443": {{}}, "[2001:db8::22]:443": {{"forward": "masq", "weight": 2}}}}}},
    "fwmark:7": {{"scheduler": "rr", "destinations": {{"10.10.24.22:0": {{"forward": "route"}}}}}},
    "tcp:10.10.24.90:80": {{"destinations": {{}}}},
}}
wanted = lvstun.ipvs.wanted(TABLE)
decoded, services = [], []
decode, decode_service = lvstun.genl.dest_settings, lvstun.genl.service_record
lvstun.genl.dest_settings = lambda payloads, af=4: decoded.append(len(payloads)) or decode(payloads, af)
lvstun.genl.service_record = lambda payload, stats=True: services.append(1) or decode_service(payload, stats)
with lvstun.ipvsclient.Client() as ipvs:
    ops, _ = lvstun.ipvs.plan([], lvstun.ipvs.records(wanted, list(wanted)))
    assert ipvs.apply(ops) == []
    fast = ipvs.read_settings(None, wanted)
    fast_decoded, fast_services = list(decoded), len(services)
    few = ipvs.read_settings(set(wanted), wanted)  # (a few services are asked for one by one)
    few_decoded, few_services = len(decoded) - len(fast_decoded), len(services) - fast_services
    slow = ipvs.read_settings()
    subprocess.run(["ipvsadm", "-e", "-t", "10.10.24.88:80", "-r", "10.10.24.21:80", "-i", "-w", "4"], check=True)
    subprocess.run(["ipvsadm", "-E", "-u", "10.10.24.89:53", "-s", "rr"], check=True)
    del decoded[:], services[:]
    changed = ipvs.read_settings(None, wanted)
print(json.dumps({{"fast decoded": fast_decoded, "fast services": fast_services, "same": fast == slow == few,
    "few decoded": [few_decoded, few_services],
    "unchanged": sorted(lvstun.ipvs.unchanged(wanted, fast)), "wanted": sorted(wanted), "changed decoded": decoded,
    "changed services": len(services), "after the change": sorted(lvstun.ipvs.unchanged(wanted, changed))}}))
"""


def test_a_table_held_as_wanted_is_known_by_the_bytes_of_its_replies(table):
    """The kernel writes a destination's settings as ``lvstun.genl.replies_hold``
    expects, for every kind the pack writes (each tunnel type, its port and flags,
    thresholds, route and masq, IPv6, a firewall mark, an empty service) and a service's
    (schedulers, flags, persistence) as ``lvstun.genl.ServiceHeads`` expects: a table
    held as wanted is read without decoding one service or destination, and what it
    reads is what decoding reads; a weight and a scheduler changed by ipvsadm make
    those services, and only they, decoded and planned."""
    code, out, err = table.capture("director", sys.executable, "-c", _AS_WANTED.format(utils=UTILS))
    assert code == 0, err
    result = json.loads(out)
    assert (result["fast decoded"], result["fast services"], result["few decoded"]) == ([], 0, [0, 0]), result
    assert result["same"] is True and result["unchanged"] == result["wanted"], result
    assert (result["changed decoded"], result["changed services"]) == ([4], 1), result
    assert result["after the change"] == sorted(set(result["wanted"]) - {"tcp:10.10.24.88:80",
                                                                         "udp:10.10.24.89:53"}), result


def test_set_weights_changes_many_weights_in_one_call(table):
    call(table, "ipvs.add_service", SVC, scheduler="wrr")
    for last in (21, 22, 23):
        call(table, "ipvs.add_dest", SVC, f"10.10.24.{last}:80", weight=1, u_threshold=50)
    changes = call(table, "ipvs.set_weights",
                   '{"tcp:10.10.24.88:80": {"10.10.24.21:80": 0, "10.10.24.22:80": 1, "10.10.24.24:80": 3}}')
    assert changes == {SVC: {"10.10.24.21:80": {"old": 1, "new": 0}}, "missing": [f"{SVC} 10.10.24.24:80"]}
    assert ipvsadm_save(table) == sorted([
        "-A -t 10.10.24.88:80 -s wrr",
        "-a -t 10.10.24.88:80 -r 10.10.24.21:80 -i -w 0 --tun-type ipip",
        "-a -t 10.10.24.88:80 -r 10.10.24.22:80 -i -w 1 --tun-type ipip",
        "-a -t 10.10.24.88:80 -r 10.10.24.23:80 -i -w 1 --tun-type ipip",
    ])
    code, out, _ = table.capture("director", "ipvsadm", "-Ln", "--thresholds")
    assert code == 0 and "10.10.24.21:80               50         0" in out  # the threshold stayed
