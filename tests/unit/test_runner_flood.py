"""The runner under a flood of events (``_runners/lvs.py``): strangers cost no pillar
read each, one check at a time per real server with the newest state never lost,
and pushes that never leave older weights on the directors than newer ones."""

import threading
import types

import lvstun.gate
import lvstun.healthrecord
import lvstun.healthstore
from tests.unit.checkout import load
from tests.unit.test_gate import seed_site_gate


def _runner(tmp_path, monkeypatch):
    runner = load("lvs_runner_flood", "_runners", "lvs.py")
    runner.__opts__ = {"cachedir": str(tmp_path), "id": "master", "conf_file": "/dev/null"}
    site, pillars = seed_site_gate(monkeypatch, runner.__opts__)
    return runner, site, pillars


def test_events_naming_strangers_read_the_pillars_at_most_once_per_ttl(tmp_path, monkeypatch):
    runner, _, pillars = _runner(tmp_path, monkeypatch)
    for n in range(1000):
        assert "ignored" in runner.health(f"forged{n}")
    assert pillars.listings == 1 and len(pillars.compiles) <= 1
    assert len(pillars.reads) == len(set(pillars.reads))  # each minion's pillar read once


def test_one_check_at_a_time_per_real_server_and_the_last_event_is_not_lost(tmp_path, monkeypatch):
    runner, _, _ = _runner(tmp_path, monkeypatch)
    started, release, runs = threading.Event(), threading.Event(), []

    def slow_check(minion):
        runs.append(minion)
        started.set()
        release.wait(5)
        return {"minion": minion}

    monkeypatch.setattr(runner, "_health", slow_check)
    first = threading.Thread(target=runner.health, args=("rs1",))
    first.start()
    started.wait(5)
    results = [runner.health("rs1") for _ in range(500)]  # a flood while the check runs
    assert all(r == {"minion": "rs1", "coalesced": True} for r in results)
    release.set()
    first.join(5)
    assert runs == ["rs1", "rs1"]  # the running check, then exactly one more for the flood
    assert lvstun.gate._JOBS == {}  # the next event may start a job again


def test_a_slower_push_never_leaves_older_weights_than_a_faster_one(tmp_path, monkeypatch):
    runner, site, _ = _runner(tmp_path, monkeypatch)
    sent = []
    monkeypatch.setattr(runner, "_client", lambda: types.SimpleNamespace(
        cmd=lambda targets, fun, args, kwarg, **kw: sent.append((fun, kwarg["record"])) or {t: True for t in targets}))
    with lvstun.healthstore.changing(runner.__opts__, site) as record:
        before = runner._published(site, record)
        lvstun.healthrecord.apply_verdict(site, record, 1000, "rs1", services={"web": False})
    # Before this push, another process records rs1 back up (after the hold): the push
    # sends the newest record, so rs1 is not left at 0.
    with lvstun.healthstore.changing(runner.__opts__, site) as record:
        lvstun.healthrecord.apply_verdict(site, record, 1000 + 100, "rs1", services={"web": True})
    assert runner._push(site, before) == {}
    assert sent == []  # net effect: unchanged from what the directors hold
    with lvstun.healthstore.changing(runner.__opts__, site) as record:
        lvstun.healthrecord.apply_verdict(site, record, 1200, "rs1", services={"web": False})
    pushed = runner._push(site, before)
    assert pushed["weights"] == {"tcp:10.10.24.88:80": {"10.10.24.21:80": 0}}
    # The directors get the newest record, stamped: each sets its weights (and its
    # metrics' view) from it, and keeps it only when it is newer than the one it has.
    assert [fun for fun, _ in sent] == ["lvs_health.apply"]
    record = sent[0][1]
    assert record["health"]["rs1"]["services"] == {"web": False} and record["at"] > 0
    assert record == lvstun.healthstore.current(runner.__opts__, site)
