"""The runner's hooks (``lvstun.hooks``): which decisions fire which tags, and the
signature that tells a user's reactor the runner fired them."""

import copy
import os

import pytest
import yaml
from salt.exceptions import SaltInvocationError

import lvstun.gate
import lvstun.hooks as hooks
import lvstun.site

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEY = hooks.new_key()


@pytest.fixture(name="seed")
def fixture_seed():
    with open(os.path.join(REPO, "pillar", "lvs", "seed.sls"), encoding="utf-8") as fh:
        return lvstun.site.parse(yaml.safe_load(fh))


def down(record, *minions, service="web"):
    record = copy.deepcopy(record)
    for minion in minions:
        record.setdefault("health", {})[minion] = {"services": {service: False}, "host": True}
    return record


def tags(decisions):
    return [(tag.removeprefix(hooks.PREFIX), data.get("backend") or data.get("service")) for tag, data in decisions]


def test_a_backend_down_then_every_backend_down_then_back(seed):
    one = down({}, "rs1")
    assert tags(hooks.decisions(seed, {}, one, 1.0, {"rs1": {"web": "HTTP 503"}})) == [("backend/down", "rs1")]
    event = hooks.decisions(seed, {}, one, 1.0, {"rs1": {"web": "HTTP 503"}})[0][1]
    assert event == {"site": "seed", "service": "web", "backend": "rs1", "address": "10.10.24.21", "at": 1.0,
                     "reason": "HTTP 503"}
    every = down(one, "rs2", "rs3")
    assert tags(hooks.decisions(seed, one, every, 2.0)) == [
        ("backend/down", "rs2"), ("backend/down", "rs3"), ("service/below_floor", "web"), ("service/down", "web")]
    floor = dict(hooks.decisions(seed, one, every, 2.0))[hooks.PREFIX + "service/below_floor"]
    assert (floor["serving"], floor["floor"]) == (0, 1)
    back = down({}, "rs2", "rs3")
    assert tags(hooks.decisions(seed, every, back, 3.0)) == [
        ("backend/up", "rs1"), ("service/above_floor", "web"), ("service/up", "web")]
    assert hooks.decisions(seed, back, copy.deepcopy(back), 4.0) == []  # nothing changed: nothing fires


def test_a_drain_and_a_host_verdict(seed):
    drained = {"maintenance": {"rs2": {"services": ["*"], "reason": "kernel upgrade"}}}
    (tag, data), = hooks.decisions(seed, {}, drained, 1.0)
    assert tag == hooks.PREFIX + "backend/drained" and data["reason"] == "kernel upgrade"
    assert tags(hooks.decisions(seed, drained, {}, 2.0)) == [("backend/undrained", "rs2")]
    host_down = {"health": {"rs3": {"services": {}, "host": False}}}
    (tag, data), = hooks.decisions(seed, {}, host_down, 3.0, {"rs3": "unreachable"})
    assert (tag, data["backend"], data["reason"]) == (hooks.PREFIX + "backend/down", "rs3", "unreachable")


def test_only_what_the_key_signed_verifies():
    data = hooks.signed(KEY, "lvs/hook/service/down", {"service": "web", "serving": 0, "floor": 1, "at": 1.0})
    assert hooks.verify(KEY, "lvs/hook/service/down", data) == {
        "service": "web", "serving": 0, "floor": 1, "at": 1.0, "tag": "lvs/hook/service/down"}
    stamped = {**data, "_stamp": "2026-12-05T19:45:25.220000"}  # what Salt adds as it fires it
    assert hooks.verify(KEY, "lvs/hook/service/down", stamped)["service"] == "web"
    assert hooks.verify(KEY, "lvs/hook/service/up", data) is None  # another tag
    assert hooks.verify(hooks.new_key(), "lvs/hook/service/down", data) is None  # another key
    assert hooks.verify(KEY, "lvs/hook/service/down", {**data, "service": "api"}) is None  # changed
    unsigned = {k: v for k, v in data.items() if k != "signature"}
    assert hooks.verify(KEY, "lvs/hook/service/down", unsigned) is None
    assert hooks.verify(KEY, "lvs/hook/service/down", {**data, "signature": "zz"}) is None
    assert hooks.verify(KEY, "lvs/hook/service/down", "text") is None
    # What a minion's event.send puts on the bus: its payload, with its id.
    forged = {"id": "rs1", "data": data, "tag": "lvs/hook/service/down", "_stamp": "2026-12-05T00:00:00"}
    assert hooks.verify(KEY, "lvs/hook/service/down", forged) is None


