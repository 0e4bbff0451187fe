"""Director high availability on the two-director site (pillar/lvs/two_vips.sls), through
the real router (a namespace on the host kernel: resilient nexthop group, the pack's
probe rules) and the UML directors (IPVS, connection sync daemons).

A director is killed, cut off or emptied; the router's own beacon takes it out of the
group without the master, the flows of the survivor keep their director, and the
connections through the dead one continue on the survivor (the sync daemons gave it
their entries); the router's verdicts run the master's hooks (``director/down``, then
``director/up``). With the master down, each director also drains a dead backend in its
own table (its path checks). Figures with more trials: bench/director_ha.py.
"""

import itertools
import json
import subprocess
import time

import pytest

from lvs_lab import health as hh
from lvs_lab import load
from lvstun import dirgroup
from tests.lab.site_helpers import (
    active_connections,
    apply,
    buckets,
    changes_by_minion,
    group_sampler,
    group_weights,
    site_tree,
    snapshot,
)

BOTH = ["director", "director2"]


@pytest.fixture(name="ha_lab")
def fixture_ha_lab(two_vips):
    """The two-director site with both directors in the group; the same when done."""
    assert two_vips.director_group() == {"director": True, "director2": True}
    yield two_vips
    if not two_vips.master_pids():
        two_vips.start_master()
    for name in BOTH:
        two_vips.cut(name, cut=False)
        two_vips.salt_json("router", "lvs_directors.undrain", name)
    two_vips.wait_director_group(BOTH, 240)


def test_the_router_holds_a_resilient_group_of_both_directors_and_sync_runs_on_each(ha_lab):
    out = subprocess.run(["ip", "-n", ha_lab.hosts["router"].netns, "-j", "-d", "nexthop", "show", "id",
                          str(ha_lab.site().ha.base)], capture_output=True, text=True, check=True).stdout
    group = json.loads(out)[0]
    assert group["type"] == "resilient" and group["resilient_args"]["buckets"] == 64
    for director in BOTH:
        daemons = ha_lab.salt_json(director, "ipvs.sync_daemons")[director]
        assert daemons == [{"state": state, "interface": "eth0", "sync_id": 1, "group": "224.0.0.81"}
                           for state in ("backup", "master")]  # the kernel's group


def test_a_killed_director_moves_only_its_flows_and_its_connections_survive(ha_lab):
    lab = ha_lab
    longs = load.start_downloads(lab, 20, 25)
    time.sleep(6)  # established, and synced to the other director
    busy = {d: active_connections(lab, d) for d in BOTH}
    assert all(busy.values()), f"the downloads did not spread over both directors: {busy}"
    steady = load.start_steady(lab, 14)
    time.sleep(3)
    before, hooks_before = buckets(lab), len(hh.hooks_run(lab))
    killed_at = time.time()
    lab.halt("director")
    lab.wait_director_group(["director2"], 30)  # the killed director taken out
    after = buckets(lab)
    survivor = lab.site().ha.base + 2  # director2's nexthop
    assert {i for i, m in before.items() if m == survivor} < set(after), "the survivor lost buckets"
    assert all(after[i] == survivor for i, m in before.items() if m == survivor)  # its flows stayed
    assert set(after.values()) == {survivor}
    results = steady.result()
    survived = longs.result()
    # Every connection, through the dead director or the survivor, got every byte.
    assert [d for d in survived if not d["ok"]] == [], survived
    failed, last, _ = load.outage(results, killed_at)
    assert last < 8, f"requests still failed {last:.1f} s after the kill ({failed} failed)"
    assert len([r for r in results if r[0] > killed_at + 1 and r[2]]) > 0
    # Back: its minion re-applies the site at boot, the probes find it forwarding again.
    lab.boot("director")
    lab.wait_booted(["director"])
    lab.wait_director_group(BOTH, 240)  # the restarted director back in the group
    # The router's verdicts ran the hook command once each, through the master's reactor.
    def director_hooks():
        return [line[:2] for line in hh.hooks_run(lab)[hooks_before:] if line[0].startswith("lvs/hook/director/")]

    hh.wait_for(lambda: len(director_hooks()) >= 2, hh.TIMEOUT)
    time.sleep(2)  # none more
    assert director_hooks() == [("lvs/hook/director/down", "director"), ("lvs/hook/director/up", "director")]


