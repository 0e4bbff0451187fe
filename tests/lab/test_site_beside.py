"""Two sites from one master, on real kernels: the seed's site and a second, smaller one
(pillar/lvs/second.sls: one director, two real servers) on the same addresses, each on
a LAN and with a client of its own; the top file gives each site's minions their site
only (no target is '*').

Brought up beside the lab's seed (``Lab.add_site``, what ``lvs-lab up --add-site`` and
``lvs-lab add-site`` run) and taken away at the end, so that the next modules find the
seed's lab as it was."""

import datetime
import sys
import time

import pytest

from lvs_lab import health as hh
from lvs_lab import lab as lab_mod
from lvs_lab import traffic
from lvs_lab.health import TIMEOUT

SECOND = "second"
SEED_ALL = {"10.10.24.21": 1, "10.10.24.22": 1, "10.10.24.23": 1}
SECOND_ALL = {"10.10.24.21": 1, "10.10.24.22": 1}  # b-rs1, b-rs2: the seed's rs1 and rs2 addresses
QUIET = 6  # s a table is watched for a change that must not come


@pytest.fixture(scope="module", name="both")
def fixture_both(lab):
    began = time.monotonic()
    lab.add_site(SECOND, apply=False)
    sys.stderr.write(f"\nsite {SECOND} booted beside the seed's in {time.monotonic() - began:.0f} s\n")
    yield lab
    lab.remove_site(SECOND)
    assert lab_mod.Lab().extra_sites == []


def _unchanged(lab, director, want, seconds=QUIET):
    """``director``'s web table stays ``want`` for ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert hh.weights(lab, director) == want, f"{director}: {hh.weights(lab, director)}"
        time.sleep(0.5)


def test_a_highstate_of_every_minion_serves_both_sites_each_from_its_own_servers(both):
    lab = both
    with open(lab.pillar_overlay + "/top.sls", encoding="utf-8") as fh:
        assert "'*'" not in fh.read()
    began = time.monotonic()
    lab.apply()  # salt '*' state.apply: both sites' minions, each from its own pillar
    sys.stderr.write(f"salt '*' state.apply over both sites: {time.monotonic() - began:.0f} s\n")
    lab.wait_serving(lab_mod.SERVING_TIMEOUT, key=SECOND)
    lab.wait_serving(lab_mod.SERVING_TIMEOUT)
    seed, second = lab.site(), lab.site(SECOND)
    assert (seed.name, second.name) == ("seed", SECOND)
    for site, servers in ((seed, {"rs1", "rs2", "rs3"}), (second, {"b-rs1", "b-rs2"})):
        report = traffic.run(lab, site, count=12)
        assert report["ok"], traffic.describe(report)
        assert set(report["answers"]) == servers, report["answers"]
    status = lab.salt_run("lvs.status")
    assert set(status) == {"seed", SECOND}
    assert set(status[SECOND]["services"]["web"]["backends"]) == {"b-rs1", "b-rs2"}
    assert set(status["seed"]["services"]["web"]["backends"]) == {"rs1", "rs2", "rs3"}


def test_a_service_killed_in_one_site_drains_there_only(both):
    lab = both
    hh.block_service(lab, "rs1")
    try:
        hh.wait_for(lambda: hh.weight_of(lab, "rs1") == 0, TIMEOUT)
        # b-rs1 has rs1's address, on the other site's LAN: it stays in.
        _unchanged(lab, "b-director", SECOND_ALL)
    finally:
        hh.block_service(lab, "rs1", blocked=False)
    hh.wait_for(lambda: hh.weights(lab) == SEED_ALL, hh.RESTORE)


def test_a_drain_in_one_site_changes_no_table_of_the_other(both):
    lab = both
    ret = lab.salt_run("lvs.drain", "b-rs1")
    try:
        assert (ret["drained"], ret["site"]) == ("b-rs1", SECOND), ret
        hh.wait_for(lambda: hh.weights(lab, "b-director") == {**SECOND_ALL, "10.10.24.21": 0}, TIMEOUT)
        _unchanged(lab, "director", SEED_ALL)
        status = lab.salt_run("lvs.status")
        assert status[SECOND]["services"]["web"]["backends"]["b-rs1"]["maintenance"]
        assert not any(row["maintenance"] for row in status["seed"]["services"]["web"]["backends"].values())
    finally:
        lab.salt_run("lvs.undrain", "b-rs1")
    hh.wait_for(lambda: hh.weights(lab, "b-director") == SECOND_ALL, TIMEOUT)


def test_a_report_forged_by_the_other_sites_minion_changes_nothing(both):
    lab = both
    since = datetime.datetime.now()
    # b-rs1 claims to be the seed's rs1 and says its web service is down.
    payload = '{"services": {"web": {"healthy": false, "reason": "forged"}}, "changed": ["web"]}'
    assert lab.salt_json("b-rs1", "event.send", "salt/beacon/rs1/lvs_backend/", payload).get("b-rs1") is True
    # On its own tag, naming rs1 in the data: the runner takes b-rs1's word for b-rs1 only.
    assert lab.salt_json("b-rs1", "event.send", "salt/beacon/b-rs1/lvs_backend/",
                         '{"id": "rs1", "services": {"web": {"healthy": false}}, "changed": ["web"]}'
                         ).get("b-rs1") is True
    # The reactor ran the runner, which asked rs1 itself (and rs1 is healthy).
    hh.wait_for(lambda: hh.report_jobs_to(lab, "rs1", since) >= 1, TIMEOUT, step=1)
    _unchanged(lab, "director", SEED_ALL)
    assert hh.weights(lab, "b-director") == SECOND_ALL
    assert hh.recorded(lab, "rs1", "web") is not False
