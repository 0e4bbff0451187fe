"""Backend health logic (``lvstun.health``) and the beacon's round (pure)."""

import itertools
import os
import time
import types

import pytest
import yaml

import lvstun.drift
import lvstun.health as health
import lvstun.healthrecord
import lvstun.roles
import lvstun.site
from tests.unit.checkout import load

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def site_tree(**web):
    with open(os.path.join(REPO, "pillar", "lvs", "seed.sls"), encoding="utf-8") as fh:
        tree = yaml.safe_load(fh)
    tree["lvs"]["realservers"]["rs4"] = {"address": "10.10.24.24"}
    tree["lvs"]["services"]["web"].update(web)
    return tree


def web(tree):
    return lvstun.site.parse(tree).services["web"]


def test_damper_needs_fall_failures_then_rise_successes():
    damper = health.Damper(rise=2, fall=3)
    assert [damper.feed(False) for _ in range(3)] == [False, False, True] and damper.up is False
    assert damper.feed(True) is False and damper.feed(False) is False  # a success, then the streak resets
    assert [damper.feed(True) for _ in range(2)] == [False, True] and damper.up is True
    again = health.Damper.load(2, 3, damper.dump())
    assert again.up is True and again.streak == 0


def test_a_flapping_check_never_changes_state_with_rise_and_fall_two():
    damper = health.Damper(rise=2, fall=2)
    assert not any(damper.feed(i % 2 == 0) for i in range(100))


@pytest.mark.parametrize("floor, total, count", [(1, 4, 1), (0, 4, 0), (9, 4, 4), ("50%", 4, 2), ("50%", 3, 2),
                                                 ("100%", 3, 3), ("0%", 3, 0)])
def test_floor_count(floor, total, count):
    assert health.floor_count(floor, total) == count


def test_live_weights_drop_down_and_drained_backends():
    svc = web(site_tree(backends={"rs1": {"weight": 1}, "rs2": {"weight": 2}, "rs3": {"weight": 3}}))
    record = {"health": {"rs1": {"services": {"web": False}}},
              "maintenance": {"rs2": {"services": ["*"], "reason": "upgrade"}}}
    assert health.live_weights(svc, record) == {"rs1": 0, "rs2": 0, "rs3": 3}
    assert health.live_weights(svc, {}) == {"rs1": 1, "rs2": 2, "rs3": 3}


def test_the_floor_keeps_down_backends_by_name_but_never_drained_ones():
    svc = web(site_tree(floor=2, backends={"rs1": {}, "rs2": {}, "rs3": {}}))
    record = {"health": {"rs1": {"services": {"web": False}}, "rs2": {"host": False, "services": {}},
                         "rs3": {"services": {"web": False}}}}
    assert health.live_weights(svc, record) == {"rs1": 1, "rs2": 1, "rs3": 0}
    record["maintenance"] = {"rs1": {"services": ["web"]}}
    assert health.live_weights(svc, record) == {"rs1": 0, "rs2": 1, "rs3": 1}


def test_the_sorry_server_takes_over_only_when_no_backend_is_healthy():
    svc = web(site_tree(sorry="rs4", floor=0))
    assert [b.minion_id for b in svc.backends] == ["rs1", "rs2", "rs3"]  # not a backend by default
    assert health.live_weights(svc, {}) == {"rs1": 1, "rs2": 1, "rs3": 1, "rs4": 0}
    down = {"health": {m: {"services": {"web": False}} for m in ("rs1", "rs2", "rs3")}}
    assert health.live_weights(svc, down) == {"rs1": 0, "rs2": 0, "rs3": 0, "rs4": 1}


def test_the_directors_ipvs_table_follows_the_record():
    site = lvstun.site.parse(site_tree(sorry="rs4"))
    record = {"health": {"rs2": {"services": {"web": False}}}}
    dests = lvstun.roles.ipvs_services(site, record)["tcp:10.10.24.88:80"]["destinations"]
    assert {d: s["weight"] for d, s in dests.items()} == {
        "10.10.24.21:80": 1, "10.10.24.22:80": 0, "10.10.24.23:80": 1, "10.10.24.24:80": 0}
    assert lvstun.roles.for_minion(site, "rs4")["vips"] == ["10.10.24.88"]  # the sorry server holds the VIP


def _runner_module():
    return load("lvs_runner", "_runners", "lvs.py")


def test_restores_wait_for_the_hold_time():
    assert health.may_restore({"down_at": 100}, now=100 + health.HOLD)
    assert not health.may_restore({"down_at": 100}, now=100 + health.HOLD - 1)


