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


def test_several_directors_give_a_host_route_per_vip_through_each(tree):
    tree = copy.deepcopy(tree)
    tree["lvs"]["directors"]["director2"] = {"address": "10.10.24.3"}
    lines = ios.desired(cfg_of(tree))
    assert lines[-2:] == [(None, "ip route 10.10.24.88 255.255.255.255 10.10.24.2"),
                          (None, "ip route 10.10.24.88 255.255.255.255 10.10.24.3")]


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
    assert plan.changes() == [("interface GigabitEthernet0/1", "ip nat outside")]
    assert not plan.conflicts
    owned = ios.owned_after([], plan, want)
    assert set(owned) == set(want)  # the seed's hand-typed line is now the pack's


def test_only_owned_stale_lines_are_removed_and_first(tree):
    tree = copy.deepcopy(tree)
    tree["lvs"]["services"]["web"]["vip"] = "10.10.24.90"
    want = ios.desired(cfg_of(tree))
    old = (None, f"{STATIC} 10.10.24.88 112.2.21.88")
    plan = ios.plan(want, ios.parse(RUNNING), owned=[old])
    assert plan.changes()[0] == (None, f"no {STATIC} 10.10.24.88 112.2.21.88")
    assert (None, f"{STATIC} 10.10.24.90 112.2.21.88") in plan.changes()
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


def test_blocks_inverse_and_partial_ownership():
    changes = [(None, f"no {STATIC} 10.10.24.88 112.2.21.88"), ("interface Gi0/1", "ip nat outside")]
    assert ios.blocks(changes) == [[f"no {STATIC} 10.10.24.88 112.2.21.88"],
                                   ["interface Gi0/1", "ip nat outside", "exit"]]
    assert [ios.inverse(c) for c in changes] == [(None, f"{STATIC} 10.10.24.88 112.2.21.88"),
                                                 ("interface Gi0/1", "no ip nat outside")]
    owned = ios.owned_after_changes([(None, f"{STATIC} 10.10.24.88 112.2.21.88")], changes)
    assert owned == [("interface Gi0/1", "ip nat outside")]


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
