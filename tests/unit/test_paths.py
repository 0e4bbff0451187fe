"""The directors' own path checks (pure parts): which backends the ``lvs_paths`` beacon
checks and how, how its verdicts are damped and held, and how they combine with the
runner's record into the weights a director runs (``lvstun.health.with_local``)."""

import lvstun.health as health
import lvstun.roles
import lvstun.site
from tests.unit.checkout import load
from tests.unit.test_health import site_tree

REFUSED, SILENT, PASSED = (False, "refused"), (False, "no SYN-ACK within 0.5s (silent)"), (True, "connected")


def beacon():
    return load("lvs_paths_beacon", "_beacons", "lvs_paths.py")


def test_every_backend_of_every_checked_service_is_planned_but_sorry_servers_are_not():
    tree = site_tree(sorry="rs4", check={"type": "tcp", "fall": 3, "timeout": 0.3}, backends={"rs1": {}, "rs2": {}})
    tree["lvs"]["services"]["dns"] = {"vip": "10.10.24.89", "port": 53, "protocol": "udp", "backends": {"rs3": {}}}
    tree["lvs"]["services"]["quiet"] = {"vip": "10.10.24.90", "port": 9, "check": {"type": "none"},
                                        "backends": {"rs1": {}}}
    site = lvstun.site.parse(tree)
    checks = beacon().plan(site)
    assert sorted(checks) == ["dns rs3", "web rs1", "web rs2"]
    web = checks["web rs2"]
    assert (web.probe.kind, web.probe.backend, web.probe.vip, web.probe.port) == ("tcp", "10.10.24.22",
                                                                               site.services["web"].vip, 80)
    assert (web.probe.timeout, web.probe.tries, web.fall, web.rise) == (0.3, 3, 3, 2)
    assert web.interval == 0.5 and web.hold == 10  # the site's path_interval and hold
    assert checks["dns rs3"].probe.kind == "udp" and checks["dns rs3"].probe.port == 53


def test_a_refused_service_is_down_in_one_round_a_silent_one_in_fall_rounds():
    module = beacon()
    checks = module.plan(lvstun.site.parse(site_tree()))  # http, fall 2, rise 2
    state = {}
    assert module.round_(state, checks, {"web rs1": [REFUSED, REFUSED]}, 100) == ["web rs1"]
    assert module.verdicts(state, checks) == {"rs1": ["web"]}
    assert module.round_(state, checks, {"web rs2": [SILENT]}, 100) == []
    # Silence counts once per the service's interval (1 s), however often the director checks.
    assert module.round_(state, checks, {"web rs2": [SILENT]}, 100.5) == []
    assert module.round_(state, checks, {"web rs2": [SILENT]}, 101) == ["web rs2"]
    assert module.verdicts(state, checks) == {"rs1": ["web"], "rs2": ["web"]}


def test_a_backend_down_here_returns_after_rise_passes_and_the_hold():
    module = beacon()
    checks = module.plan(lvstun.site.parse(site_tree()))
    state = {}
    assert module.round_(state, checks, {"web rs1": [PASSED]}, 99) == []
    assert module.round_(state, checks, {"web rs1": [REFUSED, REFUSED]}, 100) == ["web rs1"]
    assert module.round_(state, checks, {"web rs1": [PASSED]}, 101) == []
    assert module.round_(state, checks, {"web rs1": [PASSED]}, 102) == []  # risen, but held
    assert module.round_(state, checks, {"web rs1": [PASSED]}, 100 + health.HOLD) == ["web rs1"]
    assert module.verdicts(state, checks) == {}
    # A flapping backend: one failure between passes never takes it out.
    for now in range(200, 210):
        assert module.round_(state, checks, {"web rs2": [REFUSED if now % 2 else PASSED]}, now) == []


def test_a_backend_that_never_passed_comes_in_at_its_rise_passes_without_the_hold():
    """A whole site applied at once: the director checks rs1 before rs1's highstate has
    set up its tunnel. rs1 is out while it does not answer, and in as soon as it does
    (rise 2), not a hold later; once it has passed, a failure is held as usual."""
    module = beacon()
    checks = module.plan(lvstun.site.parse(site_tree()))
    state = {}
    assert module.round_(state, checks, {"web rs1": [SILENT]}, 100) == []
    assert module.round_(state, checks, {"web rs1": [SILENT]}, 101) == ["web rs1"]
    assert module.verdicts(state, checks) == {"rs1": ["web"]}
    assert module.round_(state, checks, {"web rs1": [PASSED]}, 102) == []
    assert module.round_(state, checks, {"web rs1": [PASSED]}, 102.5) == ["web rs1"]  # 1.5 s after, no hold
    assert module.verdicts(state, checks) == {}
    assert module.round_(state, checks, {"web rs1": [REFUSED, REFUSED]}, 103) == ["web rs1"]
    assert module.round_(state, checks, {"web rs1": [PASSED]}, 104) == []
    assert module.round_(state, checks, {"web rs1": [PASSED]}, 105) == []  # risen, held this time
    assert module.round_(state, checks, {"web rs1": [PASSED]}, 103 + health.HOLD) == ["web rs1"]
    # Down when the checks start again (the record after a restart): it did fail, it is held.
    state = {"down": {"web rs2": 200.0}}
    assert module.round_(state, checks, {"web rs2": [PASSED]}, 201) == []
    assert module.round_(state, checks, {"web rs2": [PASSED]}, 202) == []
    assert module.round_(state, checks, {"web rs2": [PASSED]}, 200 + health.HOLD) == ["web rs2"]


