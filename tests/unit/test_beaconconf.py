"""Every beacon's settings are read and checked one way (lvstun.beaconconf)."""

import importlib.util
import os

import pytest

import lvstun.beaconconf

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BEACONS = ("lvs_backend", "lvs_directors", "lvs_hosts", "lvs_paths")


def _beacon(name):
    spec = importlib.util.spec_from_file_location(f"beacon_{name}", os.path.join(REPO, "_beacons", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", BEACONS)
def test_every_beacon_accepts_salts_own_settings_and_refuses_an_unknown_one_by_name(name):
    beacon = _beacon(name)
    assert beacon.validate([{"interval": 1}, {"disable_during_state_run": True}]) == (True, "valid")
    ok, why = beacon.validate([{"interval": 1}, {"heartbaet": 5}])
    assert not ok and why.startswith(f"{name}: unknown setting(s) ['heartbaet']")
    ok, why = beacon.validate("interval: 1")
    assert not ok and why.startswith(f"{name}: the configuration is a list of settings")


@pytest.mark.parametrize(("name", "key", "value"), [
    ("lvs_backend", "heartbeat", 0), ("lvs_backend", "heartbeat", "10"), ("lvs_directors", "heartbeat", True),
    ("lvs_hosts", "rise", 1.5), ("lvs_hosts", "fall", 0), ("lvs_hosts", "probe_timeout", float("nan")),
    ("lvs_hosts", "probe_timeout", -1)])
def test_a_setting_of_the_wrong_kind_is_refused_naming_beacon_and_setting(name, key, value):
    ok, why = _beacon(name).validate([{key: value}])
    assert not ok and why.startswith(f"{name}: {key} {value!r} must be")


def test_read_gives_each_declared_setting_with_its_default_where_unset():
    settings = _beacon("lvs_hosts").SETTINGS
    conf = lvstun.beaconconf.read([{"interval": 1}, {"rise": 3}], settings)
    assert conf == {"probe_timeout": 0.4, "rise": 3, "fall": 2, "heartbeat": settings["heartbeat"].default}
    assert lvstun.beaconconf.read(None, settings)["rise"] == 2


def test_the_applied_site_is_none_while_it_is_invalid():
    assert lvstun.beaconconf.applied_site({"lvs_site.tree": lambda applied: {"subnet": "nonsense"}}) is None
