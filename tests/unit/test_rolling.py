"""Rolling maintenance (``lvs.rolling``, ``lvstun.rolling``) through the runner harness:
the directors answer with their own modules, the real servers' state runs and reboots
are set by the test. Which host is out when, where a rolling stops and how it resumes;
the lab proves it on real kernels under load."""

import time

import pytest
from salt.exceptions import SaltInvocationError

import lvstun.records
import lvstun.rolling
import lvstun.site
from tests.unit.harness import Site

WEB = "tcp:10.10.24.88:80"


@pytest.fixture(name="site")
def fixture_site(tmp_path, monkeypatch):
    site = Site(tmp_path, monkeypatch)
    healthy = {"services": {"web": {"healthy": True}}, "at": time.time() + 3600, "age": 0.5}
    site.reports = {name: dict(healthy) for name in ("rs1", "rs2", "rs3", "rs4")}
    return site


def roll(site, **kwargs):
    """``lvs.rolling`` over the harness's one site: what it says of that site."""
    return site.runner.rolling(**kwargs)[site.site.name]


def calls(site, *funs):
    """The runner's calls of ``funs``, in order, as ``(fun, target)``."""
    return [(fun, target) for fun, targets in site.sent if fun in funs for target in targets]


def test_test_mode_says_the_plan_and_changes_nothing(site):
    plan = roll(site, action="upgrade", batch=2, test=True)
    assert plan == {"plan": {"batches": [["rs1", "rs2"], ["rs3", "rs4"]], "steps": list(lvstun.rolling.STEPS),
                             "action": "upgrade", "reboot": False, "timeout": 600.0, "on_timeout": "stop",
                             "reboot_timeout": 600.0},
                    "floor": []}
    assert site.sent == [] and site.current()["maintenance"] == {}


def test_one_host_at_a_time_drained_acted_on_healthy_then_back(site):
    out = {}

    def watch(fun):
        def during(target, call, args):
            out[target] = sorted(m for m in site.current()["maintenance"])  # who is drained during it
            return fun(target, call, args)
        return during

    site.host_call = watch(site.host_call)
    result = roll(site, targets="rs1,rs2,rs3", action="upgrade")
    assert result["done"] == ["rs1", "rs2", "rs3"] and set(result["seconds"]) == {"rs1", "rs2", "rs3"}
    assert calls(site, "state.apply") == [("state.apply", "rs1"), ("state.apply", "rs2"), ("state.apply", "rs3")]
    assert out == {"rs1": ["rs1"], "rs2": ["rs2"], "rs3": ["rs3"]}  # never more than the one out
    assert site.current()["maintenance"] == {}
    assert all(site.weight("director", name) == 1 for name in ("rs1", "rs2", "rs3", "rs4"))
    assert lvstun.records.load(site.runner.__opts__, site.record(lvstun.records.ROLLING))["finished"] is True
    drained = [tag for tag, _ in site.fired if tag.endswith("/drained")]
    assert len(drained) == 3  # each drain is a hook too
    steps = [(data["hosts"], data["step"]) for tag, data in site.fired if tag == "lvs/hook/rolling/step"]
    assert {data["site"] for tag, data in site.fired if tag.startswith("lvs/hook/rolling/")} == {site.site.name}
    assert steps == [(["rs1"], step) for step in ("drain", "idle", "action", "healthy", "undrain")] + [
        (["rs2"], step) for step in ("drain", "idle", "action", "healthy", "undrain")] + [
        (["rs3"], step) for step in ("drain", "idle", "action", "healthy", "undrain")]


def test_a_failed_action_stops_with_that_host_drained_and_the_next_untouched_then_resumes(site):
    site.failing.add("rs2")
    stopped = roll(site, targets=["rs1", "rs2", "rs3"], action="upgrade")
    assert stopped["stopped"] == "state.apply upgrade failed on rs2" and stopped["step"] == "action"
    assert stopped["done"] == ["rs1"]
    assert list(site.current()["maintenance"]) == ["rs2"]
    assert site.weight("director", "rs2") == 0 and site.weight("director", "rs3") == 1
    data, = [d for t, d in site.fired if t == "lvs/hook/rolling/stop"]
    assert (data["hosts"], data["step"], data["reason"]) == (["rs2"], "action", "state.apply upgrade failed on rs2")
    assert ("state.apply", "rs3") not in calls(site, "state.apply")
    site.failing.clear()
    resumed = roll(site, resume=True)
    assert resumed["done"] == ["rs1", "rs2", "rs3"]
    assert site.current()["maintenance"] == {}
    with pytest.raises(SaltInvocationError, match="no rolling to resume"):
        roll(site, resume=True)


