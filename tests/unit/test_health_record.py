"""The runner's health record as the master keeps it and the directors copy it: ordered
by the master's sequence (never by clocks), pushed again until confirmed, recovered
without forgetting a drain, and read field by field (issue 24)."""

import copy
import json
import math
import os
import time

import pytest

import lvstun.healthrecord as hr
import lvstun.jsonstore
import lvstun.records
from tests.unit.harness import Site

WEB = "tcp:10.10.24.88:80"


def _path(site, record):
    return lvstun.jsonstore.path(site.runner.__opts__, site.record(record).name)


def _damage(path):
    with open(path, "w", encoding="utf-8") as fh:
        fh.write('{"health": {"rs1": ')


def test_a_later_version_supersedes_an_earlier_one_whatever_their_clocks():
    older = {"epoch": "a", "seq": 4, "at": 4e9}  # dated far in the future
    newer = {"epoch": "a", "seq": 5, "at": 1.0}  # a clock stepped back
    assert hr.supersedes(newer, older) and not hr.supersedes(older, newer)
    assert not hr.supersedes(dict(older), older)  # the same version: kept, not replaced
    # A new lineage names the old one; an unrelated one (the master started afresh) wins too.
    renewed = {"epoch": "b", "seq": 1, "supersedes": ["a"]}
    assert hr.supersedes(renewed, newer) and not hr.supersedes(newer, renewed)
    assert hr.supersedes({"epoch": "c", "seq": 1}, newer)
    # An older pack's record (no stamp) never replaces a stamped one.
    assert hr.supersedes(newer, {"at": 5}) and not hr.supersedes({"at": 9e9}, newer)


def test_a_director_keeps_taking_pushes_after_a_record_dated_in_the_future_and_a_clock_stepped_back(
        tmp_path, monkeypatch):
    site = Site(tmp_path, monkeypatch)
    clock = [time.time() + 10 * 365 * 86400]  # the master's clock years ahead...
    monkeypatch.setattr(site.runner.time, "time", lambda: clock[0])
    site.runner.drain("rs2")
    assert site.weight("director", "rs2") == 0
    clock[0] = time.time() - 86400  # ... then stepped back a day
    site.runner.undrain("rs2")
    assert site.weight("director", "rs2") == 1
    site.runner.drain("rs3")
    assert site.weight("director", "rs3") == 0 and site.weight("director", "rs2") == 1


def test_a_push_a_director_does_not_confirm_is_pushed_again_until_it_is(tmp_path, monkeypatch):
    site = Site(tmp_path, monkeypatch, directors=("director", "director2"))
    site.directors["director2"].reachable = False
    site.runner.drain("rs2", reason="upgrade")
    assert site.weight("director", "rs2") == 0 and site.weight("director2", "rs2") == 1
    pending = lvstun.records.load(site.runner.__opts__, site.record(lvstun.records.PUSH_PENDING))
    assert list(pending) == ["director2"]
    problems = site.status()["problems"]
    assert any("director2 has not confirmed" in p["text"] for p in problems)
    # The next call of the runner (a real server's heartbeat: nothing changes) pushes again.
    site.reports["rs1"] = {"services": {"web": {"healthy": True}}, "at": time.time(), "age": 0.5}
    site.runner.health("rs1")
    assert site.weight("director2", "rs2") == 1  # still unreachable: still pending
    site.directors["director2"].reachable = True
    site.sent.clear()
    site.runner.health("rs1")
    assert ("lvs_health.apply", ["director2"]) in site.sent
    assert site.weight("director2", "rs2") == 0
    assert lvstun.records.load(site.runner.__opts__, site.record(lvstun.records.PUSH_PENDING)) == {}


def test_a_director_that_missed_a_push_takes_the_record_from_its_next_highstate(tmp_path, monkeypatch):
    site = Site(tmp_path, monkeypatch)
    director = site.directors["director"]
    director.reachable = False
    site.runner.drain("rs2")
    assert site.weight("director", "rs2") == 1
    ext = load_ext_pillar(site)
    pillar = ext.ext_pillar("director", {"lvs": site.tree["lvs"]})["lvs_health"]
    assert pillar["seq"] == hr.stamp(site.current())[1] and pillar["epoch"]
    director.highstate(pillar_record=pillar)
    assert site.weight("director", "rs2") == 0
    # ... and keeps it through a later highstate whose pillar is older (a stale one).
    stale = dict(pillar, seq=pillar["seq"] - 1, maintenance={})
    director.highstate(pillar_record=stale)
    assert site.weight("director", "rs2") == 0