def test_with_the_master_down_a_cut_off_director_leaves_and_returns_and_dead_backends_are_drained(ha_lab):
    lab = ha_lab
    lab.stop_master()
    steady = load.start_steady(lab, 12)
    time.sleep(2)
    cut_at = time.time()
    lab.cut("director2")
    lab.wait_director_group(["director"], 30)  # the cut-off director taken out, the master down
    results = steady.result()
    assert load.outage(results, cut_at)[1] < 8
    lab.cut("director2", cut=False)
    lab.wait_director_group(BOTH, 30)  # plugged back in, the master still down
    # Backend health without the master too: each director drains a dead service on its
    # own path checks (the lvs_paths beacon), in its own table.
    hh.block_service(lab, "rs1")
    try:
        for director in BOTH:
            took = hh.wait_for(lambda director=director: hh.weight_of(lab, "rs1", director) == 0, hh.TIMEOUT)
            print(f"rs1's web service killed, the master down: weight 0 on {director} after {took:.2f} s")
            assert hh.path_verdicts(lab, director) == {"rs1": ["web"]}
        lab.start_master()
        # Once the master is back, rs1's own report (its next heartbeat) puts the
        # runner's record in agreement with the directors.
        hh.wait_for(lambda: hh.recorded(lab, "rs1", "web") is False, 3 * hh.TIMEOUT)
        assert all(hh.weight_of(lab, "rs1", director) == 0 for director in BOTH)
    finally:
        hh.block_service(lab, "rs1", blocked=False)
    for director in BOTH:
        hh.wait_for(lambda director=director: hh.weight_of(lab, "rs1", director) == 1, hh.RESTORE)


def test_an_emptied_table_takes_a_director_out_and_the_survivors_flows_stay_when_it_returns(ha_lab):
    lab = ha_lab
    code, _, err = lab.capture("director2", "ipvsadm", "-C")
    assert code == 0, err
    lab.wait_director_group(["director"], 30)  # the director without a table taken out
    # Downloads that start now all go through the survivor; the emptied director's return
    # moves only idle buckets (ha:idle_timer), never theirs.
    longs = load.start_downloads(lab, 10, 25)
    time.sleep(3)
    changes = changes_by_minion(apply(lab))  # the highstate puts the table back
    assert "lvs-director-ipvs" in changes["director2"]
    lab.wait_director_group(BOTH, 30)  # the director with its table back
    assert [d for d in longs.result() if not d["ok"]] == []


def test_a_drained_director_hands_its_connections_over_and_returns(ha_lab):
    lab = ha_lab
    longs = load.start_downloads(lab, 10, 20)
    time.sleep(4)
    steady = load.start_steady(lab, 10)
    time.sleep(2)
    drained = lab.salt_run("lvs.drain", "director2", "timeout=30")
    assert drained["director"] == "director2" and drained["drained"] == ["director2"], drained
    assert drained["idle"] is True, drained
    lab.wait_director_group(["director"], 10)  # it leaves the group once it holds no bucket
    directors = hh.status(lab)["directors"]
    assert directors["director2"]["state"] == "drained" and directors["director"]["state"] == "up", directors
    assert [d for d in longs.result() if not d["ok"]] == []  # no established connection broke
    # Its buckets moved only once idle for a second: no request was caught mid-handshake.
    assert [r for r in steady.result() if not r[2]] == []
    undrained = lab.salt_run("lvs.undrain", "director2")
    assert undrained["director"] == "director2" and undrained["drained"] == [], undrained
    lab.wait_director_group(BOTH, 30)  # back once the probes find it forwarding
    assert hh.status(lab)["directors"]["director2"]["state"] == "up"


