"""The router's director group as data: what it must hold, what ``ip -j`` shows, and
the ``ip`` commands between them (lvstun.dirgroup). The kernel's side is tested in the
lab (tests/lab/test_director_ha.py)."""

import copy
import os

import pytest
import yaml

import lvstun.dirgroup as dg
import lvstun.site

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(name="tree")
def fixture_tree():
    with open(os.path.join(REPO, "pillar", "lvs", "two_vips.sls"), encoding="utf-8") as fh:
        return yaml.safe_load(fh)["lvs"]


def spec_of(tree):
    return dg.spec(lvstun.site.parse({"lvs": tree}))


# What `ip -j` printed on the host kernel for the group of the two-VIP site (lab router).
IP_NEXTHOPS = [
    {"id": 4200, "group": [{"id": 4201}, {"id": 4202}], "type": "resilient",
     "resilient_args": {"buckets": 64, "idle_timer": 10, "unbalanced_timer": 300, "unbalanced_time": 0},
     "scope": "global", "protocol": "77", "flags": []},
    {"id": 4201, "gateway": "10.10.24.2", "dev": "eth0", "scope": "link", "protocol": "77", "flags": []},
    {"id": 4202, "gateway": "10.10.24.3", "dev": "eth0", "scope": "link", "protocol": "77", "flags": []},
]
IP_ROUTES = [
    {"dst": "default", "nhid": 4201, "gateway": "10.10.24.2", "dev": "eth0", "table": "4201", "flags": []},
    {"dst": "default", "nhid": 4202, "gateway": "10.10.24.3", "dev": "eth0", "table": "4202", "flags": []},
    {"dst": "10.10.24.88", "nhid": 4200, "flags": [], "nexthops": []},
    {"dst": "10.10.24.89", "nhid": 4200, "flags": [], "nexthops": []},
]
IP_RULES = [
    {"priority": 0, "src": "all", "table": "local"},
    {"priority": 4200, "src": "all", "fwmark": "0x1069", "table": "4201", "protocol": "77"},
    {"priority": 4200, "src": "all", "fwmark": "0x106a", "table": "4202", "protocol": "77"},
    {"priority": 100, "src": "all", "fwmark": "0x7", "table": "7"},  # the operator's own
    {"priority": 32766, "src": "all", "table": "main"},
]


def test_one_director_or_an_ios_router_has_no_group(tree):
    tree["directors"].pop("director2")
    assert spec_of(tree) is None


def test_what_the_kernel_shows_reads_back_as_what_is_wanted(tree):
    spec = spec_of(tree)
    held = dg.have(IP_NEXTHOPS, IP_ROUTES, IP_RULES)
    assert held == dg.want(spec)
    assert dg.plan(dg.want(spec), held) == []


def test_a_dead_director_leaves_the_group_only(tree):
    spec = spec_of(tree)
    held = dg.have(IP_NEXTHOPS, IP_ROUTES, IP_RULES)
    steps = dg.plan(dg.want(spec, {"director2": False}), held)
    # Only the group changes, in place (a replace keeps the survivors' buckets).
    assert steps == [("group 4200", "4201 type resilient buckets 64 idle_timer 10 unbalanced_timer 300",
                      held["group 4200"],
                      [["nexthop", "replace", "id", "4200", "group", "4201", "type", "resilient",
                        "idle_timer", "10", "unbalanced_timer", "300", "proto", "77"]])]


def test_with_no_director_up_every_director_stays():
    spec = {"members": {"a": {"id": 11}, "b": {"id": 12}}}
    assert dg.live_members(spec, {"a": False, "b": False}) == [11, 12]
    assert dg.live_members(spec, {"a": False}) == [12]
    assert dg.live_members(spec, {}) == [11, 12]


def test_from_nothing_members_come_before_the_group_and_the_group_before_its_routes(tree):
    steps = dg.plan(dg.want(spec_of(tree)), {})
    commands = [" ".join(argv) for _, _, _, argvs in steps for argv in argvs]
    first = {word: next(i for i, c in enumerate(commands) if c.startswith(word))
             for word in ("nexthop replace id 4201", "nexthop replace id 4200", "route replace 10.10.24.88/32")}
    assert first["nexthop replace id 4201"] < first["nexthop replace id 4200"] < first["route replace 10.10.24.88/32"]
    assert "rule add fwmark 4201 table 4201 priority 4200 protocol 77" in commands
    assert "route replace default nhid 4202 table 4202 proto 77" in commands


