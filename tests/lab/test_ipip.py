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


GUE_PORT, OTHERS_PORT = 6090, 6091


def _fou(lab):
    """``ip fou show`` (nothing where the fou module is not loaded: no such family)."""
    code, out, err = lab.capture(RS, "ip", "fou", "show")
    assert code == 0 or "No such file or directory" in err, err
    return out if code == 0 else ""


def _gre0_up(lab):
    """Whether gre0 is up, read from sysfs (``ip link show gre0`` would load ip_gre: the
    kernel loads a device's module when a program asks for it by name)."""
    code, out, _ = lab.capture(RS, "cat", "/sys/class/net/gre0/flags")
    return code == 0 and bool(int(out, 16) & 1)


OWN = "tunvip"  # a site's own tunnel:device


def test_a_device_of_the_sites_own_is_made_then_deleted_by_clean_which_finds_it_in_the_records(bare_rs):
    applied = tunnel_state(bare_rs, name=OWN)
    assert applied["result"] is True and f"{OWN} address 10.10.24.88/32" in applied["changes"], applied
    code, out, err = bare_rs.capture(RS, "ip", "-d", "-o", "link", "show", OWN)
    assert code == 0 and " ipip " in out, err
    assert OWN in call(bare_rs, "ipip.devices", minion=RS)  # lvs.clean takes back what this lists
    undone = call(bare_rs, "ipip.absent", OWN, "decap=False", minion=RS)
    assert {d["kind"] for d in undone} == {"address", "link"}, undone
    assert bare_rs.capture(RS, "ip", "link", "show", OWN)[0] != 0  # deleted: the pack made it
    assert call(bare_rs, "ipip.check_absent", OWN, "decap=False", minion=RS) == []  # nothing left to undo


@pytest.fixture(name="decap_rs")
def fixture_decap_rs(bare_rs):
    """rs1 without GUE ports or GRE before and after (the modules unloaded again: the
    clean tests compare hosts with what they were before the pack)."""
    yield bare_rs
    bare_rs.capture(RS, "sh", "-c", f"ip fou del port {GUE_PORT}; ip fou del port {OTHERS_PORT}; "
                                    "/run/modprobe -r ip_gre fou")
    call(bare_rs, "ipip.absent", minion=RS)


def test_gue_ports_and_gre_are_opened_and_only_the_packs_are_closed(decap_rs):
    lab = decap_rs
    decap = {"gue_ports": [GUE_PORT], "gre": True}
    predicted = tunnel_state(lab, test=True, decap=decap)
    assert predicted["result"] is None
    assert predicted["changes"][f"GUE port {GUE_PORT}"] == {"old": None, "new": "gue"}
    assert f"port {GUE_PORT}" not in _fou(lab) and not _gre0_up(lab)  # test=True changed nothing
    applied = tunnel_state(lab, decap=decap)
    assert applied["result"] is True and applied["changes"] == predicted["changes"], applied
    assert f"port {GUE_PORT} gue" in _fou(lab) and _gre0_up(lab)
    assert sysctl(lab, "net.ipv4.conf.gre0.rp_filter") == 0
    assert (tunnel_state(lab, decap=decap)["changes"]) == {}  # idempotent
    # A port another tool opened is never the pack's to close.
    code, _, err = lab.capture(RS, "ip", "fou", "add", "port", str(OTHERS_PORT), "gue")
    assert code == 0, err
    # No GUE or GRE service left: the pack's port closes, gre0 goes down as it was.
    none = tunnel_state(lab, decap={"gue_ports": [], "gre": False})
    assert none["result"] is True and none["changes"] == {
        f"GUE port {GUE_PORT}": {"old": "gue", "new": None}, "gre0 up": {"old": True, "new": False}}, none
    assert f"port {GUE_PORT} " not in _fou(lab) and f"port {OTHERS_PORT} gue" in _fou(lab) and not _gre0_up(lab)
    # ipip.absent (lvs.clean) closes the pack's ports too, and only those.
    tunnel_state(lab, decap=decap)
    undone = call(lab, "ipip.absent", minion=RS)
    assert {(d["kind"], d["object"]) for d in undone} >= {("gue-port", str(GUE_PORT)), ("up", "gre0")}, undone
    assert f"port {GUE_PORT} " not in _fou(lab) and f"port {OTHERS_PORT} gue" in _fou(lab) and not _gre0_up(lab)


def test_a_port_open_for_another_encapsulation_is_refused_by_name(decap_rs):
    lab = decap_rs
    assert lab.capture(RS, "modprobe", "fou")[0] == 0  # ip fou does not load it
    assert lab.capture(RS, "ip", "fou", "add", "port", str(GUE_PORT), "ipproto", "4")[0] == 0
    refused = tunnel_state(lab, decap={"gue_ports": [GUE_PORT], "gre": False})
    assert refused["result"] is False and f"UDP port {GUE_PORT} is a foo-over-UDP port of kind direct" \
        in refused["comment"], refused
