"""The Cisco IOS front router, end to end: a real salt-master and a real salt-proxy
(proxytype lvs_ios, netmiko) apply the seed's pillar with ``router.kind: ios`` to an
IOS-like SSH server on loopback (``fake_ios``), which records every line it receives."""

import os
import shutil

import pytest
import yaml

from tests.functional import masters

from .fake_ios import FakeIOS

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEED_IOS = os.path.join(REPO, "pillar", "lvs", "seed_ios.sls")
SEED_LINE = "ip nat inside source static 10.10.24.88 112.2.21.88"
# What the operator had on the device before the pack: none of it is the pack's.
FOREIGN = ["ip nat inside source static 10.10.24.77 112.2.21.77",
           "ip nat inside source list 10 interface GigabitEthernet0/1 overload",
           "ip route 0.0.0.0 0.0.0.0 112.2.21.1"]

pytest.importorskip("netmiko", reason="the lvs_ios proxy needs netmiko (pip install .[ios])")


@pytest.fixture(scope="module", name="ios")
def fixture_ios():
    with FakeIOS() as server:
        server.device.globals = list(FOREIGN)
        server.device.interfaces["GigabitEthernet0/2"] = ["ip nat inside"]  # another inside LAN
        yield server


@pytest.fixture(scope="module", name="pillar_dir")
def fixture_pillar_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("pillar")
    (root / "top.sls").write_text("base:\n  '*':\n    - site\n")
    shutil.copy(SEED_IOS, root / "site.sls")
    return root


def set_site(pillar_dir, edit=None):
    """Write the seed_ios site, changed by ``edit(tree)``."""
    with open(SEED_IOS, encoding="utf-8") as fh:
        tree = yaml.safe_load(fh)
    if edit:
        edit(tree["lvs"])
    (pillar_dir / "site.sls").write_text(yaml.safe_dump(tree))


@pytest.fixture(scope="module", name="master")
def fixture_master(salt_factories, pillar_dir):
    factory = salt_factories.salt_master_daemon("lvs-ios-master", overrides=masters.overrides(pillar_dir))
    with factory.started():
        yield factory


@pytest.fixture(scope="module", name="router")
def fixture_router(master, ios):
    overrides = {
        "metaproxy": "lvs_proxy",
        "multiprocessing": False,  # one SSH session, shared by the jobs
        # The pack is installed on the proxy's host (its entry point): no module sync at
        # each highstate, which costs a master sign-in per module kind here (~15 s).
        "autoload_dynamic_modules": False,  # Salt 3008.4's standard one hangs at start: _metaproxy/lvs_proxy.py
        "proxy": {"proxytype": "lvs_ios", "host": "127.0.0.1", "port": ios.port,
                  "username": "admin", "password": "secret", "secret": "enable", "timeout": 10},
        "log_level": "info",
        "log_level_logfile": "info",
    }
    factory = master.salt_proxy_minion_daemon("router", overrides=overrides)
    with factory.started(start_timeout=180):
        yield factory


@pytest.fixture(name="site")
def fixture_site(pillar_dir):
    """Each test starts from the seed_ios site and leaves it so."""
    set_site(pillar_dir)
    yield lambda edit: set_site(pillar_dir, edit)
    set_site(pillar_dir)


def apply(master, test=False):
    args = ["state.apply"] + (["test=True"] if test else [])
    ret = master.salt_cli(timeout=300).run(*args, minion_tgt="router")
    states = {state["__id__"]: state for state in ret.data.values()} if isinstance(ret.data, dict) else {}
    assert states, ret
    return states


def config_lines(device, since):
    """The lines the device received in config mode since index ``since``."""
    sent, inside = [], False
    for line in device.received[since:]:
        if line == "configure terminal":
            inside = True
        elif line == "end":
            inside = False
        elif inside and line:
            sent.append(line)
    return sent


def nat_state(device):
    return device.globals, dict(device.interfaces)