def test_a_host_not_healthy_after_its_action_stays_drained(site):
    site.reports["rs1"]["services"]["web"]["healthy"] = False
    stopped = roll(site, targets="rs1", action="upgrade", timeout=0)
    assert stopped["step"] == "healthy" and "not healthy within 0 s" in stopped["stopped"]
    assert list(site.current()["maintenance"]) == ["rs1"]


def test_a_report_from_before_the_action_is_not_taken_for_health(site):
    site.reports["rs1"]["at"] = time.time() - 60  # the beacon has not reported since
    stopped = roll(site, targets="rs1", action="upgrade", timeout=0)
    assert stopped["step"] == "healthy"


def test_open_connections_stop_or_go_on_as_the_operator_said(site):
    site.directors["director"].connections["10.10.24.21"] = 3
    stopped = roll(site, targets="rs1", action="upgrade", timeout=0)
    assert (stopped["step"], stopped["stopped"]) == ("idle", "connections still open after 0 s")
    assert calls(site, "state.apply") == []
    site.runner.undrain("rs1")
    went_on = roll(site, targets="rs1", action="upgrade", timeout=0, on_timeout="continue")
    assert went_on["done"] == ["rs1"]


def test_a_batch_that_would_take_a_service_below_its_floor_is_not_drained(site):
    site.tree["lvs"]["services"]["web"]["floor"] = 3
    site.edited()
    stopped = roll(site, action="upgrade", batch=2)
    assert stopped["stopped"] == "web: 2 of 4 backends would serve, its floor is 3" and stopped["step"] == "drain"
    assert site.current()["maintenance"] == {} and calls(site, "state.apply") == []


def test_a_reboot_waits_for_the_host_to_answer_from_a_new_boot(site):
    said = iter(["boot-a", "boot-a", None, None, "boot-b"])  # its boot id: before, not yet, gone, gone, back
    call = site.host_call

    def rebooting(target, fun, args):
        return next(said) if fun == "file.read" else call(target, fun, args)

    site.host_call = rebooting
    result = roll(site, targets="rs1", reboot=True, timeout=30)
    assert result["done"] == ["rs1"]
    assert calls(site, "system.reboot") == [("system.reboot", "rs1")]
    assert next(said, "all read") == "all read"


def test_a_reboot_too_fast_to_be_seen_down_counts_and_one_that_never_happens_stops_there(site):
    result = roll(site, targets="rs1", reboot=True, timeout=30)  # the next boot id at once: back
    assert result["done"] == ["rs1"]
    call = site.host_call
    site.host_call = lambda target, fun, args: True if fun == "system.reboot" else call(target, fun, args)
    stopped = roll(site, targets="rs2", reboot=True, reboot_timeout=3)  # the same boot id: no reboot happened
    assert stopped["step"] == "action" and "not back within 3 s of the reboot" in stopped["stopped"], stopped
    assert list(site.current()["maintenance"]) == ["rs2"]


def test_wrong_arguments_are_refused_before_anything(site):
    with pytest.raises(SaltInvocationError, match="not real servers of the site: director, rs9"):
        roll(site, targets="rs1,director,rs9", action="upgrade")
    with pytest.raises(SaltInvocationError, match="nothing to do on each host"):
        roll(site, targets="rs1")
    with pytest.raises(SaltInvocationError, match="on_timeout: 'wait' is not one of stop, continue"):
        roll(site, action="upgrade", on_timeout="wait")
    assert site.sent == []