def test_a_new_bucket_count_rebuilds_the_group_and_its_routes(tree):
    held = dg.have(IP_NEXTHOPS, IP_ROUTES, IP_RULES)
    tree["ha"] = {"buckets": 128}
    steps = dg.plan(dg.want(spec_of(tree)), held)
    names = [name for name, *_ in steps]
    assert names == ["group 4200", "route 10.10.24.88/32", "route 10.10.24.89/32"]
    assert steps[0][3][0] == ["nexthop", "del", "id", "4200"]


def test_leaving_ha_removes_only_the_packs_objects_routes_before_their_nexthops(tree):
    held = dg.have(IP_NEXTHOPS, IP_ROUTES, IP_RULES)
    steps = dg.plan({}, held)
    kinds = [name.split()[0] for name, *_ in steps]
    assert kinds == sorted(kinds, key=["rule", "route", "group", "nexthop"].index)
    commands = [" ".join(argv) for _, _, _, argvs in steps for argv in argvs]
    assert "rule del fwmark 4201 table 4201 priority 4200 protocol 77" in commands
    assert not any("fwmark 7 " in c for c in commands)  # the operator's rule is not the pack's
    assert "route del 10.10.24.88/32 proto 77" in commands


def test_a_moved_director_gets_its_nexthop_replaced_in_place(tree):
    held = dg.have(IP_NEXTHOPS, IP_ROUTES, IP_RULES)
    moved = copy.deepcopy(tree)
    moved["directors"]["director2"]["address"] = "10.10.24.4"
    steps = dg.plan(dg.want(spec_of(moved)), held)
    assert [(name, argvs) for name, _, _, argvs in steps] == [
        ("nexthop 4202", [["nexthop", "replace", "id", "4202", "via", "10.10.24.4", "dev", "eth0", "proto", "77"]])]


def test_the_probe_is_the_first_tcp_check_else_udp_else_a_connect(tree):
    spec = spec_of(tree)
    assert spec["probe"]["vip"] == "10.10.24.88" and spec["probe"]["check"]["type"] == "http"
    tree["services"]["web"]["check"] = {"type": "none"}
    assert spec_of(tree)["probe"]["check"]["type"] == "udp"
    tree["services"]["dns"]["check"] = {"type": "none"}
    probe = spec_of(tree)["probe"]
    assert probe["vip"] == "10.10.24.89" and probe["check"]["type"] == "udp" and probe["check"]["port"] == 53


@pytest.mark.parametrize("setting, value, error", [
    ("base", 32764, "lvs:ha:base: 32764 must be an integer from 1 to 32763"),
    ("base", 252, "lvs:ha:base: 252 to 254 include one of the kernel's own routing tables (253-255)"),
    ("buckets", 1, "lvs:ha:buckets: 1 must be an integer from 2 to 65535"),
    ("timeout", 0.5, "lvs:ha:timeout: 0.5 must be shorter than the interval (0.5)"),
    ("sync_id", 256, "lvs:ha:sync_id: 256 must be an integer from 0 to 255"),
    ("fal", 3, "lvs:ha:fal: unknown setting (did you mean fall?)"),
])
def test_bad_ha_settings_are_named_by_pillar_path(tree, setting, value, error):
    tree["ha"] = {setting: value}
    with pytest.raises(lvstun.site.SiteError) as err:
        lvstun.site.parse({"lvs": tree})
    assert err.value.errors == [error]


def test_a_drained_director_leaves_the_group_and_is_never_the_fallback():
    spec = {"members": {"a": {"id": 11}, "b": {"id": 12}, "c": {"id": 13}}}
    assert dg.live_members(spec, {}, drained=["b"]) == [11, 13]
    # The others down: the fallback keeps them, not the drained one.
    assert dg.live_members(spec, {"a": False, "c": False}, drained=["b"]) == [11, 13]
    assert dg.live_members(spec, {}, drained=["a", "b", "c"]) == [11, 12, 13]


def _beacon():
    from tests.unit.checkout import load  # noqa: PLC0415

    return load("lvs_directors_beacon", "_beacons", "lvs_directors.py")