def test_apply_writes_exactly_the_seed_nat_and_saves(master, router, ios, site):
    dev = ios.device
    start = len(dev.received)
    states = apply(master)
    assert sorted(states) == ["lvs-router-nat", "lvs-site-valid"], states
    nat = states["lvs-router-nat"]
    assert nat["result"] is True, nat
    assert config_lines(dev, start) == [
        "interface GigabitEthernet0/0", "ip nat inside", "exit",
        "interface GigabitEthernet0/1", "ip nat outside", "exit",
        SEED_LINE]
    assert dev.globals == [*FOREIGN, SEED_LINE]
    assert dev.interfaces == {"GigabitEthernet0/0": ["ip nat inside"], "GigabitEthernet0/1": ["ip nat outside"],
                              "GigabitEthernet0/2": ["ip nat inside"]}
    assert nat["changes"][SEED_LINE] == {"old": "absent", "new": "present"}
    assert nat["changes"]["startup-config"] == {"old": "differs from the running config", "new": "saved"}
    assert dev.startup == dev.running_config()


def test_second_apply_sends_nothing(master, router, ios, site):
    apply(master)
    start = len(ios.device.received)
    states = apply(master)
    assert states["lvs-router-nat"]["result"] is True and states["lvs-router-nat"]["changes"] == {}
    received = ios.device.received[start:]
    assert "configure terminal" not in received and "write mem" not in received, received


def test_vip_change_is_predicted_then_replaces_the_line(master, router, ios, site):
    dev = ios.device
    apply(master)
    site(lambda lvs: lvs["services"]["web"].update(vip="10.10.24.90"))
    before, start = (list(dev.globals), dict(dev.interfaces)), len(dev.received)
    predicted = apply(master, test=True)["lvs-router-nat"]
    assert predicted["result"] is None
    assert config_lines(dev, start) == [] and (dev.globals, dev.interfaces) == before
    new_line = "ip nat inside source static 10.10.24.90 112.2.21.88"
    expected = [f"no {SEED_LINE}", new_line]
    assert f"would send {expected}" in predicted["comment"], predicted["comment"]
    assert predicted["changes"] == {SEED_LINE: {"old": "present", "new": "absent"},
                                    new_line: {"old": "absent", "new": "present"},
                                    "startup-config": {"old": "differs from the running config", "new": "saved"}}
    start = len(dev.received)
    done = apply(master)["lvs-router-nat"]
    assert done["result"] is True and done["changes"] == predicted["changes"], done
    assert config_lines(dev, start) == expected
    assert dev.globals == [*FOREIGN, new_line]
    # Back to the seed: the pack's line is replaced again, the foreign ones stay.
    site(lambda lvs: None)
    apply(master)
    assert dev.globals == [*FOREIGN, SEED_LINE]


def test_a_refused_line_fails_with_the_device_words_and_is_rolled_back(master, router, ios, site):
    dev = ios.device
    apply(master)
    site(lambda lvs: lvs["services"]["web"].update(vip="10.10.24.91"))
    refused = "ip nat inside source static 10.10.24.91 112.2.21.88"
    dev.reject[refused] = "% NAT: static mapping limit reached"
    try:
        before, start = list(dev.globals), len(dev.received)
        nat = apply(master)["lvs-router-nat"]
    finally:
        dev.reject.clear()
    assert nat["result"] is False
    assert f"'{refused}': % NAT: static mapping limit reached" in nat["comment"], nat["comment"]
    assert "rolled back" in nat["comment"] and "the device is as it was" in nat["comment"]
    # Sent: the removal, the refused line, then the removal undone.
    assert config_lines(dev, start) == [f"no {SEED_LINE}", refused, SEED_LINE]
    assert dev.globals == before


def test_a_collision_with_a_line_the_pack_does_not_own_changes_nothing(master, router, ios, site):
    dev = ios.device
    apply(master)
    site(lambda lvs: lvs["services"]["web"].update(public="112.2.21.77"))
    before, start = list(dev.globals), len(dev.received)
    nat = apply(master)["lvs-router-nat"]
    assert nat["result"] is False
    assert "collides with 'ip nat inside source static 10.10.24.77 112.2.21.77'" in nat["comment"], nat["comment"]
    assert config_lines(dev, start) == [] and dev.globals == before


def test_a_lost_session_is_reported_and_the_next_apply_repairs(master, router, ios, site):
    dev = ios.device
    apply(master)
    site(lambda lvs: lvs["services"]["web"].update(vip="10.10.24.92"))
    new_line = "ip nat inside source static 10.10.24.92 112.2.21.88"
    dev.drop_on = new_line
    try:
        nat = apply(master)["lvs-router-nat"]
    finally:
        dev.drop_on = None
    assert nat["result"] is False
    assert "lost the session to the device" in nat["comment"], nat["comment"]
    assert "maybe 'ip nat inside source static 10.10.24.92 112.2.21.88'" in nat["comment"]
    assert SEED_LINE not in dev.globals and new_line not in dev.globals  # half-applied, and said so
    nat = apply(master)["lvs-router-nat"]
    assert nat["result"] is True and nat["changes"][new_line] == {"old": "absent", "new": "present"}, nat
    assert dev.globals == [*FOREIGN, new_line]


