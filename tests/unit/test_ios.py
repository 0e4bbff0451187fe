"""The Cisco IOS lines of the front router (``lvstun.ios``): pure logic."""

import copy

import pytest
import yaml

import lvstun.ios as ios
import lvstun.roles
import lvstun.site

SEED_IOS = "pillar/lvs/seed_ios.sls"
STATIC = "ip nat inside source static"

RUNNING = """Building configuration...
!
hostname edge1
!
interface GigabitEthernet0/0
 ip address 10.10.24.1 255.255.255.0
 ip nat inside
!
interface GigabitEthernet0/1
 ip address 112.2.21.1 255.255.255.0
!
ip nat inside source static 10.10.24.77 112.2.21.77
ip nat inside source static 10.10.24.88 112.2.21.88
ip route 0.0.0.0 0.0.0.0 112.2.21.254
!
end
"""


@pytest.fixture(name="tree")
def fixture_tree(request):
    root = request.config.rootpath
    with open(root / SEED_IOS, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def cfg_of(tree):
    return lvstun.roles.for_minion(lvstun.site.parse(tree), "router")


def test_the_seed_gives_its_nat_line_and_the_interface_lines(tree):
    assert ios.desired(cfg_of(tree)) == [
        ("interface GigabitEthernet0/0", "ip nat inside"),
        ("interface GigabitEthernet0/1", "ip nat outside"),
        (None, f"{STATIC} 10.10.24.88 112.2.21.88")]


def test_parse_keeps_blocks_apart():
    lines = ios.parse(RUNNING)
    assert ("interface GigabitEthernet0/0", "ip nat inside") in lines
    assert ("interface GigabitEthernet0/1", "ip nat inside") not in lines
    assert (None, f"{STATIC} 10.10.24.88 112.2.21.88") in lines
    assert (None, "ip route 0.0.0.0 0.0.0.0 112.2.21.254") in lines
    assert not [line for line in lines if line[1] == "!"]


def test_plan_adds_what_is_missing_and_adopts_what_is_there(tree):
    want = ios.desired(cfg_of(tree))
    plan = ios.plan(want, ios.parse(RUNNING), owned=[])
    assert plan.commands() == ["interface GigabitEthernet0/1", "ip nat outside", "exit"]
    assert not plan.conflicts
    owned = ios.owned_after([], plan, want)
    assert set(owned) == set(want)  # the seed's hand-typed line is now the pack's


def test_only_owned_stale_lines_are_removed_and_first(tree):
    tree = copy.deepcopy(tree)
    tree["lvs"]["services"]["web"]["vip"] = "10.10.24.90"
    want = ios.desired(cfg_of(tree))
    old = (None, f"{STATIC} 10.10.24.88 112.2.21.88")
    plan = ios.plan(want, ios.parse(RUNNING), owned=[old])
    assert plan.commands()[0] == f"no {STATIC} 10.10.24.88 112.2.21.88"
    assert f"{STATIC} 10.10.24.90 112.2.21.88" in plan.commands()
    # Not owned: the same running config gives a collision, never a removal.
    plan = ios.plan(want, ios.parse(RUNNING), owned=[])
    assert not plan.remove and len(plan.conflicts) == 1
    assert f"collides with '{STATIC} 10.10.24.88 112.2.21.88'" in plan.conflicts[0]


def test_a_foreign_line_on_the_same_public_address_is_a_conflict(tree):
    tree = copy.deepcopy(tree)
    tree["lvs"]["services"]["web"]["public"] = "112.2.21.77"
    plan = ios.plan(ios.desired(cfg_of(tree)), ios.parse(RUNNING),
                    owned=[(None, f"{STATIC} 10.10.24.88 112.2.21.88")])
    assert plan.conflicts and "10.10.24.77 112.2.21.77" in plan.conflicts[0]


def test_an_outside_interface_held_inside_by_someone_else_is_a_conflict(tree):
    tree = copy.deepcopy(tree)
    tree["lvs"]["router"]["lan_interface"], tree["lvs"]["router"]["wan_interface"] = \
        "GigabitEthernet0/1", "GigabitEthernet0/0"
    plan = ios.plan(ios.desired(cfg_of(tree)), ios.parse(RUNNING), owned=[])
    assert any("'interface GigabitEthernet0/0' holds 'ip nat inside'" in c for c in plan.conflicts)


def test_steps_undo_and_partial_ownership(tree):
    tree = copy.deepcopy(tree)
    tree["lvs"]["services"]["web"]["vip"] = "10.10.24.90"
    old = (None, f"{STATIC} 10.10.24.88 112.2.21.88")
    want = ios.desired(cfg_of(tree))
    steps = ios.plan(want, ios.parse(RUNNING), owned=[old]).steps
    assert [(s.send, s.undo) for s in steps] == [
        ((f"no {STATIC} 10.10.24.88 112.2.21.88",), (f"{STATIC} 10.10.24.88 112.2.21.88",)),
        (("interface GigabitEthernet0/1", "ip nat outside", "exit"),
         ("interface GigabitEthernet0/1", "no ip nat outside", "exit")),
        ((f"{STATIC} 10.10.24.90 112.2.21.88",), (f"no {STATIC} 10.10.24.90 112.2.21.88",))]
    # Only the first two went through: the old line is gone, the interface line is the pack's.
    assert ios.owned_after_steps([old], steps[:2]) == [("interface GigabitEthernet0/1", "ip nat outside")]


def two_directors(tree, **ha):
    tree = copy.deepcopy(tree)
    tree["lvs"]["directors"]["director2"] = {"address": "10.10.24.3"}
    tree["lvs"]["ha"] = {"timeout": 0.3, **ha}  # probes of 300 ms unless said otherwise
    return tree


SLA_4201 = [(None, "ip sla 4201"),
            ("ip sla 4201", "icmp-echo 10.10.24.2 source-interface GigabitEthernet0/0"),
            ("ip sla 4201", "threshold 300"), ("ip sla 4201", "timeout 300"), ("ip sla 4201", "frequency 1"),
            (None, "ip sla schedule 4201 life forever start-time now")]


def test_each_director_is_tracked_by_an_icmp_probe_and_its_routes_follow(tree):
    lines = ios.desired(cfg_of(two_directors(tree)))
    assert lines[3:9] == SLA_4201
    assert lines[15:] == [
        (None, "track 401 ip sla 4201 reachability"),
        ("track 401 ip sla 4201 reachability", "delay down 1 up 1"),
        (None, "track 402 ip sla 4202 reachability"),
        ("track 402 ip sla 4202 reachability", "delay down 1 up 1"),
        (None, "ip route 10.10.24.88 255.255.255.255 10.10.24.2 track 401"),
        (None, "ip route 10.10.24.88 255.255.255.255 10.10.24.3 track 402")]


def test_an_ipv6_site_has_no_nat_and_routes_each_vip_as_ipv6_through_each_tracked_director(tree):
    lvs = tree["lvs"]
    lvs["lan"] = {"subnet": "2001:db8:24::/64", "gateway": "2001:db8:24::1"}
    lvs["router"].update(lan_address="2001:db8:24::1", wan_address="2001:db8:112::88/64")
    lvs["directors"] = {"director": {"address": "2001:db8:24::2"}, "director2": {"address": "2001:db8:24::3"}}
    lvs["realservers"] = {"rs1": {"address": "2001:db8:24::21"}}
    lvs["services"]["web"] = {"vip": "2001:db8:24::88", "port": 80}
    cfg = cfg_of(tree)
    assert cfg["nat"] is None
    lines = ios.desired(cfg)
    assert not [line for line in lines if "nat" in line[1]]
    assert lines[0] == (None, "ip sla 4201")
    assert ("ip sla 4201", "icmp-echo 2001:db8:24::2 source-interface GigabitEthernet0/0") in lines
    assert lines[-2:] == [(None, "ipv6 route 2001:db8:24::88/128 2001:db8:24::2 track 401"),
                          (None, "ipv6 route 2001:db8:24::88/128 2001:db8:24::3 track 402")]
    assert all(ios.is_managed_kind(line) for line in lines)


@pytest.mark.parametrize("ha, sla_lines, delay", [
    ({"interval": 0.5, "timeout": 0.2}, ["threshold 200", "timeout 200", "frequency 1"], "delay down 1 up 1"),
    ({"interval": 3, "timeout": 2.5, "fall": 3, "rise": 1}, ["threshold 2500", "timeout 2500", "frequency 3"],
     "delay down 6"),
    ({"interval": 60, "timeout": 5, "fall": 1, "rise": 1}, [], None),  # IOS's defaults: not shown, not sent
])
def test_probe_settings_follow_lvs_ha(tree, ha, sla_lines, delay):
    lines = ios.desired(cfg_of(two_directors(tree, **ha)))
    assert [text for ctx, text in lines if ctx == "ip sla 4201"][1:] == sla_lines
    assert [text for ctx, text in lines if ctx == "track 401 ip sla 4201 reachability"] == ([delay] if delay else [])


def rendered(lines):
    """``lines`` as IOS's running config shows them."""
    out, blocks = [], {}
    for ctx, text in lines:
        if ctx is None:
            out.append(text)
        else:
            blocks.setdefault(ctx, []).append(f" {text}")
    result = []
    for text in out:
        result += [text, *blocks.pop(text, [])]
    return "\n".join([f"{ctx}\n" + "\n".join(sub) for ctx, sub in blocks.items()] + result + ["end"])


def test_a_changed_probe_replaces_whole_entries_and_reports_only_what_differs(tree):
    before = ios.desired(cfg_of(two_directors(tree)))
    running = ios.parse(rendered(before))
    assert set(before) <= running
    assert ios.plan(before, running, owned=before).steps == []
    after = ios.desired(cfg_of(two_directors(tree, timeout=0.2)))
    plan = ios.plan(after, running, owned=before)
    assert plan.commands() == [
        "no ip sla 4201", "no ip sla 4202",
        "ip sla 4201", "icmp-echo 10.10.24.2 source-interface GigabitEthernet0/0", "threshold 200",
        "timeout 200", "frequency 1", "exit", "ip sla schedule 4201 life forever start-time now",
        "ip sla 4202", "icmp-echo 10.10.24.3 source-interface GigabitEthernet0/0", "threshold 200",
        "timeout 200", "frequency 1", "exit", "ip sla schedule 4202 life forever start-time now"]
    assert sorted(plan.remove) == sorted(set(before) - set(after))
    assert sorted(plan.add) == sorted(set(after) - set(before))
    # Rolled back, a removed entry is written whole again, its schedule last.
    assert plan.steps[0].undo == ("ip sla 4201", "icmp-echo 10.10.24.2 source-interface GigabitEthernet0/0",
                                  "threshold 300", "timeout 300", "frequency 1", "exit",
                                  "ip sla schedule 4201 life forever start-time now")


def test_back_to_one_director_removes_routes_then_tracks_then_entries(tree):
    before = ios.desired(cfg_of(two_directors(tree)))
    plan = ios.plan(ios.desired(cfg_of(tree)), ios.parse(rendered(before)), owned=before)
    assert plan.commands() == ["no ip route 10.10.24.88 255.255.255.255 10.10.24.2 track 401",
                               "no ip route 10.10.24.88 255.255.255.255 10.10.24.3 track 402",
                               "no track 401", "no track 402", "no ip sla 4201", "no ip sla 4202"]


def test_an_entry_or_track_that_is_not_the_packs_is_a_conflict(tree):
    want = ios.desired(cfg_of(two_directors(tree)))
    foreign = [(None, "ip sla 4202"), ("ip sla 4202", "icmp-echo 192.0.2.9 source-interface GigabitEthernet0/1"),
               (None, "track 401 interface GigabitEthernet0/1 line-protocol")]
    plan = ios.plan(want, ios.parse(rendered(foreign)), owned=[])
    assert any("'ip sla 4202' is on the device and not the pack's" in c and "lvs:ha:base" in c
               for c in plan.conflicts), plan.conflicts
    assert any("'track 401'" in c and "lvs:ha:track_base" in c for c in plan.conflicts), plan.conflicts
    # The same entry, exactly as the site wants it: adopted, nothing sent for it.
    plan = ios.plan(want, ios.parse(rendered(SLA_4201)), owned=[])
    assert "no ip sla 4201" not in plan.commands() and "ip sla 4201" not in plan.commands()
    assert not plan.conflicts


def test_track_numbers_stay_within_ios_range(tree):
    with pytest.raises(lvstun.site.SiteError) as err:
        lvstun.site.parse(two_directors(tree, track_base=999))
    assert err.value.errors == ["lvs:ha:track_base: 999 must be an integer from 0 to 998"]


@pytest.mark.parametrize("key, value, problem", [
    ("lan_interface", "0/1", "not an IOS interface name"),
    ("wan_interface", "Gi 0/1", "not an IOS interface name"),
    ("wan_interface", "GigabitEthernet0/0", "is also the LAN interface"),
    ("save", "yes", "is not true or false"),
])
def test_ios_router_errors_name_their_path(tree, key, value, problem):
    tree = copy.deepcopy(tree)
    tree["lvs"]["router"][key] = value
    with pytest.raises(lvstun.site.SiteError) as err:
        lvstun.site.parse(tree)
    assert any(e.startswith(f"lvs:router:{key}: ") and problem in e for e in err.value.errors), err.value.errors


def test_save_belongs_to_ios_routers(tree):
    tree = copy.deepcopy(tree)
    tree["lvs"]["router"].update(kind="linux", lan_interface="eth0", wan_interface="wan0")
    with pytest.raises(lvstun.site.SiteError) as err:
        lvstun.site.parse(tree)
    assert err.value.errors == ["lvs:router:save: only an ios router has a config to save"]