def load_ext_pillar(site):
    from tests.unit.checkout import load  # noqa: PLC0415

    ext = load("lvs_health_ext_pillar", "_pillar", "lvs_health.py")
    ext.__opts__ = site.runner.__opts__
    return ext


def test_a_drain_survives_its_record_damaged_right_after_it(tmp_path, monkeypatch):
    site = Site(tmp_path, monkeypatch)
    site.runner.drain("rs1", reason="before")
    site.runner.drain("rs2", reason="kernel upgrade")
    _damage(_path(site, lvstun.records.HEALTH))  # health.json.prev predates the drain of rs2
    record = site.current()
    assert sorted(record["maintenance"]) == ["rs1", "rs2"]
    assert record["maintenance"]["rs2"]["reason"] == "kernel upgrade"
    # The next push still drains rs2, and status says what was recovered (no drain lost).
    site.reports["rs3"] = {"services": {"web": {"healthy": False}}, "at": time.time(), "age": 0.5}
    site.runner.health("rs3")
    assert site.weight("director", "rs2") == 0 and site.weight("director", "rs3") == 0
    problems = site.status()["problems"]
    assert [p["level"] for p in problems] == ["warning"] and "recovered" in problems[0]["text"]


def test_a_drain_survives_its_drains_copy_lost(tmp_path, monkeypatch):
    site = Site(tmp_path, monkeypatch)
    site.runner.drain("rs2")
    os.unlink(_path(site, lvstun.records.DRAINS))
    assert list(site.current()["maintenance"]) == ["rs2"]


def test_a_lost_record_and_drains_copy_take_the_drain_back_from_a_director_and_say_so(tmp_path, monkeypatch):
    site = Site(tmp_path, monkeypatch)
    site.runner.drain("rs1")
    site.runner.drain("rs2")
    for record in (lvstun.records.HEALTH, lvstun.records.DRAINS):
        _damage(_path(site, record))  # two files lost: the master's newest drain is gone from its disk
    assert list(site.current()["maintenance"]) == ["rs1"]
    site.directors["director"].changes.clear()
    # The director holds the version the master lost: the next push brings it back, never undrains.
    site.reports["rs3"] = {"services": {"web": {"healthy": False}}, "at": time.time(), "age": 0.5}
    site.runner.health("rs3")
    assert sorted(site.current()["maintenance"]) == ["rs1", "rs2"]
    assert site.weight("director", "rs2") == 0
    assert not any(dest == "10.10.24.22:80" for spec, dests in site.directors["director"].changes for dest in dests)
    texts = [p["text"] for p in site.status()["problems"]]
    assert any("may be lost" in t for t in texts) and any("kept from director's copy: rs2" in t for t in texts)


def test_a_drain_the_master_lost_and_no_director_holds_is_an_error_in_status(tmp_path, monkeypatch):
    site = Site(tmp_path, monkeypatch)
    site.directors["director"].reachable = False
    site.runner.drain("rs2")
    for record in (lvstun.records.HEALTH, lvstun.records.DRAINS):
        _damage(_path(site, record))
    site.directors["director"].reachable = True
    problems = site.status()["problems"]
    assert any(p["level"] == "error" and "may be lost" in p["text"] for p in problems)


def test_a_report_dated_nan_is_stored_as_a_number_and_an_older_report_stays_stale(tmp_path, monkeypatch):
    site = Site(tmp_path, monkeypatch)
    site.reports["rs1"] = {"services": {"web": {"healthy": False}}, "at": math.nan, "age": 0.5}
    site.runner.health("rs1")
    with open(_path(site, lvstun.records.HEALTH), encoding="utf-8") as fh:
        stored = json.load(fh, parse_constant=lambda name: pytest.fail(f"{name} in health.json"))
    assert math.isfinite(stored["health"]["rs1"]["reported_at"])
    site.reports["rs1"] = {"services": {"web": {"healthy": True}}, "at": time.time() - 3600, "age": 0.5}
    assert site.runner.health("rs1").get("stale") is True