def test_a_failing_director_is_probed_again_at_once_and_is_out_in_one_round():
    beacon = _beacon()
    spec = {"members": {"a": {}, "b": {}}, "rise": 2, "fall": 2}
    calls = []

    def probe_all(spec_, only=None):
        calls.append(only)
        return {name: (name == "a", "probe") for name in (only or spec_["members"])}

    state = {}
    outcomes = beacon.probe_round(probe_all, spec, up={})
    assert calls == [None, ["b"]] and len(outcomes["b"]) == 2 and len(outcomes["a"]) == 1
    view, changed, due = beacon.round_(spec, state, outcomes, now=100.0, heartbeat=10)
    assert view == {"a": True, "b": False} and changed == ["b"] and due
    # Down now: no second probe in a round; back after `rise` passing rounds.
    calls.clear()
    outcomes = beacon.probe_round(probe_all, spec, up={"b": False})
    assert calls == [None]
    passing = {"a": [(True, "")], "b": [(True, "")]}
    assert beacon.round_(spec, state, passing, 101.0, 10)[0]["b"] is False
    view, changed, _ = beacon.round_(spec, state, passing, 102.0, 10)
    assert view["b"] is True and changed == ["b"]


def test_a_draining_director_stays_at_a_weight_that_wants_no_bucket_then_leaves(tree):
    spec = spec_of(tree)
    held = dg.have(IP_NEXTHOPS, IP_ROUTES, IP_RULES)
    # Drained and still holding buckets: weight 1 against 255, buckets move once idle 1 s.
    draining = dg.want(spec, drained=["director2"], draining=["director2"])
    assert draining["group 4200"] == "4201,255/4202 type resilient buckets 64 idle_timer 1 unbalanced_timer 300"
    assert dg.wanted_buckets([(4201, 255), (4202, 1)], 64) == {4201: 64, 4202: 0}
    steps = dg.plan(draining, held)
    assert [argv for _, _, _, argvs in steps for argv in argvs] == [
        ["nexthop", "replace", "id", "4200", "group", "4201,255/4202", "type", "resilient", "idle_timer", "1",
         "unbalanced_timer", "300", "proto", "77"]]  # in place: the kernel keeps the buckets
    # ip -j shows weights other than 1: it reads back as wanted.
    shown = copy.deepcopy(IP_NEXTHOPS)
    shown[0]["group"] = [{"id": 4201, "weight": 255}, {"id": 4202}]
    shown[0]["resilient_args"]["idle_timer"] = 1
    assert dg.plan(draining, dg.have(shown, IP_ROUTES, IP_RULES)) == []
    # Once it holds no bucket, it leaves; the survivor's weight and the idle timer return.
    gone = dg.want(spec, drained=["director2"], draining=[])
    assert gone["group 4200"] == "4201 type resilient buckets 64 idle_timer 10 unbalanced_timer 300"


def test_a_director_joining_a_group_of_one_comes_in_at_a_weight_that_wants_no_bucket_for_a_round(tree):
    spec = spec_of(tree)
    alone = copy.deepcopy(IP_NEXTHOPS)
    alone[0]["group"] = [{"id": 4201}]  # director2 was out: the router holds director alone
    held = dg.have(alone, IP_ROUTES, IP_RULES)
    assert dg.held_members(held, spec) == [4201]
    joining = dg.want(spec, held=held)
    assert joining["group 4200"] == "4201,255/4202 type resilient buckets 64 idle_timer 1 unbalanced_timer 300"
    steps = dg.plan(joining, held)
    assert [argv for _, _, _, argvs in steps for argv in argvs] == [
        ["nexthop", "replace", "id", "4200", "group", "4201,255/4202", "type", "resilient", "idle_timer", "1",
         "unbalanced_timer", "300", "proto", "77"]]
    # The next round: both in the group, so both at their full weight (idle buckets move).
    both = copy.deepcopy(IP_NEXTHOPS)
    both[0]["group"] = [{"id": 4201, "weight": 255}, {"id": 4202}]
    both[0]["resilient_args"]["idle_timer"] = 1
    full = dg.want(spec, held=dg.have(both, IP_ROUTES, IP_RULES))
    assert full["group 4200"] == "4201/4202 type resilient buckets 64 idle_timer 10 unbalanced_timer 300"
    assert full == dg.want(spec)  # and so it stays
    # Without a group held (made whole at once), or a director that is still down: no join.
    assert dg.want(spec, held={})["group 4200"].startswith("4201/4202 ")
    assert dg.want(spec, {"director2": False}, held=held)["group 4200"].startswith("4201 ")