def test_a_backend_flapping_every_second_changes_weight_a_bounded_number_of_times():
    runner = _runner_module()
    weights = [1]  # rs1's weight after each report
    site = lvstun.site.parse(site_tree())
    record = {"health": {}, "maintenance": {}}
    for second in range(120):  # reports alternate down/up every second for two minutes
        lvstun.healthrecord.apply_verdict(site, record, 1000 + second, "rs1", services={"web": second % 2 == 1})
        weights.append(runner._published(site, record)["weights"]["tcp:10.10.24.88:80"]["10.10.24.21:80"])
    changes = sum(1 for a, b in itertools.pairwise(weights) if a != b)
    # Down at once, back at most once per HOLD seconds.
    assert 2 <= changes <= 2 * (120 // health.HOLD + 1), weights


def test_a_down_backend_comes_back_after_the_hold_time():
    site = lvstun.site.parse(site_tree())
    record = {"health": {}, "maintenance": {}}
    lvstun.healthrecord.apply_verdict(site, record, 1000, "rs1", services={"web": False})
    web = lvstun.roles.ipvs_services(site, record)["tcp:10.10.24.88:80"]
    assert web["destinations"]["10.10.24.21:80"]["weight"] == 0
    lvstun.healthrecord.apply_verdict(site, record, 1001, "rs1", services={"web": True})
    assert record["health"]["rs1"]["held"] == ["web"] and record["health"]["rs1"]["services"]["web"] is False
    lvstun.healthrecord.apply_verdict(site, record, 1000 + health.HOLD, "rs1", services={"web": True})
    assert record["health"]["rs1"]["held"] == [] and record["health"]["rs1"]["services"]["web"] is True


@pytest.mark.parametrize("web_edit, problem", [
    ({"floor": -1}, "lvs:services:web:floor: -1 must be a count from 0"),
    ({"floor": 5}, "lvs:services:web:floor: 5 must be a count from 0 to the 4 backend(s)"),
    ({"floor": "150%"}, "lvs:services:web:floor: '150%' is not a percentage"),
    ({"sorry": "rs9"}, "lvs:services:web:sorry: 'rs9' is not a real server of this site"),
    ({"sorry": "rs1", "backends": {"rs1": {}}}, "lvs:services:web:sorry: rs1 is a backend of this service"),
])
def test_health_settings_are_validated(web_edit, problem):
    with pytest.raises(lvstun.site.SiteError) as err:
        lvstun.site.parse(site_tree(**web_edit))
    assert any(e.startswith(problem) for e in err.value.errors), err.value.errors


def _beacon_module():
    return load("lvs_backend_beacon", "_beacons", "lvs_backend.py")


def test_beacon_fires_on_damped_changes_and_heartbeats_only():
    beacon = _beacon_module()
    check = {"type": "http", "port": 80, "rise": 2, "fall": 2}
    cfg = {"checks": {"web": check}}
    state = {}
    ok, bad = {"web": (True, "HTTP 200")}, {"web": (False, "connection refused")}
    assert beacon.round_(cfg, state, 0, 10, [], ok)["changed"] == []  # the first heartbeat
    assert beacon.round_(cfg, state, 1, 10, [], bad) is None  # one failure: damped
    event = beacon.round_(cfg, state, 2, 10, [], bad)
    assert event["changed"] == ["web"] and event["services"]["web"] == {"healthy": False,
                                                                       "reason": "connection refused"}
    assert beacon.round_(cfg, state, 3, 10, [], bad) is None
    assert beacon.round_(cfg, state, 12, 10, [], bad)["changed"] == []  # heartbeat
    # A broken tunnel fails every service, whatever the service answers.
    state = {}
    down = [lvstun.drift.make("up", "tunl0", True, False)]
    beacon.round_(cfg, state, 0, 10, down, ok)
    event = beacon.round_(cfg, state, 1, 10, down, ok)
    assert event["services"]["web"]["healthy"] is False and "tunl0 up" in event["services"]["web"]["reason"]
    assert event["tunnel"] == ["tunl0 up"]


def test_a_drift_about_another_vip_does_not_fail_a_service():
    beacon = _beacon_module()
    check = {"type": "http", "port": 80, "rise": 1, "fall": 1, "vip": "10.10.24.88"}
    cfg = {"checks": {"web": check, "api": {**check, "vip": "10.10.24.89"}}}
    ok = {"web": (True, "HTTP 200"), "api": (True, "HTTP 200")}
    adding = [lvstun.drift.make("address", "tunl0", "10.10.24.89/32", None)]
    event = beacon.round_(cfg, {}, 0, 10, adding, ok)
    assert event["services"]["web"]["healthy"] is True and event["services"]["api"]["healthy"] is False
    # A stale address that is no service's VIP fails neither service.
    removing = [lvstun.drift.make("address", "tunl0", None, "10.10.24.8/32")]
    event = beacon.round_(cfg, {}, 0, 10, removing, ok)
    assert event["services"]["web"]["healthy"] is True and event["services"]["api"]["healthy"] is True


def test_a_gue_port_or_gre0_fails_only_the_services_wrapped_so():
    beacon = _beacon_module()
    check = {"type": "http", "port": 80, "rise": 1, "fall": 1, "vip": "10.10.24.88"}
    cfg = {"checks": {"web": {**check, "encap": ["gue", 6080]}, "api": {**check, "encap": ["gue", 7000]},
                      "dns": {**check, "vip": "10.10.24.89", "encap": ["gre", 0]},
                      "old": {**check, "vip": "10.10.24.90"}}}  # ipip (a report from before the key)
    ok = {name: (True, "HTTP 200") for name in cfg["checks"]}

    def healthy(drifts):
        event = beacon.round_(cfg, {}, 0, 10, drifts, ok)
        return {name: svc["healthy"] for name, svc in event["services"].items()}

    closed = [lvstun.drift.make("gue-port", "6080", "gue", None)]
    assert healthy(closed) == {"web": False, "api": True, "dns": True, "old": True}
    assert healthy([lvstun.drift.make("up", "gre0", True, False)]) == {"web": True, "api": True, "dns": False,
                                                                       "old": True}
    assert healthy([lvstun.drift.make("sysctl", "net.ipv4.conf.gre0.rp_filter", 0, 1)])["dns"] is False
    # What the pack takes away once no service uses it fails nothing.
    stale = [lvstun.drift.make("gue-port", "5555", None, "gue"), lvstun.drift.make("up", "gre0", False, True)]
    assert set(healthy(stale).values()) == {True}


def _asked(runner, answer, monkeypatch):
    monkeypatch.setattr(runner, "_client", lambda: types.SimpleNamespace(cmd=lambda *a, **k: {"rs1": answer}))
    return runner._report("rs1", lvstun.site.parse(site_tree()))


def test_a_report_is_kept_only_for_the_services_the_site_says_the_minion_backs(monkeypatch):
    runner = _runner_module()
    made_up = {f"svc{n}": {"healthy": True} for n in range(20000)}
    report, _ = _asked(runner, {"services": {"web": {"healthy": True}, **made_up}, "age": 1}, monkeypatch)
    assert report == {"services": {"web": True}, "weights": {}, "alpha": set(), "reasons": {"web": ""}}


@pytest.mark.parametrize("answer", [
    {"services": {"web": {"healthy": True}}, "age": "0"},
    {"services": {"web": {"healthy": True}}, "age": True},
    {"services": {"web": {"healthy": True}}, "age": -5},
    {"services": {"web": {"healthy": True}}},
    {"services": ["web"], "age": 0},
    {"age": 0},
    "up",
    None,
])
def test_malformed_reports_change_nothing_and_raise_nothing(monkeypatch, answer):
    assert _asked(_runner_module(), answer, monkeypatch) == (None, None)


def test_report_values_are_read_strictly_and_a_future_date_counts_as_now(monkeypatch):
    runner = _runner_module()
    report, at = _asked(runner, {"services": {"web": "yes"}, "age": 0, "at": time.time() + 10**6}, monkeypatch)
    assert report["services"] == {"web": False}  # healthy only when it says so as a mapping with true
    assert at <= time.time()
    report, _ = _asked(runner, {"services": {"web": {"healthy": 1, "weight": 5, "alpha": 1}}, "age": 0}, monkeypatch)
    assert report == {"services": {"web": False}, "weights": {}, "alpha": set(),  # web's check is not dynamic
                      "reasons": {"web": ""}}


@pytest.mark.parametrize(("seen", "directors", "verdict"), [
    ([False], 1, False),                 # one director: its own view decides
    ([True], 1, True),
    ([False, True], 2, True),            # one of two (lying, or cut off itself): not enough
    ([False, False], 2, False),
    ([False, None], 2, True),            # the other did not answer: still one of two
    ([False, False, True], 3, False),    # a majority of three
    ([False, True, True], 3, True),
    (["down", 0, None], 2, None),        # nothing but true/false counts
    ([], 2, None),
])
def test_a_host_is_down_only_when_a_majority_of_directors_says_so(seen, directors, verdict):
    assert health.host_verdict(seen, directors) is verdict
