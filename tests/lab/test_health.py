"""Backend health on the seed's site, through the real beacons, reactor and runner: a
service killed and restored, a host cut off and one stopped, a forged event, the floor, the
sorry server, flapping, a highstate during a drain, maintenance drains, the status view,
no failed request while a backend is drained under load, and the director's own path
checks draining a real server that drops IPIP. (The path checks with the master down,
on every director: tests/lab/test_site_two_vips_ha.py.)"""

import datetime
import itertools
import json
import os
import sys
import threading
import time

import salt.config
import salt.utils.event

from lvs_lab import health as hh

from .site_helpers import HOLD, edited, site_tree

TIMEOUT = hh.TIMEOUT
RESTORE = hh.RESTORE


def test_a_killed_service_is_drained_and_comes_back(healthy):
    lab = healthy
    assert hh.weights(lab) == {"10.10.24.21": 1, "10.10.24.22": 1, "10.10.24.23": 1}
    hh.block_service(lab, "rs1")
    hh.wait_for(lambda: hh.weight_of(lab, "rs1") == 0, TIMEOUT)
    assert hh.weight_of(lab, "rs2") == 1 and hh.weight_of(lab, "rs3") == 1
    # The runner writes its record once the directors confirmed: it may follow a moment later.
    hh.wait_for(lambda: hh.recorded(lab, "rs1", "web") is False, 10)
    hh.block_service(lab, "rs1", blocked=False)
    hh.wait_for(lambda: hh.weight_of(lab, "rs1") == 1, RESTORE)


def _set_by_hand(lab, minion, weight):
    code, _, err = lab.capture("director", "ipvsadm", "-e", "-t", hh.WEB, "-r", f"{hh.address(lab, minion)}:80",
                               "-i", "-w", str(weight))
    assert code == 0, err


def test_a_weight_set_by_anything_else_is_put_back_within_a_round_and_logged(healthy):
    """One writer decides a director's weights: a weight written by another tool is put
    back to the decision within a round (0.5 s) and the repair is in the minion's log,
    a decision that a backend is down included (issue 24)."""
    lab = healthy
    log_path = os.path.join(lab.host_dir("director"), "minion.log")
    logged = os.path.getsize(log_path)
    _set_by_hand(lab, "rs1", 7)
    took = hh.wait_for(lambda: hh.weight_of(lab, "rs1") == 1, 10, step=0.05)
    assert took < 2, took  # a round, plus reading the table from outside the guest
    hh.block_service(lab, "rs2")
    hh.wait_for(lambda: hh.weight_of(lab, "rs2") == 0, TIMEOUT)
    _set_by_hand(lab, "rs2", 1)  # a dead backend put back in by hand: the decision holds
    hh.wait_for(lambda: hh.weight_of(lab, "rs2") == 0, 10, step=0.05)
    with open(log_path, encoding="utf-8") as fh:
        fh.seek(logged)
        repairs = [line for line in fh if "lvs_health: repaired" in line]
    assert any("10.10.24.21:80: weight 7 in the kernel" in line and "back to 1" in line for line in repairs), repairs
    assert any("10.10.24.22:80: weight 1 in the kernel" in line and "back to 0" in line for line in repairs), repairs


def test_a_broken_tunnel_drains_the_backend_though_its_service_answers(healthy):
    lab = healthy
    code, _, err = lab.capture("rs2", "ip", "link", "set", "tunl0", "down")
    assert code == 0, err
    try:
        hh.wait_for(lambda: hh.weight_of(lab, "rs2") == 0, TIMEOUT)
        reason = lab.salt_json("rs2", "lvs_health.report")["rs2"]["services"]["web"]["reason"]
        assert reason.startswith("TUN setup:") and "tunl0" in reason, reason
    finally:
        lab.capture("rs2", "ip", "link", "set", "tunl0", "up")
    hh.wait_for(lambda: hh.weight_of(lab, "rs2") == 1, RESTORE)