def test_rolling_both_directors_under_load_fails_no_request_and_breaks_no_download(ha_lab):
    """``salt-run lvs.rolling targets=director,director2 action=lvs.director``: one at a
    time out of the router's group (never both: the group is sampled throughout), its
    role applied again, its table whole, back in the group: into the group of one at
    weight 1 first (no bucket, so the kernel marks the buckets in use: no handshake moves
    to it mid-way), then at its full weight."""
    lab = ha_lab
    members = {m["id"]: name for name, m in dirgroup.spec(lab.site())["members"].items()}
    groups, stop_sampling = group_sampler(lab)
    longs = load.start_downloads(lab, 10, 20)
    steady = load.start_steady(lab, 300, 0.1)  # until the rolling ends
    began = time.monotonic()
    try:
        result = lab.salt_run("lvs.rolling", "targets=director,director2", "action=lvs.director", "timeout=120",
                              timeout=600)[lab.site().name]
    finally:
        took = time.monotonic() - began
        time.sleep(2)
        steady.stop()
        stop_sampling()
    requests = steady.result(timeout=400)
    print(f"rolling of both directors (lvs.director): {result}; {took:.0f} s; {len(requests)} requests")
    print("the router's group:", [(f"{at:.2f}", group) for at, group in groups])
    assert result["done"] == BOTH, result
    assert [r for r in requests if not r[2]] == []  # no request failed
    assert [d for d in longs.result(timeout=400) if not d["ok"]] == []  # no download broke
    named = [{members[ident]: weight for ident, weight in group} for _, group in groups]
    alone = [list(group) for group in named if len(group) == 1]
    assert ["director2"] in alone and ["director"] in alone, named  # each was out in turn
    # Each came back into the group of one at weight 1 (the other at 255), then at 1 both.
    joins = [after for before, after in itertools.pairwise(named) if len(before) == 1 and len(after) == 2]
    assert joins == [{"director": 1, "director2": 255}, {"director": 255, "director2": 1}], named
    lab.wait_director_group(BOTH, 60)
    hh.wait_for(lambda: group_weights(lab) == dict.fromkeys(members, 1), 10)


def test_test_mode_predicts_an_ha_setting_change_exactly_then_one_apply_does_it(ha_lab):
    lab = ha_lab
    tree = site_tree("two_vips")
    tree["ha"] = {"idle_timer": 20, "sync_id": 7}
    lab.set_pillar(tree)
    try:
        before = snapshot(lab)
        predicted = changes_by_minion(apply(lab, "test=True"))
        assert snapshot(lab) == before
        group = lab.site().ha.base
        assert predicted["router"] == {"lvs-router-directors": {
            f"group {group}": {"old": f"{group + 1}/{group + 2} type resilient buckets 64 idle_timer 10 "
                                      "unbalanced_timer 300",
                               "new": f"{group + 1}/{group + 2} type resilient buckets 64 idle_timer 20 "
                                      "unbalanced_timer 300"}}}
        for director in BOTH:
            assert predicted[director] == {"lvs-director-sync": {
                name: {"old": "eth0 syncid 1", "new": "eth0 syncid 7"} for name in ("sync daemon master",
                                                                                 "sync daemon backup")}}
        assert changes_by_minion(apply(lab)) == predicted
        assert changes_by_minion(apply(lab)) == {minion: {} for minion in lab.minions}
    finally:
        lab.reset_pillar()
        apply(lab)


def _clean(lab, host):
    returns = lab.salt_json("--timeout=600", host, "state.apply", "lvs.clean", timeout=900)
    states = returns.get(host)
    assert isinstance(states, dict), returns
    failed = {s["__id__"]: s["comment"] for s in states.values() if s["result"] is False}
    assert not failed, failed
    return changes_by_minion({host: states})[host]


def test_clean_takes_the_group_off_the_router_and_the_sync_off_a_director_then_the_site_returns(ha_lab):
    lab = ha_lab
    netns, base = lab.hosts["router"].netns, lab.site().ha.base

    def ip_json(*args):
        out = subprocess.run(["ip", "-n", netns, "-j", *args], capture_output=True, text=True, check=True).stdout
        return json.loads(out) if out.strip() else []

    try:
        assert "lvs-clean-director-group" in _clean(lab, "router")
        assert not [n for n in ip_json("nexthop", "show") if base <= n["id"] <= base + len(BOTH)]
        assert not [r for r in ip_json("rule", "show") if r.get("priority") == base]
        assert ip_json("route", "show", "table", "all", "proto", "77") == []
        assert _clean(lab, "router") == {}  # a second run changes nothing
        assert set(_clean(lab, "director2")["lvs-clean-sync"]) == {"sync daemon master", "sync daemon backup"}
        assert lab.salt_json("director2", "ipvs.sync_daemons")["director2"] == []
        assert _clean(lab, "director2") == {}
    finally:
        apply(lab)
        lab.wait_director_group(BOTH, 240)
    assert lab.salt_json("director2", "ipvs.sync_daemons")["director2"] == [
        {"state": state, "interface": "eth0", "sync_id": 1, "group": "224.0.0.81"} for state in ("backup", "master")]
