"""Drift records (lvstun.drift): data for beacons, names for states."""

import pytest

import lvstun.drift as drift


def test_records_render_as_state_changes_by_name():
    records = [
        drift.make("link", "tunl0", "present", "absent"),
        drift.make("up", "eth0", True, False),
        drift.make("mtu", "tunl0", 1480, 1500),
        drift.make("address", "tunl0", "10.10.24.88/32", None),
        drift.make("address", "tunl0", None, "10.10.24.90/32"),
        drift.make("sysctl", "net.ipv4.conf.all.arp_ignore", 1, 0),
        drift.make("default-route", "main", "via 10.10.24.1", None),
        drift.make("route", "10.10.24.88/32", "via 10.10.24.2, 10.10.24.3", None),
        drift.make("table-route", "4242 route 10.10.24.0/24", "dev eth0 advmss 1440", None),
        drift.make("rule", "from 10.10.24.88/32 lookup 4242", "priority 1042", None),
        drift.make("nft-table", "ip lvs_nat", ["prerouting: ..."], None),
        drift.make("ios-line", "ip nat inside source static 10.10.24.88 112.2.21.88", "present", "absent"),
        drift.make("ios-saved", "startup-config", "saved", "differs from the running config"),
        drift.make("check-failed", "ipip.check", None, "boom"),
    ]
    assert drift.as_changes(records) == {
        "tunl0": {"old": "absent", "new": "present"},
        "eth0 up": {"old": False, "new": True},
        "tunl0 mtu": {"old": 1500, "new": 1480},
        "tunl0 address 10.10.24.88/32": {"old": None, "new": "10.10.24.88/32"},
        "tunl0 address 10.10.24.90/32": {"old": "10.10.24.90/32", "new": None},
        "net.ipv4.conf.all.arp_ignore": {"old": 0, "new": 1},
        "default route": {"old": None, "new": "via 10.10.24.1"},
        "route 10.10.24.88/32": {"old": None, "new": "via 10.10.24.2, 10.10.24.3"},
        "table 4242 route 10.10.24.0/24": {"old": None, "new": "dev eth0 advmss 1440"},
        "rule from 10.10.24.88/32 lookup 4242": {"old": None, "new": "priority 1042"},
        "nftables table ip lvs_nat": {"old": None, "new": ["prerouting: ..."]},
        "ip nat inside source static 10.10.24.88 112.2.21.88": {"old": "absent", "new": "present"},
        "startup-config": {"old": "differs from the running config", "new": "saved"},
        "ipip.check failed": {"old": "boom", "new": None},
    }


def test_addresses_are_read_from_the_fields_not_the_name():
    assert drift.addresses(drift.make("address", "tunl0", "10.10.24.88/32", None)) == {"10.10.24.88"}
    assert drift.addresses(drift.make("address", "tunl0", None, "fd00::88/128")) == {"fd00::88"}
    assert drift.addresses(drift.make("sysctl", "net.ipv4.conf.all.arp_ignore", 1, 0)) == set()


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown drift kind"):
        drift.make("colour", "tunl0", "blue", "red")
