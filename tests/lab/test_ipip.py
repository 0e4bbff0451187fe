"""The real-server side on a real kernel: tunnel, VIP, sysctls; both test modes;
drift repaired and reported by name."""

import json

import pytest

from tests.lab.ipvs_helpers import call

# The health beacons would re-weight or fail this module's own tables and tunnels.
pytestmark = pytest.mark.usefixtures("health_paused")

RS = "rs1"
VIP = "10.10.24.88"


def tunnel_state(lab, test=False, **kwargs):
    args = [f"{k}={json.dumps(v)}" for k, v in {"name": "tunl0", "vips": [VIP], **kwargs}.items()]
    ret = call(lab, "state.single", "ipip.tunnel_present", *args, f"test={test}", minion=RS)
    assert isinstance(ret, dict) and len(ret) == 1, ret
    return next(iter(ret.values()))


def sysctl(lab, name):
    code, out, _ = lab.capture(RS, "cat", "/proc/sys/" + name.replace(".", "/"))
    assert code == 0
    return int(out)


BARE = ("ip addr flush dev tunl0; ip link set tunl0 down; "
        "for k in all/arp_ignore all/arp_announce eth0/arp_ignore eth0/arp_announce; do "
        "echo 0 > /proc/sys/net/ipv4/conf/$k; done; echo 1 > /proc/sys/net/ipv4/conf/all/rp_filter")


@pytest.fixture(name="bare_rs")
def fixture_bare_rs(lab):
    """rs1 as a host that was never a TUN real server, before and after each test (a VIP
    left on tunl0 without arp_ignore would answer ARP for the VIP in later tests)."""
    call(lab, "saltutil.sync_all", minion=RS)
    assert lab.capture(RS, "sh", "-c", BARE)[0] == 0
    yield lab
    assert lab.capture(RS, "sh", "-c", BARE)[0] == 0


def test_tunnel_present_predicts_applies_and_is_idempotent(bare_rs):
    predicted = tunnel_state(bare_rs, test=True, mtu=1480)
    assert predicted["result"] is None
    assert predicted["changes"]["tunl0 up"] == {"old": False, "new": True}
    assert predicted["changes"]["tunl0 address 10.10.24.88/32"] == {"old": None, "new": "10.10.24.88/32"}
    assert predicted["changes"]["net.ipv4.conf.all.arp_ignore"] == {"old": 0, "new": 1}
    assert predicted["changes"]["net.ipv4.conf.all.rp_filter"] == {"old": 1, "new": 0}
    assert sysctl(bare_rs, "net.ipv4.conf.all.arp_ignore") == 0  # test=True changed nothing
    applied = tunnel_state(bare_rs, mtu=1480)
    assert applied["result"] is True and applied["changes"] == predicted["changes"]
    code, out, err = bare_rs.capture(RS, "ip", "-o", "addr", "show", "dev", "tunl0")
    assert code == 0, err
    assert "10.10.24.88/32" in out
    code, out, err = bare_rs.capture(RS, "ip", "-o", "link", "show", "tunl0")
    assert code == 0, err
    assert "mtu 1480" in out and ",UP" in out
    assert [sysctl(bare_rs, f"net.ipv4.conf.{k}") for k in ("all.arp_ignore", "eth0.arp_announce", "all.rp_filter",
                                                           "tunl0.rp_filter")] == [1, 2, 0, 0]
    again = tunnel_state(bare_rs, mtu=1480)
    assert (again["result"], again["changes"]) == (True, {})


def test_drift_is_repaired_and_named(bare_rs):
    tunnel_state(bare_rs)
    bare_rs.capture(RS, "sh", "-c", "echo 0 > /proc/sys/net/ipv4/conf/eth0/arp_ignore; "
                    "ip addr del 10.10.24.88/32 dev tunl0")
    drifts = call(bare_rs, "ipip.check", json.dumps([VIP]), minion=RS)
    # Structured records (kind, object, want, have), as the beacon reads them ...
    assert sorted(drifts, key=lambda d: d["kind"]) == [
        {"kind": "address", "object": "tunl0", "want": "10.10.24.88/32", "have": None},
        {"kind": "sysctl", "object": "net.ipv4.conf.eth0.arp_ignore", "want": 1, "have": 0}]
    # ... named in the state's changes.
    repaired = tunnel_state(bare_rs)
    assert repaired["result"] is True
    assert repaired["changes"] == {"net.ipv4.conf.eth0.arp_ignore": {"old": 0, "new": 1},
                                   "tunl0 address 10.10.24.88/32": {"old": None, "new": "10.10.24.88/32"}}
    assert call(bare_rs, "ipip.check", json.dumps([VIP]), minion=RS) == []


def test_bad_vip_fails_before_any_change(bare_rs):
    ret = tunnel_state(bare_rs, vips=["10.10.24.888"])
    assert ret["result"] is False and "'10.10.24.888' is not an IP address" in ret["comment"]
    assert sysctl(bare_rs, "net.ipv4.conf.all.arp_ignore") == 0