def test_wrong_credentials_fail_with_the_device_answer(master, router, ios, site):
    dev = ios.device
    apply(master)
    dev.password = "rotated"
    dev.drop_on = "show running-config"  # the open session dies; the next one must log in
    try:
        first = apply(master)["lvs-router-nat"]
        dev.drop_on = None
        second = apply(master)["lvs-router-nat"]
    finally:
        dev.drop_on, dev.password = None, "secret"
    assert first["result"] is False and "session lost during 'show running-config'" in first["comment"], first
    assert second["result"] is False and "Authentication" in second["comment"], second
    third = apply(master)["lvs-router-nat"]
    assert third["result"] is True and third["changes"] == {}, third


def test_an_entry_in_use_is_removed_after_the_device_asks(master, router, ios, site):
    dev = ios.device
    apply(master)
    dev.in_use.add(("10.10.24.88", "112.2.21.88"))
    site(lambda lvs: lvs["services"]["web"].update(vip="10.10.24.93"))
    start = len(dev.received)
    nat = apply(master)["lvs-router-nat"]
    assert nat["result"] is True, nat
    assert config_lines(dev, start) == [f"no {SEED_LINE}", "yes", "ip nat inside source static 10.10.24.93 112.2.21.88"]
    site(lambda lvs: None)
    apply(master)
    assert dev.globals == [*FOREIGN, SEED_LINE]


def add_director2(lvs, **ha):
    lvs["directors"]["director2"] = {"address": "10.10.24.3"}
    lvs["ha"] = {"timeout": 0.3, **ha}  # probes of 300 ms unless said otherwise


def probe_entry(number, address, timeout):
    return [f"ip sla {number}", f"icmp-echo {address} source-interface GigabitEthernet0/0",
            f"threshold {timeout}", f"timeout {timeout}", "frequency 1", "exit",
            f"ip sla schedule {number} life forever start-time now"]


TRACKED = ["track 401 ip sla 4201 reachability", "delay down 1 up 1", "exit",
           "track 402 ip sla 4202 reachability", "delay down 1 up 1", "exit",
           "ip route 10.10.24.88 255.255.255.255 10.10.24.2 track 401",
           "ip route 10.10.24.88 255.255.255.255 10.10.24.3 track 402"]


