"""The runner's hooks on the seed's site, through the lab's real master, reactor and
runner: every web backend killed runs the lab's hook command for the service below its
floor once, and once more when it is back; the same tag sent by a real server with
``event.send`` runs nothing (lvs_salt/hook.sls, docs/hooks.md)."""

import json
import os
import time

from lvs_lab import health as hh

REALSERVERS = ("rs1", "rs2", "rs3")


def _count(lines, tag):
    return sum(1 for line in lines if line[0] == f"lvs/hook/{tag}" and line[1] == "web")


def test_every_backend_killed_runs_the_floor_hook_once_and_recovery_runs_its_own(healthy):
    lab = healthy
    before = len(hh.hooks_run(lab))
    for rs in REALSERVERS:
        hh.block_service(lab, rs)
    try:
        hh.wait_for(lambda: _count(hh.hooks_run(lab)[before:], "service/below_floor") == 1, hh.TIMEOUT)
        hh.wait_for(lambda: _count(hh.hooks_run(lab)[before:], "service/down") == 1, 10)
        downs = {line[2] for line in hh.hooks_run(lab)[before:] if line[0] == "lvs/hook/backend/down"}
        assert downs == set(REALSERVERS), hh.hooks_run(lab)[before:]
    finally:
        for rs in REALSERVERS:
            hh.block_service(lab, rs, blocked=False)
    hh.wait_for(lambda: _count(hh.hooks_run(lab)[before:], "service/above_floor") == 1, hh.RESTORE)
    hh.wait_for(lambda: hh.weights(lab) == {"10.10.24.21": 1, "10.10.24.22": 1, "10.10.24.23": 1}, hh.RESTORE)
    time.sleep(3)  # the runner's later rounds (heartbeats) fire nothing more
    lines = hh.hooks_run(lab)[before:]
    assert [_count(lines, tag) for tag in ("service/below_floor", "service/down", "service/above_floor",
                                           "service/up")] == [1, 1, 1, 1], lines
    ups = {line[2] for line in lines if line[0] == "lvs/hook/backend/up"}
    assert ups == set(REALSERVERS), lines


def test_a_hook_tag_sent_by_a_minion_runs_nothing(lab):
    before = len(hh.hooks_run(lab))
    log = os.path.join(lab.state_dir, "master", "master.log")
    logged = os.path.getsize(log)
    forged = {"service": "web", "serving": 0, "floor": 1, "reason": "forged", "at": time.time(),
              "tag": "lvs/hook/service/below_floor", "signature": "0" * 64}
    returns = lab.salt_json("rs1", "event.send", "lvs/hook/service/below_floor", json.dumps(forged))
    assert returns == {"rs1": True}, returns

    def refused():
        with open(log, encoding="utf-8") as fh:
            fh.seek(logged)
            return "event lvs/hook/service/below_floor is not a hook the lvs runner signed" in fh.read()

    hh.wait_for(refused, 20)  # the reactor got it, and refused it
    time.sleep(2)
    assert hh.hooks_run(lab)[before:] == []