def test_a_forged_event_cannot_change_another_minions_backend(healthy):
    lab = healthy
    # rs1's own beacon paused, so that every question to rs1 below comes from the forged event.
    assert lab.salt_json("rs1", "beacons.disable_beacon", "lvs_backend")["rs1"]["result"] is True
    try:
        since = datetime.datetime.now()
        payload = '{"services": {"web": {"healthy": false, "reason": "forged"}}, "changed": ["web"]}'
        # rs2 claims to be rs1's beacon: the tag and the payload are rs2's own words.
        ret = lab.salt_json("rs2", "event.send", "salt/beacon/rs1/lvs_backend/", payload)
        assert ret.get("rs2") is True, ret
        # The reactor ran the runner, which asked rs1 itself (and rs1 says it is healthy).
        hh.wait_for(lambda: hh.report_jobs_to(lab, "rs1", since) >= 1, TIMEOUT, step=1)
        time.sleep(3)
        assert hh.weight_of(lab, "rs1") == 1
        assert hh.recorded(lab, "rs1", "web") is not False
        # Data naming another id, on rs2's own tag, is not used either.
        lab.salt_json("rs2", "event.send", "salt/beacon/rs2/lvs_backend/", '{"id": "rs1", "services": {}}')
        time.sleep(5)
        assert hh.weights(lab) == {"10.10.24.21": 1, "10.10.24.22": 1, "10.10.24.23": 1}
    finally:
        lab.salt_json("rs1", "beacons.enable_beacon", "lvs_backend")


def test_the_floor_keeps_one_backend_when_all_fail(healthy):
    lab = healthy
    for minion in ("rs1", "rs2", "rs3"):
        hh.block_service(lab, minion)
    # Two go to 0; the floor (1 by default) keeps one in, by name order: rs1.
    hh.wait_for(lambda: hh.weights(lab) == {"10.10.24.21": 1, "10.10.24.22": 0, "10.10.24.23": 0}, TIMEOUT)
    # The director's own checks act first; the runner's record follows (the real servers' reports).
    hh.wait_for(lambda: hh.recorded(lab, "rs1", "web") is False, 10)
    status = hh.status(lab)["services"]
    assert status["web"]["backends"]["rs1"]["health"] == "down"
    assert status["web"]["backends"]["rs1"]["live"]["director"]["weight"] == 1
    assert hh.weights(lab) == {"10.10.24.21": 1, "10.10.24.22": 0, "10.10.24.23": 0}  # the runner agrees


def test_a_highstate_during_a_drain_keeps_it(healthy):
    lab = healthy
    hh.block_service(lab, "rs2")
    hh.wait_for(lambda: hh.weight_of(lab, "rs2") == 0, TIMEOUT)
    lab.apply()
    assert hh.weight_of(lab, "rs2") == 0, "a highstate put an unhealthy backend back"


def test_a_maintenance_drain_survives_health_events_and_highstates(healthy):
    lab = healthy
    ret = lab.salt_run("lvs.drain", "rs2", "reason=kernel upgrade")
    assert ret["drained"] == "rs2", ret
    assert hh.weight_of(lab, "rs2") == 0
    # rs2 is healthy: its beacon's heartbeats (every 10 s) reach the runner, and a highstate runs.
    lab.salt_run("lvs.health", "rs2")
    lab.apply()
    assert hh.weight_of(lab, "rs2") == 0
    assert hh.status(lab)["services"]["web"]["backends"]["rs2"]["maintenance"] is True
    lab.salt_run("lvs.undrain", "rs2")
    assert hh.weight_of(lab, "rs2") == 1


def test_no_request_fails_while_a_backend_is_drained_under_load(healthy):
    lab = healthy
    results, stop = [], threading.Event()

    def load():
        while not stop.is_set():
            results.append(hh.client_send(lab, 5))

    worker = threading.Thread(target=load)
    worker.start()
    try:
        time.sleep(2)
        lab.salt_run("lvs.drain", "rs3")
        time.sleep(4)
    finally:
        stop.set()
        worker.join(timeout=120)
        lab.salt_run("lvs.undrain", "rs3")
    answered = sum(sum(r["answers"].values()) for r in results)
    asked = 5 * len(results)
    assert asked >= 10 and answered == asked and not any(r["failed"] for r in results), results