def test_verdicts_of_backends_the_site_no_longer_checks_are_dropped_and_reported():
    module = beacon()
    checks = module.plan(lvstun.site.parse(site_tree()))
    state = {"down": {"web rs1": 50.0, "old rs9": 50.0}}  # as loaded from the record after a restart
    assert module.round_(state, checks, {}, 100) == ["old rs9"]
    assert module.verdicts(state, checks) == {"rs1": ["web"]}
    # Loaded down, it needs rise passes to come back (the hold is over).
    assert module.round_(state, checks, {"web rs1": [PASSED]}, 100) == []
    assert module.round_(state, checks, {"web rs1": [PASSED]}, 101) == ["web rs1"]


def test_a_directors_verdicts_only_take_backends_out_and_the_floor_still_holds():
    site = lvstun.site.parse(site_tree(floor=1, backends={"rs1": {}, "rs2": {}, "rs3": {}}))
    spec = site.services["web"].spec
    record = {"health": {"rs2": {"services": {"web": False}}}, "maintenance": {}}

    def weights(local):
        dests = lvstun.roles.ipvs_services(site, health.with_local(record, local))[spec]["destinations"]
        return {dest.split(":")[0][-2:]: settings["weight"] for dest, settings in dests.items()}

    assert weights({}) == {"21": 1, "22": 0, "23": 1}
    assert weights({"rs1": ["web"]}) == {"21": 0, "22": 0, "23": 1}
    # Every backend down here: the floor keeps the first by name, as the runner's does.
    assert weights({"rs1": ["web"], "rs3": ["web"]}) == {"21": 1, "22": 0, "23": 0}
    assert record["health"] == {"rs2": {"services": {"web": False}}}  # the record itself is not changed


def test_the_newest_runner_record_wins():
    old, new = {"at": 10, "health": {"rs1": {}}}, {"at": 20, "health": {}}
    assert health.newest(old, new) is new and health.newest(new, old) is new
    assert health.newest({"health": {}}, None) == {"health": {}}
    assert health.newest(None, None) == {}


def test_a_round_takes_more_probes_than_source_ports_each_answer_known_by_vip_port_and_source_port():
    import lvstun.pathcheck as pc  # noqa: PLC0415

    probes = {f"svc{s} rs{b}": pc.Probe("tcp", f"10.0.{b // 250}.{b % 250 + 1}", f"10.1.{s // 250}.{s % 250 + 1}", 80,
                                        0.5) for s in range(1000) for b in range(10)}
    round_ = pc.Round("10.0.0.250", probes)
    # every answer (protocol, VIP, port, source port) goes to one probe
    assert len(round_.by_answer) == len(probes) == 10000
    assert round_.ports == pc.PORTS  # the filter passes the whole range
    small = pc.Round("10.0.0.250", dict(list(probes.items())[:3]))
    assert small.ports[1] - small.ports[0] == 2 and all(small.ports[0] <= a.sport <= small.ports[1]
                                                       for a in small.attempts.values())


def test_fall_refusals_take_a_backend_out_whatever_its_history_damping_delays_only_a_return():
    """Down is never damped (issue 24): after any history of passes, refusals, silences,
    holds and returns, a round of ``fall`` refusals leaves the backend down."""
    from hypothesis import given, settings  # noqa: PLC0415
    from hypothesis import strategies as st  # noqa: PLC0415

    module = beacon()
    checks = module.plan(lvstun.site.parse(site_tree()))  # http, fall 2, rise 2, hold 10
    attempt = st.sampled_from([PASSED, REFUSED, SILENT])
    history = st.lists(st.tuples(st.floats(0.05, 12), st.lists(attempt, min_size=1, max_size=3)), max_size=40)

    @settings(max_examples=400, deadline=None)
    @given(history)
    def check(rounds):
        state, now = {}, 1000.0
        for gap, attempts in rounds:
            now += gap
            module.round_(state, checks, {"web rs1": attempts}, now)
        module.round_(state, checks, {"web rs1": [REFUSED, REFUSED]}, now + 0.5)
        assert "web rs1" in state["down"]
        assert module.verdicts(state, checks) == {"rs1": ["web"]}

    check()