def test_joining_is_only_into_a_group_of_one_whose_member_stays():
    assert dg.joining([4201, 4202], [4201]) == [4202]
    assert dg.joining([4201, 4202, 4203], [4201]) == [4202, 4203]
    assert dg.joining([4201, 4202, 4203], [4201, 4203]) == []  # the kernel marks busy buckets already
    assert dg.joining([4202], [4201]) == []  # a swap: the group of one is replaced
    assert dg.joining([4201, 4202], []) == []


def test_with_too_many_buckets_a_joining_director_takes_its_share_at_once(tree):
    tree["ha"] = {"buckets": 512}
    spec = spec_of(tree)
    alone = copy.deepcopy(IP_NEXTHOPS)
    alone[0]["group"] = [{"id": 4201}]
    assert dg.want(spec, held=dg.have(alone, IP_ROUTES, IP_RULES))["group 4200"].startswith("4201/4202 ")


def test_with_too_many_buckets_for_a_weight_of_1_to_want_none_a_drained_director_leaves_at_once(tree):
    tree["ha"] = {"buckets": 512}  # 512 x 1/256 rounds to 2 buckets
    spec = spec_of(tree)
    assert dg.wanted_buckets([(4201, 255), (4202, 1)], 512) == {4201: 510, 4202: 2}
    assert dg.want(spec, drained=["director2"], draining=["director2"])["group 4200"] == \
        "4201 type resilient buckets 512 idle_timer 10 unbalanced_timer 300"


def test_the_kernels_rounding_of_bucket_shares():
    # nh_res_group_rebalance: cumulative upper bounds, DIV_ROUND_CLOSEST.
    assert dg.wanted_buckets([(1, 1), (2, 1), (3, 1)], 64) == {1: 21, 2: 22, 3: 21}
    assert dg.wanted_buckets([(1, 1), (2, 255)], 64) == {1: 0, 2: 64}
    assert dg.wanted_buckets([(1, 255), (2, 1), (3, 255)], 64) == {1: 32, 2: 0, 3: 32}


def test_a_one_director_router_whose_kernel_has_no_nexthop_objects_holds_nothing_of_the_pack(monkeypatch, tmp_path):
    from salt.exceptions import CommandExecutionError  # noqa: PLC0415

    from tests.unit.checkout import load  # noqa: PLC0415

    module = load("lvs_directors_module", "_modules", "lvs_directors.py")
    answers = {"route": "[]", "rule": '[{"priority": 0, "src": "all", "table": "local"}]'}

    def output(argv, timeout):
        if "nexthop" in argv:  # what ip says on a kernel before 5.3
            raise CommandExecutionError("ip -j -d nexthop show proto 77 failed: Error: Unknown device type.")
        return answers[next(word for word in argv[2:] if not word.startswith("-"))]

    monkeypatch.setattr(module.lvstun.command, "output", output)
    module.__opts__ = {"cachedir": str(tmp_path)}
    assert module.check(None) == []  # one director: nothing to hold, nothing to fail on
    with pytest.raises(CommandExecutionError):
        module.check(spec_of_two_vips())  # several directors on such a kernel: a clear failure


def test_a_router_whose_kernel_has_no_ipv6_reads_no_ipv6_objects_and_still_checks_its_ipv4_group(monkeypatch,
                                                                                                 tmp_path):
    from salt.exceptions import CommandExecutionError  # noqa: PLC0415

    from tests.unit.checkout import load  # noqa: PLC0415

    module = load("lvs_directors_module", "_modules", "lvs_directors.py")

    def output(argv, timeout):
        if "-6" in argv:  # what ip says where the kernel was booted with ipv6.disable=1
            raise CommandExecutionError("ip -j -6 rule show failed: RTNETLINK answers: Address family not supported")
        return "[]"

    monkeypatch.setattr(module.lvstun.command, "output", output)
    monkeypatch.setattr(module, "_has_ipv6", lambda: False)
    module.__opts__ = {"cachedir": str(tmp_path)}
    assert module.check(spec_of_two_vips()) != []  # the IPv4 group is checked (missing here), the IPv6 reads empty
    monkeypatch.setattr(module, "_has_ipv6", lambda: True)  # IPv6 there: its failure is one
    with pytest.raises(CommandExecutionError):
        module.check(spec_of_two_vips())


def spec_of_two_vips():
    with open(os.path.join(REPO, "pillar", "lvs", "two_vips.sls"), encoding="utf-8") as fh:
        return spec_of(yaml.safe_load(fh)["lvs"])