def test_several_directors_are_tracked_by_ip_sla_and_a_changed_probe_replaces_its_entries(master, router, ios,
                                                                                          site):
    dev = ios.device
    apply(master)
    site(lambda lvs: add_director2(lvs))
    start = len(dev.received)
    predicted = apply(master, test=True)["lvs-router-nat"]
    expected = probe_entry(4201, "10.10.24.2", 300) + probe_entry(4202, "10.10.24.3", 300) + TRACKED
    assert predicted["result"] is None and f"would send {expected}" in predicted["comment"], predicted
    assert config_lines(dev, start) == []
    done = apply(master)["lvs-router-nat"]
    assert done["result"] is True and done["changes"] == predicted["changes"], done
    assert config_lines(dev, start) == expected
    assert dev.slas[4201] == {"echo": ("10.10.24.2", "GigabitEthernet0/0"), "threshold": 300, "timeout": 300,
                              "frequency": 1, "scheduled": True}
    assert dev.tracks == {401: {"kind": "ip sla 4201 reachability", "delay": (1, 1)},
                          402: {"kind": "ip sla 4202 reachability", "delay": (1, 1)}}
    start = len(dev.received)
    assert apply(master)["lvs-router-nat"]["changes"] == {} and config_lines(dev, start) == []

    # A scheduled entry cannot be changed (the device refuses): the pack replaces it whole.
    site(lambda lvs: add_director2(lvs, timeout=0.2))
    start = len(dev.received)
    done = apply(master)["lvs-router-nat"]
    assert done["result"] is True, done
    assert config_lines(dev, start) == ["no ip sla 4201", "no ip sla 4202", *probe_entry(4201, "10.10.24.2", 200),
                                        *probe_entry(4202, "10.10.24.3", 200)]
    assert done["changes"]["ip sla 4201 / timeout 200"] == {"old": "absent", "new": "present"}
    assert done["changes"]["ip sla 4201 / timeout 300"] == {"old": "present", "new": "absent"}
    assert dev.slas[4202]["timeout"] == 200 and dev.slas[4202]["scheduled"]

    # A line refused inside an entry: the half-written entry goes, the entries removed
    # before it are written back as they were.
    before = dev.running_config()
    site(lambda lvs: add_director2(lvs, timeout=0.1))
    dev.reject["timeout 100"] = "% SLA: timeout out of range for this platform"
    start = len(dev.received)
    try:
        nat = apply(master)["lvs-router-nat"]
    finally:
        dev.reject.clear()
    assert nat["result"] is False and "the device is as it was" in nat["comment"], nat
    assert "'timeout 100': % SLA: timeout out of range for this platform" in nat["comment"]
    assert config_lines(dev, start) == ["no ip sla 4201", "no ip sla 4202",
                                        *probe_entry(4201, "10.10.24.2", 100)[:4],  # refused at its timeout
                                        "no ip sla 4201", *probe_entry(4202, "10.10.24.3", 200),
                                        *probe_entry(4201, "10.10.24.2", 200)]
    assert dev.running_config() == before

    # Back to one director: routes, then tracks, then entries go; the foreign lines stay.
    site(lambda lvs: None)
    start = len(dev.received)
    done = apply(master)["lvs-router-nat"]
    assert done["result"] is True, done
    assert config_lines(dev, start) == ["no ip route 10.10.24.88 255.255.255.255 10.10.24.2 track 401",
                                        "no ip route 10.10.24.88 255.255.255.255 10.10.24.3 track 402",
                                        "no track 401", "no track 402", "no ip sla 4201", "no ip sla 4202"]
    assert dev.globals == [*FOREIGN, SEED_LINE] and dev.slas == {} and dev.tracks == {}


def to_ipv6(lvs):
    """The seed_ios site as an IPv6 site of two directors: routed, no NAT."""
    lvs["lan"] = {"subnet": "2001:db8:24::/64", "gateway": "2001:db8:24::1"}
    lvs["router"].update(lan_address="2001:db8:24::1", wan_address="2001:db8:112::88/64")
    lvs["directors"] = {"director": {"address": "2001:db8:24::2"}, "director2": {"address": "2001:db8:24::3"}}
    lvs["realservers"] = {name: {"address": f"2001:db8:24::2{n}"}
                          for n, name in enumerate(sorted(lvs["realservers"]), 1)}
    lvs["services"]["web"]["vip"] = "2001:db8:24::88"
    del lvs["services"]["web"]["public"]
    lvs["ha"] = {"timeout": 0.3}


ROUTED6 = ["ipv6 route 2001:db8:24::88/128 2001:db8:24::2 track 401",
           "ipv6 route 2001:db8:24::88/128 2001:db8:24::3 track 402"]


def test_an_ipv6_site_is_routed_to_each_tracked_director_without_nat(master, router, ios, site):
    dev = ios.device
    apply(master)
    site(to_ipv6)
    start = len(dev.received)
    done = apply(master)["lvs-router-nat"]
    assert done["result"] is True, done
    # The pack's NAT lines go (an IPv6 site has none); the IPv6 routes follow the probes.
    assert config_lines(dev, start) == [
        f"no {SEED_LINE}",
        "interface GigabitEthernet0/0", "no ip nat inside", "exit",
        "interface GigabitEthernet0/1", "no ip nat outside", "exit",
        *probe_entry(4201, "2001:db8:24::2", 300), *probe_entry(4202, "2001:db8:24::3", 300),
        *TRACKED[:6], *ROUTED6]
    assert dev.globals == [*FOREIGN, *ROUTED6]  # the operator's lines stay
    assert dev.interfaces["GigabitEthernet0/2"] == ["ip nat inside"]
    assert dev.slas[4202]["echo"] == ("2001:db8:24::3", "GigabitEthernet0/0") and dev.slas[4202]["scheduled"]
    start = len(dev.received)
    assert apply(master)["lvs-router-nat"]["changes"] == {} and config_lines(dev, start) == []
    site(lambda lvs: None)  # back to the IPv4 seed: its NAT again, the routes and probes gone
    done = apply(master)["lvs-router-nat"]
    assert done["result"] is True, done
    assert dev.globals == [*FOREIGN, SEED_LINE] and dev.slas == {} and dev.tracks == {}