class Router:
    """The router's director group as lvs_directors answers (drain refused for the last one up)."""

    def __init__(self, directors):
        self.up, self.drained, self.calls = dict.fromkeys(directors, True), set(), []

    def __call__(self, site, fun, *args):
        self.calls.append((fun, *args))
        if fun == "lvs_directors.drain":
            if not [d for d, up in self.up.items() if up and d not in self.drained | {args[0]}]:
                raise SaltInvocationError(f"router did not run {fun}: no other director would be left up")
            changed = args[0] not in self.drained
            self.drained.add(args[0])
            return {"drained": sorted(self.drained), "changed": changed}
        if fun == "lvs_directors.undrain":
            changed = args[0] in self.drained
            self.drained.discard(args[0])
            return {"drained": sorted(self.drained), "changed": changed}
        if fun == "lvs_directors.view":
            return {"up": dict(self.up)}
        return sorted(self.drained)  # lvs_directors.drained


@pytest.fixture(name="two")
def fixture_two(tmp_path, monkeypatch):
    (tmp_path / "two").mkdir()
    site = Site(tmp_path / "two", monkeypatch, directors=("director", "director2"))
    site.router = Router(("director", "director2"))
    monkeypatch.setattr(site.runner, "_router_call", site.router)
    monkeypatch.setattr(site.runner, "_forwarded", lambda director: 0)  # forwarding nothing once out
    return site


def test_directors_go_out_of_the_routers_group_one_at_a_time_and_back(two):
    result = roll(two, targets="director,director2", action="upgrade", batch=2)
    assert result["done"] == ["director", "director2"] and set(result["seconds"]) == {"director", "director2"}
    assert [call for call in two.router.calls if call[0] != "lvs_directors.view"
            and call[0] != "lvs_directors.drained"] == [
        ("lvs_directors.drain", "director"), ("lvs_directors.undrain", "director"),
        ("lvs_directors.drain", "director2"), ("lvs_directors.undrain", "director2")]
    assert calls(two, "state.apply") == [("state.apply", "director"), ("state.apply", "director2")]
    assert two.router.drained == set()


def test_the_last_director_up_is_never_taken_out(two):
    two.router.up["director2"] = False  # its probes fail: the router keeps only director
    stopped = roll(two, targets="director", action="upgrade")
    assert stopped["step"] == "drain" and "no other director would be left up" in stopped["stopped"]
    assert calls(two, "state.apply") == []


def test_directors_and_real_servers_are_rolled_apart_and_a_lone_director_not_at_all(two, site):
    with pytest.raises(SaltInvocationError, match=r"not real servers of the site: director \(directors are"):
        roll(two, targets="rs1,director", action="upgrade")
    with pytest.raises(SaltInvocationError, match="a lone director cannot be rolled"):
        roll(site, targets="director", action="upgrade")


def test_one_rolling_at_a_time(site):
    with lvstun.records.locked(site.runner.__opts__, site.record(lvstun.records.ROLLING)), \
            pytest.raises(SaltInvocationError, match="another rolling of the site seed is running"):
        roll(site, action="upgrade")
    assert site.sent == []


def test_targets_may_be_globs_or_a_salt_target_and_only_hosts_of_a_site_are_taken(site, monkeypatch):
    import fnmatch  # noqa: PLC0415

    known = ["director", "rs1", "rs2", "rs3", "rs4", "rs-lab-box"]  # the last: a minion of no site
    grains = {"rack:b": ["rs3", "rs1", "rs-lab-box"]}

    def matched(tgt, tgt_type):
        return sorted(fnmatch.filter(known, tgt)) if tgt_type == "glob" else grains.get(tgt, [])

    monkeypatch.setattr(site.runner, "_matched", matched)
    assert roll(site, targets="rs*", action="upgrade", test=True)["plan"]["batches"] == [
        ["rs1"], ["rs2"], ["rs3"], ["rs4"]]
    assert roll(site, targets="rs4,rs[12]", action="upgrade", test=True)["plan"]["batches"] == [
        ["rs4"], ["rs1"], ["rs2"]]  # ids in the order given, a glob's matches by id
    assert roll(site, targets="rack:b", tgt_type="grain", action="upgrade", test=True)["plan"]["batches"] == [
        ["rs1"], ["rs3"]]
    with pytest.raises(SaltInvocationError, match="no minion of a site matches 'web\\*'"):
        roll(site, targets="web*", action="upgrade")
    with pytest.raises(SaltInvocationError, match="not real servers of the site: director"):
        roll(site, targets="*", action="upgrade")  # the director too: directors are rolled apart
