"""The lab's traffic verdict follows the service's scheduler (lvs_lab.traffic.share_rule):
the seed's site with unequal weights (rs1 1, rs2 0, rs3 3), one scheduler after another,
each applied to the director by `state.apply` and judged on real traffic."""

import time

import pytest

import lvstun.site
from lvs_lab import health as hh
from lvs_lab import traffic
from tests.lab.site_helpers import apply, edited, site_tree

WEIGHTS = {"rs1": 1, "rs2": 0, "rs3": 3}
COUNT = 24

# (scheduler, flags, persistent): every scheduler of the schema, plus the variants whose
# rule differs (sh with its port flag spreads, and needs its fallback flag: a flow hashed
# to a backend of weight 0 is dropped without it; persistence pins a client to one).
CASES = [(name, [], 0) for name in lvstun.site.SCHEDULERS] + [("sh", ["sh-port", "sh-fallback"], 0),
                                                              ("wlc", [], 60)]
MISSING = {"twos"}  # schedulers Debian 12's UML kernel has no module for (ip_vs_twos: Linux 5.5+, not built)


@pytest.fixture(scope="module", name="seed_weighted")
def fixture_seed_weighted(lab):
    lab.set_pillar(site_tree())
    apply(lab)
    deadline = time.monotonic() + 120
    while set(hh.weights(lab).values()) != {1}:  # earlier tests' health events settle
        assert time.monotonic() < deadline, "backends did not come back in"
        time.sleep(1)
    yield lab
    lab.set_pillar(site_tree())
    apply(lab)


def _site(scheduler, flags, persistent):
    def change(tree):
        for name, weight in WEIGHTS.items():
            tree["realservers"][name]["weight"] = weight
        web = tree["services"]["web"]
        web["scheduler"] = scheduler
        if flags:
            web["flags"] = flags
        if persistent:
            web["persistent"] = persistent
    return edited(site_tree("seed"), change)


@pytest.mark.parametrize(("scheduler", "flags", "persistent"), CASES,
                         ids=[f"{s}{'-' + '-'.join(f) if f else ''}{'-persistent' if p else ''}" for s, f, p in CASES])
def test_traffic_verdict_follows_the_scheduler(seed_weighted, scheduler, flags, persistent):
    lab = seed_weighted
    lab.set_pillar(_site(scheduler, flags, persistent))
    returns = lab.salt_json("--timeout=600", "director", "state.apply", timeout=900)
    failed = {s["__id__"]: s["comment"] for s in returns["director"].values() if not s["result"]}
    if scheduler in MISSING:
        # The kernel refuses the step: the state says which scheduler is missing, reports
        # no change it did not make, and the table keeps serving with its last scheduler.
        assert f"scheduler {scheduler!r} is not available: load ip_vs_{scheduler}" in failed["lvs-director-ipvs"]
        # Other failures are only states that require it (the hosts beacon), not run.
        assert all("requisite" in comment for sid, comment in failed.items() if sid != "lvs-director-ipvs"), failed
        ipvs = next(s for s in returns["director"].values() if s["__id__"] == "lvs-director-ipvs")
        assert "tcp:10.10.24.88:80" not in ipvs["changes"], ipvs["changes"]
        report = traffic.run(lab, lab.site(), count=COUNT, service="web")
        assert report["failed"] == 0 and "rs2" not in report["answers"], traffic.describe(report)
        return
    assert not failed, failed
    code, out, _ = lab.capture("director", "ipvsadm-save", "-n")
    assert code == 0 and f"-s {scheduler}" in out, out
    report = traffic.run(lab, lab.site(), count=COUNT, service="web")
    assert report["ok"], traffic.describe(report)
    assert "rs2" not in report["answers"]  # weight 0 takes no new connection, whatever the scheduler
    rule = report["rule"]
    if scheduler == "rr" and not persistent:
        assert rule == traffic.EQUAL and report["answers"] == {"rs1": COUNT // 2, "rs3": COUNT // 2}
    elif scheduler == "wrr":
        assert rule == traffic.WEIGHTED and report["answers"] == {"rs1": COUNT // 4, "rs3": 3 * COUNT // 4}
    elif persistent or (scheduler in ("sh", "dh", "mh") and not flags):
        assert rule == traffic.ONE and len(report["answers"]) == 1
    else:
        assert rule == traffic.ANY
    assert report["rule_text"] in traffic.describe(report)
