"""Director high availability on the two-director site (pillar/lvs/two_vips.sls), through
the real router (a namespace on the host kernel: resilient nexthop group, the pack's
probe rules) and the UML directors (IPVS, connection sync daemons).

A director is killed, cut off or emptied; the router's own beacon takes it out of the
group without the master, the flows of the survivor keep their director, and the
connections through the dead one continue on the survivor (the sync daemons gave it
their entries). Figures with more trials: bench/director_ha.py.
"""

import json
import subprocess
import sys
import time

import pytest

from tests.lab.site_helpers import apply, changes_by_minion

GROUP = 4200
MEMBER = {"director": 4201, "director2": 4202}  # ha:base 4200 + position in minion id order


def members(lab):
    out = subprocess.run(["ip", "-n", lab.hosts["router"].netns, "-j", "nexthop", "show", "id", str(GROUP)],
                         capture_output=True, text=True, check=True).stdout
    return sorted(m["id"] for m in json.loads(out)[0]["group"])


def wait_members(lab, want, timeout, why):
    deadline = time.monotonic() + timeout
    while members(lab) != want:
        assert time.monotonic() < deadline, f"{why}: the router's group holds {members(lab)}, not {want}"
        time.sleep(0.2)
    return time.monotonic()


class Load:
    """``lvs_lab.load`` running in the client's namespace (its JSON when it ends)."""

    def __init__(self, lab, *args):
        self.proc = subprocess.Popen(["ip", "netns", "exec", lab.hosts["client"].netns, sys.executable, "-m",
                                      "lvs_lab.load", *map(str, args)], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)

    def result(self, timeout=300):
        out, err = self.proc.communicate(timeout=timeout)
        assert self.proc.returncode == 0, err
        return json.loads(out)


def steady(lab, seconds):
    site = lab.site()
    targets = [f"{svc.protocol}:{svc.public}:{svc.port}" for svc in site.services.values()]
    return Load(lab, "steady", seconds, 0.05, *targets)


def downloads(lab, count, seconds):
    web = lab.site().services["web"]
    return Load(lab, "long", count, seconds, web.public, web.port)


def active_connections(lab, director):
    code, out, err = lab.capture(director, "ipvsadm", "-Ln")
    assert code == 0, err
    return sum(int(line.split()[4]) for line in out.splitlines() if line.strip().startswith("->")
               and line.split()[4].isdigit())


def failures_after(results, at):
    return [r for r in results if not r[2] and r[1] >= at]


@pytest.fixture(name="ha_lab")
def fixture_ha_lab(two_vips):
    """The two-director site with both directors in the group; the same when done."""
    assert members(two_vips) == sorted(MEMBER.values())
    yield two_vips
    if not two_vips.master_pids():
        two_vips.start_master()
    for name in MEMBER:
        two_vips.cut(name, cut=False)
    wait_members(two_vips, sorted(MEMBER.values()), 240, "both directors back after the test")


def test_the_router_holds_a_resilient_group_of_both_directors_and_sync_runs_on_each(ha_lab):
    out = subprocess.run(["ip", "-n", ha_lab.hosts["router"].netns, "-j", "-d", "nexthop", "show", "id", str(GROUP)],
                         capture_output=True, text=True, check=True).stdout
    group = json.loads(out)[0]
    assert group["type"] == "resilient" and group["resilient_args"]["buckets"] == 64
    for director in MEMBER:
        daemons = ha_lab.salt_json(director, "ipvs.sync_daemons")[director]
        assert daemons == [{"state": "backup", "interface": "eth0", "sync_id": 1},
                           {"state": "master", "interface": "eth0", "sync_id": 1}]


def test_a_killed_director_moves_only_its_flows_and_its_connections_survive(ha_lab):
    lab = ha_lab
    longs = downloads(lab, 20, 25)
    time.sleep(6)  # established, and synced to the other director
    busy = {d: active_connections(lab, d) for d in MEMBER}
    assert all(busy.values()), f"the downloads did not spread over both directors: {busy}"
    load = steady(lab, 14)
    time.sleep(3)
    killed_at = time.time()
    lab.halt("director")
    wait_members(lab, [MEMBER["director2"]], 30, "the killed director taken out")
    results = load.result()
    survived = longs.result()
    # Every connection, through the dead director or the survivor, got every byte.
    assert [d for d in survived if not d["ok"]] == [], survived
    late = failures_after(results, killed_at + 8)
    assert late == [], f"requests still failed 8 s after the kill: {late}"
    assert len([r for r in results if r[0] > killed_at + 1 and r[2]]) > 0
    # Back: its minion re-applies the site at boot, the probes find it forwarding again.
    lab.boot("director")
    lab.wait_booted(["director"])
    wait_members(lab, sorted(MEMBER.values()), 240, "the restarted director back in the group")


def test_with_the_master_down_a_cut_off_director_leaves_and_returns(ha_lab):
    lab = ha_lab
    lab.stop_master()
    load = steady(lab, 12)
    time.sleep(2)
    cut_at = time.time()
    lab.cut("director2")
    wait_members(lab, [MEMBER["director"]], 30, "the cut-off director taken out with the master down")
    results = load.result()
    assert failures_after(results, cut_at + 8) == []
    lab.cut("director2", cut=False)
    wait_members(lab, sorted(MEMBER.values()), 30, "the director plugged back in, master still down")
    lab.start_master()


def test_an_emptied_table_takes_a_director_out_and_the_survivors_flows_stay_when_it_returns(ha_lab):
    lab = ha_lab
    code, _, err = lab.capture("director2", "ipvsadm", "-C")
    assert code == 0, err
    wait_members(lab, [MEMBER["director"]], 30, "the director without a table taken out")
    # Downloads that start now all go through the survivor; the emptied director's return
    # moves only idle buckets (ha:idle_timer), never theirs.
    longs = downloads(lab, 10, 25)
    time.sleep(3)
    changes = changes_by_minion(apply(lab))  # the highstate puts the table back
    assert "lvs-director-ipvs" in changes["director2"]
    wait_members(lab, sorted(MEMBER.values()), 30, "the director with its table back")
    assert [d for d in longs.result() if not d["ok"]] == []