def test_undraining_one_service_of_a_host_drained_whole_keeps_its_other_services_drained(tmp_path, monkeypatch):
    site = Site(tmp_path, monkeypatch)
    site.tree["lvs"]["services"]["dns"] = {"vip": "10.10.24.89", "port": 53, "protocol": "udp",
                                           "backends": {"rs2": {}, "rs3": {}}}
    site.edited()
    site.runner.drain("rs2")
    result = site.runner.undrain("rs2", service="web")
    assert result["still_drained"] == ["dns"]
    record = site.current()
    assert record["maintenance"]["rs2"]["services"] == ["dns"]


@pytest.mark.parametrize("name, bad", [
    ("health", {"maintenance": {"rs2": {"reason": "no services"}}}),
    ("health", {"health": ["rs1"]}),
    ("health", {"health": {"rs1": "down"}}),
    ("health", {"epoch": "a", "seq": "7"}),
])
def test_a_master_record_of_the_wrong_shape_is_recovered_not_a_traceback(tmp_path, monkeypatch, name, bad):
    site = Site(tmp_path, monkeypatch)
    site.runner.drain("rs2")
    with open(_path(site, lvstun.records.HEALTH), "w", encoding="utf-8") as fh:
        json.dump(bad, fh)
    assert list(site.current()["maintenance"]) == ["rs2"]
    site.runner.status()
    site.runner.undrain("rs2")
    assert site.weight("director", "rs2") == 1


@pytest.mark.parametrize("record, bad", [
    (lvstun.records.RUNNER_COPY, {"epoch": "x", "seq": 1, "health": {"rs1": {"services": []}}}),
    (lvstun.records.PATH_VERDICTS, {"down": ["rs1"]}),
    (lvstun.records.BACKEND_REPORT, {"services": {}}),  # no "at"
    (lvstun.records.BACKEND_REPORT, {"at": "now", "services": {}}),
    (lvstun.records.HOSTS_REACH, {"at": 1, "reachable": ["rs1"]}),
])
def test_a_minion_record_of_the_wrong_shape_reads_as_its_default(tmp_path, monkeypatch, record, bad):
    site = Site(tmp_path, monkeypatch)
    director = site.directors["director"]
    path = lvstun.jsonstore.path(director.health.__opts__, record.name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(bad, fh)
    assert director.health.record() is not None and director.health.local() == {}
    assert director.health.report()["age"] is None and director.health.reachability() == {}
    director.health.apply()
    assert director.highstate()["result"]


def test_a_highstate_writes_and_reports_the_new_sites_weights_not_the_thread_before_it(tmp_path, monkeypatch):
    """The director's thread writes by the site its table state last applied: between a
    highstate's start (the site remembered) and its table state, a round changes nothing,
    so the table state changes and reports the new weights, as test=True predicted."""
    site = Site(tmp_path, monkeypatch)
    director = site.directors["director"]
    edited = copy.deepcopy(site.tree)
    edited["lvs"]["realservers"]["rs1"]["weight"] = 4
    director.tree = edited
    for module in (director.health, director.site, director.state):
        module.__pillar__ = {"lvs": edited["lvs"]}
    director.site.remember()  # lvs_site.valid, at the highstate's start
    assert director.health.apply()["changes"] == {}  # a round of the thread meanwhile
    assert site.weight("director", "rs1") == 1
    director.state.__states__ = {"ipvs.managed": lambda name, services, remove: _managed(director, services)}
    ret = director.state.table("lvs-site")
    assert ret["changes"] == {f"{WEB} -> 10.10.24.21:80": {"old": {"weight": 1}, "new": {"weight": 4}}}
    assert director.health.apply()["changes"] == {}  # the thread now runs the new site: nothing to repair


def _managed(director, services):
    """ipvs.managed's changes over the harness's kernel (weights only: the table exists)."""
    changes = {}
    for spec, svc in services.items():
        for dest, settings in svc["destinations"].items():
            old = director.kernel[spec][dest]
            if old != settings["weight"]:
                changes[f"{spec} -> {dest}"] = {"old": {"weight": old}, "new": {"weight": settings["weight"]}}
                director.kernel[spec][dest] = settings["weight"]
    return {"name": "lvs-site", "result": True, "changes": changes, "comment": ""}