def test_a_flapping_backend_changes_weight_a_bounded_number_of_times(healthy):
    lab = healthy
    seen, stop = [], threading.Event()

    def watch():
        while not stop.is_set():
            seen.append(hh.weight_of(lab, "rs1"))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        began = time.monotonic()
        blocked = False
        while time.monotonic() - began < 30:  # up/down every second for 30 s
            blocked = not blocked
            hh.block_service(lab, "rs1", blocked=blocked)
            time.sleep(1)
        if blocked:
            hh.block_service(lab, "rs1", blocked=False)
    finally:
        stop.set()
        watcher.join()
    changes = sum(1 for a, b in itertools.pairwise(seen) if a != b)
    assert changes <= 2 * (30 // HOLD + 1), seen  # at most twice per hold


def test_a_host_cut_off_from_the_lan_is_drained_and_returns(healthy):
    lab = healthy
    lab.cut("rs3")  # its minion still answers the master: only the directors' probes can tell
    try:
        hh.wait_for(lambda: hh.weight_of(lab, "rs3") == 0, TIMEOUT)
        hh.wait_for(lambda: hh.recorded(lab, "rs3") is False, 10)
        assert hh.status(lab)["services"]["web"]["backends"]["rs3"]["health"] == "host down"
    finally:
        lab.cut("rs3", cut=False)
    hh.wait_for(lambda: hh.weight_of(lab, "rs3") == 1, RESTORE)


def test_a_stopped_host_is_drained_and_returns_when_started(healthy):
    lab = healthy
    lab.halt("rs3")
    hh.wait_for(lambda: hh.weight_of(lab, "rs3") == 0, TIMEOUT)
    lab.boot("rs3")
    lab.wait_booted(["rs3"])
    lab.wait_minions(["rs3"], timeout=300)
    hh.wait_for(lambda: hh.weight_of(lab, "rs3") == 1, 240)


def test_a_flood_of_forged_events_starts_a_few_runner_jobs_and_none_for_strangers(healthy):
    """600 events on the master's bus (300 naming strangers, 300 naming rs1): the
    reactor's gate starts no job for a stranger and, for rs1, one job that runs more
    rounds instead of one job per event (without the gate: 600 jobs)."""
    lab = healthy
    opts = salt.config.master_config(os.path.join(lab.master_conf_dir, "master"))
    jobs = []
    with salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=True) as bus:
        for n in range(300):
            bus.fire_event({"services": {}}, f"salt/beacon/stranger{n}/lvs_backend/")
            bus.fire_event({"services": {"web": {"healthy": False}}}, "salt/beacon/rs1/lvs_backend/")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            event = bus.get_event(wait=1, full=True)
            if event and event["tag"].startswith("salt/run/") and event["tag"].endswith("/new") \
                    and event["data"].get("fun") == "runner.lvs.health":
                jobs.append(json.dumps(event["data"].get("fun_args")))
    strangers = [args for args in jobs if "stranger" in args]
    for_rs1 = [args for args in jobs if '"rs1"' in args]
    assert strangers == [] and 1 <= len(for_rs1) <= 6, jobs  # rs1's own heartbeats may add one or two
    assert hh.weight_of(lab, "rs1") == 1  # rs1, asked, says it is healthy


def test_a_reused_client_port_never_reaches_a_failed_backend(healthy):
    """A client that reuses its port (behind NAT, a proxy): the director still holds the
    previous connection (FIN_WAIT, the last state a TUN director sees), and with the
    kernel's defaults the next SYN from that port went to the same backend even at
    weight 0. The pack's ``ipvs:`` defaults (conn_reuse_mode 3, expire_nodest_conn 1)
    reschedule it."""
    lab = healthy
    port = 47011
    first = hh.client_send(lab, 1, source_port=port)
    assert first["failed"] == 0, first
    (served,) = first["answers"]
    code, out, err = lab.capture("director", "ipvsadm", "-Lcn")
    assert code == 0, err
    held = [line for line in out.splitlines() if f":{port} " in line]
    assert held and "FIN_WAIT" in held[0], out  # the premise: the old entry is still there
    hh.block_service(lab, served)
    hh.wait_for(lambda: hh.weight_of(lab, served) == 0, TIMEOUT)
    sent = hh.client_send(lab, 3, source_port=port)
    assert sent["failed"] == 0 and served not in sent["answers"], (served, sent)


def test_the_sorry_server_takes_over_when_no_backend_is_healthy(healthy):
    lab = healthy
    lab.set_pillar(edited(site_tree(), lambda t: t["services"]["web"].update(
        sorry="rs3", floor=0, backends={"rs1": {}, "rs2": {}})))
    try:
        lab.apply()
        assert hh.weights(lab) == {"10.10.24.21": 1, "10.10.24.22": 1, "10.10.24.23": 0}
        hh.block_service(lab, "rs1")
        hh.block_service(lab, "rs2")
        hh.wait_for(lambda: hh.weights(lab) == {"10.10.24.21": 0, "10.10.24.22": 0, "10.10.24.23": 1}, TIMEOUT)
        sent = hh.client_send(lab, 4)
        assert sent == {"answers": {"rs3": 4}, "failed": 0}, sent
    finally:
        hh.block_service(lab, "rs1", blocked=False)
        hh.block_service(lab, "rs2", blocked=False)
        lab.set_pillar(site_tree())
        hh.wait_for(lambda: hh.weight_of(lab, "rs1") == 1 and hh.weight_of(lab, "rs2") == 1, RESTORE)
        lab.apply()


