"""The second example site (pillar/lvs/two_vips.sls): two VIPs, one TCP and one UDP,
four real servers with unequal weights, built from scratch by `lvs-lab up --site`.
"""

import os

import pytest

from lvs_lab import lab as lab_mod
from lvs_lab import traffic
from tests.lab.conftest import _why_not, run_cli
from tests.lab.site_helpers import apply, changes_by_minion, edited, site_tree, snapshot


@pytest.fixture(scope="module", name="two_vips")
def fixture_two_vips():
    reason = _why_not()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"the lab cannot run on this CI machine: {reason}")
        pytest.skip(f"lab tests skipped: {reason}")
    if lab_mod.Lab().hosts:
        assert run_cli("down").returncode == 0
    proc = run_cli("up", "--site", "two_vips")
    assert proc.returncode == 0, f"lvs-lab up --site two_vips failed:\n{proc.stdout}\n{proc.stderr}"
    yield lab_mod.Lab()
    if os.environ.get("LVS_LAB_KEEP") != "1":
        run_cli("down")


def _near(answers, expected):
    """After a weight change, weighted round robin goes on from where its cycle was:
    each share is within one request of the weights' (from scratch they are exact)."""
    assert set(answers) == set(expected) and all(abs(answers[k] - v) <= 1 for k, v in expected.items()), answers


def _report(lab, service, count):
    report = traffic.run(lab, lab.site(), count=count, service=service)
    assert report["ok"], traffic.describe(report)
    return report


def test_from_scratch_every_service_is_shared_by_weight_and_bypasses_the_director(two_vips):
    web = _report(two_vips, "web", 40)
    assert web["answers"] == {"rs1": 4, "rs2": 8, "rs3": 12, "rs4": 16}
    dns = _report(two_vips, "dns", 36)
    assert dns["answers"] == {"rs2": 6, "rs3": 18, "rs4": 12}  # the service's own weights
    for report in (web, dns):
        assert report["response_bytes_through_directors"] == 0


def test_second_apply_reports_no_changes_on_any_minion(two_vips):
    assert changes_by_minion(apply(two_vips)) == {minion: {} for minion in two_vips.minions}


def test_test_mode_predicts_exactly_and_one_apply_converges(two_vips):
    def change(tree):
        tree["realservers"]["rs1"]["weight"] = 4
        tree["services"]["dns"]["backends"]["rs2"] = {"weight": 3}

    two_vips.set_pillar(edited(site_tree("two_vips"), change))
    before = snapshot(two_vips)
    predicted = changes_by_minion(apply(two_vips, "test=True"))
    assert snapshot(two_vips) == before
    assert predicted == {**{minion: {} for minion in two_vips.minions}, "director": {"lvs-director-ipvs": {
        "tcp:10.10.24.88:80 -> 10.10.24.21:80": {"old": {"weight": 1}, "new": {"weight": 4}},
        "udp:10.10.24.89:53 -> 10.10.24.22:53": {"old": {"weight": 1}, "new": {"weight": 3}}}}}
    assert changes_by_minion(apply(two_vips)) == predicted
    _near(_report(two_vips, "dns", 24)["answers"], {"rs2": 9, "rs3": 9, "rs4": 6})


def test_a_real_server_removed_then_added_converges_in_one_apply_each(two_vips):
    two_vips.set_pillar(edited(site_tree("two_vips"), lambda tree: tree["realservers"].pop("rs1")))
    changes = changes_by_minion(apply(two_vips))
    web = changes["director"]["lvs-director-ipvs"]["tcp:10.10.24.88:80 -> 10.10.24.21:80"]
    assert web["old"]["weight"] > 0 and web["new"] in (None, {"weight": 0, "draining": True})
    _near(_report(two_vips, "web", 27)["answers"], {"rs2": 6, "rs3": 9, "rs4": 12})
    two_vips.reset_pillar()
    changes = changes_by_minion(apply(two_vips))
    assert changes["director"]["lvs-director-ipvs"]["tcp:10.10.24.88:80 -> 10.10.24.21:80"]["new"]["weight"] == 1
    _near(_report(two_vips, "web", 40)["answers"], {"rs1": 4, "rs2": 8, "rs3": 12, "rs4": 16})