def test_the_runner_fires_each_decision_once_signed_with_the_masters_key(tmp_path, monkeypatch):
    import time  # noqa: PLC0415

    from tests.unit.harness import Site  # noqa: PLC0415

    site = Site(tmp_path, monkeypatch)
    site.runner.drain("rs2", reason="kernel upgrade")
    key = hooks.master_key(site.runner.__opts__)
    assert [(tag, hooks.verify(key, tag, data)["reason"]) for tag, data in site.fired] == [
        ("lvs/hook/backend/drained", "kernel upgrade")]
    site.fired.clear()
    for minion in ("rs1", "rs3", "rs4"):  # every backend but the drained one
        site.reports[minion] = {"services": {"web": {"healthy": False, "reason": "connection\nrefused"}},
                                "at": time.time(), "age": 0.5}
        site.runner.health(minion)
    assert [tag.removeprefix(hooks.PREFIX) for tag, _ in site.fired] == [
        "backend/down", "backend/down", "backend/down", "service/below_floor", "service/down"]
    assert all(hooks.verify(key, tag, data) for tag, data in site.fired)
    assert site.fired[0][1]["reason"] == "connection refused"  # the report's words, on one line
    site.fired.clear()
    site.runner.health("rs3")  # the same report again (a heartbeat): no decision, no hook
    assert site.fired == []
    # The key stays the master's: the same one at the next use.
    assert hooks.master_key(site.runner.__opts__) == key


def test_the_routers_verdicts_on_a_director_fire_down_then_up_once_each_and_a_drain_fires_neither(
        tmp_path, monkeypatch):
    from tests.unit.harness import Site  # noqa: PLC0415

    site = Site(tmp_path, monkeypatch, directors=("director", "director2"))
    router = site.site.router.minion_id
    view = {"at": 100.0, "up": {}, "reasons": {}}  # before the router's first verdict: every director up
    drained = []
    monkeypatch.setattr(site.runner, "_router_call",
                        lambda _site, fun, *args: copy.deepcopy(view if fun == "lvs_directors.view" else drained))

    def poll(at, up, reasons=None):
        view.update(at=at, up=up, reasons=reasons or {})
        site.fired.clear()
        return site.runner.directors(router)

    assert poll(100.0, {})["fired"] == []
    poll(101.0, {"director": True, "director2": False}, {"director2": "http 10.10.24.88:80: timed out"})
    key = hooks.master_key(site.runner.__opts__)
    assert [(tag, hooks.verify(key, tag, data)) for tag, data in site.fired] == [(
        "lvs/hook/director/down", {"tag": "lvs/hook/director/down", "site": site.site.name, "director": "director2",
                                   "reason": "http 10.10.24.88:80: timed out", "at": site.fired[0][1]["at"]})]
    assert poll(102.0, {"director": True, "director2": False})["fired"] == []  # a heartbeat: nothing new
    assert poll(103.0, {"director": True, "director2": True})["fired"] == ["lvs/hook/director/up"]
    assert poll(99.0, {"director": False, "director2": True}) == {"site": site.site.name, "stale": True}
    assert site.fired == []  # an older view than one fired on already
    drained.append("director")  # the operator's drain: lvs.drain fires its own hooks
    assert poll(104.0, {"director": False, "director2": True})["fired"] == []
    drained.clear()
    assert poll(105.0, {"director": True, "director2": True})["fired"] == []
    # Only the site's router is asked on its event; a director or a stranger is refused.
    for minion in ("director2", "rs1", "nobody"):
        with pytest.raises(SaltInvocationError, match="is not a router of any site"):
            site.runner.directors(minion)


def test_a_router_beacon_event_asks_for_lvs_directors_and_nothing_else_does():
    assert lvstun.gate.job_for("salt/beacon/router/lvs_directors/") == ("directors", "router")
    assert lvstun.gate.job_for("salt/beacon/rs1/lvs_backend/") == ("health", "rs1")
    assert lvstun.gate.job_for("salt/beacon/director/lvs_hosts/") == ("hosts", "director")
    assert lvstun.gate.job_for("salt/beacon/router/lvs_paths/") == (None, None)
    assert lvstun.gate.job_for("lvs/hook/director/down") == (None, None)