FORGER = """
import sys
import salt.channel.client, salt.config, salt.crypt, salt.minion
opts = salt.config.minion_config(sys.argv[1])
opts.update(salt.minion.resolve_dns(opts))
jid = sys.argv[2]
token = salt.crypt.SAuth(opts).gen_token(b"salt")
forged = {"id": "rs1", "jid": jid, "return": "FORGED", "retcode": 0, "success": True, "fun": "test.sleep"}
load = {"cmd": "_minion_event", "id": opts["id"], "tok": token, "tag": f"salt/job/{jid}/ret/rs1",
        "data": forged, **{k: v for k, v in forged.items() if k != "id"}}
with salt.channel.client.ReqChannel.factory(opts) as channel:
    channel.send(load, timeout=60)
print("forged")
"""


ASKER = """
import json, sys
import salt.client
client = salt.client.LocalClient(c_path=sys.argv[1])
pub = client.run_job("rs1", "test.sleep", [25], timeout=60, listen=True)
print(pub["jid"], flush=True)
returns = {}
for ret in client.get_iter_returns(pub["jid"], pub["minions"], timeout=60):
    returns.update(ret or {})
print(json.dumps(returns), flush=True)
"""


def test_a_job_return_forged_by_another_minion_is_not_taken_for_rs1s(healthy, tmp_path):
    """rs2, with its own credentials, sends the master an event tagged as rs1's return of
    a job the master is waiting for (here ``test.sleep``, asked as the runner asks), its
    payload shaped like a return. The client the runner uses keys returns by the id the
    master verified: the forged one is not rs1's, and rs1's answer is rs1's own."""
    import subprocess  # noqa: PLC0415

    from lvs_lab import plan  # noqa: PLC0415

    lab = healthy
    (tmp_path / "ask.py").write_text(ASKER)
    # The master's client runs where the master listens: the lab's switch namespace.
    asker = subprocess.Popen(["ip", "netns", "exec", plan.SWITCH_NS, sys.executable, str(tmp_path / "ask.py"),
                              os.path.join(lab.master_conf_dir, "master")], stdout=subprocess.PIPE, text=True)
    try:
        jid = asker.stdout.readline().strip()
        assert jid.isdigit(), jid
        code, out, err = lab.capture("rs2", sys.executable, "-c", FORGER, f"{lab.host_dir('rs2')}/etc/minion", jid)
        assert code == 0 and "forged" in out, err
        returns = json.loads(asker.stdout.readline())
    finally:
        asker.kill()
        asker.wait()
    assert returns.get("rs1", {}).get("ret") is True, returns  # test.sleep's own answer
    # The forged return reached the client, under the id the master verified: rs2's.
    # The runner reads only the answer of the minion it asked (``ret.get(minion)``).
    assert returns.get("rs2", {}).get("ret") == "FORGED", returns


def test_a_real_server_that_drops_ipip_is_drained_though_its_own_checks_pass(healthy):
    """Only the path from the director can tell: the real server's service and tunnel
    are fine seen from itself, but IP protocol 4 no longer reaches it."""
    lab = healthy
    lan = lab.site().hosts["rs2"].interface
    rule = ["INPUT", "-i", lan, "-p", "4", "-j", "DROP"]
    code, _, err = lab.capture("rs2", "iptables-legacy", "-I", *rule)
    assert code == 0, err
    try:
        hh.wait_for(lambda: hh.weight_of(lab, "rs2") == 0, TIMEOUT)
        assert lab.salt_json("director", "lvs_health.local") == {"director": {"rs2": ["web"]}}
        sent = hh.client_send(lab, 12)
        assert sent["failed"] == 0 and "rs2" not in sent["answers"], sent
        # rs2 itself sees nothing wrong: the runner's record keeps it healthy.
        report = lab.salt_json("rs2", "lvs_health.report")["rs2"]
        assert report["services"]["web"]["healthy"] is True, report
        assert hh.recorded(lab, "rs2", "web") is not False
        # lvs.status says who took it out.
        row = hh.status(lab)["services"]["web"]["backends"]["rs2"]
        assert row["health"] == "up" and row["path_down"] == ["director"], row
    finally:
        code, _, err = lab.capture("rs2", "iptables-legacy", "-D", *rule)
        assert code == 0, err
    hh.wait_for(lambda: hh.weight_of(lab, "rs2") == 1, RESTORE)
    assert hh.path_verdicts(lab) == {}
