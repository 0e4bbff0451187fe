"""A real server hides the VIP from ARP before the VIP is on its tunnel, never after
(``ipip.present``), checked on the order of the calls it makes."""

import contextlib
import types

from tests.unit.checkout import load


def test_arp_sysctls_are_set_before_any_vip_is_added(monkeypatch):
    ipip = load("ipip_under_test", "_modules", "ipip.py")
    calls = []
    state = {"exists": True, "up": False, "mtu": 1480, "addresses": []}
    ipip.__opts__ = {"cachedir": "/nonexistent"}
    monkeypatch.setattr(ipip.lvstun.originals, "load", lambda opts: ipip.lvstun.originals.empty())
    monkeypatch.setattr(ipip.lvstun.originals, "store", lambda opts, record: None)
    monkeypatch.setattr(ipip, "tunnel", lambda device: state)
    monkeypatch.setattr(ipip, "check", lambda *a: [{"kind": "address", "object": "tunl0",
                                                    "want": "10.10.24.88/32", "have": None}])
    monkeypatch.setattr(ipip, "_ensure_device", lambda ipr, device, version, lan_interface: calls.append("device"))
    monkeypatch.setattr(ipip.lvstun, "sysctl", types.SimpleNamespace(
        apply=lambda wanted: calls.append(("sysctls", wanted["net.ipv4.conf.all.arp_ignore"])),
        SysctlError=OSError))

    class Link:
        def link(self, verb, **kwargs):
            calls.append(("link", verb))

    monkeypatch.setattr(ipip, "IPRoute", lambda: contextlib.nullcontext(Link()), raising=False)
    monkeypatch.setattr(ipip.lvstun, "netlink", types.SimpleNamespace(
        link=lambda ipr, device: {"index": 7},
        add_address=lambda ipr, index, cidr, vip=False: calls.append(("add", cidr)),
        addresses=lambda ipr, index: ["10.10.24.88/32"],
        del_address=lambda ipr, index, cidr: calls.append(("del", cidr))))
    monkeypatch.setattr(ipip.lvstun, "tun", types.SimpleNamespace(
        realserver_sysctls=lambda device, lan: {"net.ipv4.conf.all.arp_ignore": 1}, addresses_in_use=set,
        vip_list=lambda vips: list(vips), stale_vips=lambda *a: []))
    ipip.present(["10.10.24.88"])
    assert calls.index(("sysctls", 1)) < calls.index(("add", "10.10.24.88/32"))
    assert calls[0] == "device"


def test_a_device_that_is_not_an_ipip_tunnel_is_refused_before_any_change(monkeypatch):
    """``tunnel.device`` naming a NIC or lo is refused by the site (issue 25); should a
    host still have such a device under the name, the real server's state stops before
    touching it (its addresses would read as stale VIPs)."""
    import pytest  # noqa: PLC0415
    from salt.exceptions import CommandExecutionError  # noqa: PLC0415

    ipip = load("ipip_not_a_tunnel", "_modules", "ipip.py")
    ipip.__opts__ = {"cachedir": "/nonexistent"}
    monkeypatch.setattr(ipip, "tunnel", lambda device: {"exists": True, "up": True, "mtu": 1500, "kind": "veth",
                                                        "addresses": ["10.10.24.21/24"]})
    with pytest.raises(CommandExecutionError, match="eth0 exists and is a veth, not an ipip tunnel"):
        ipip.check(["10.10.24.88"], device="eth0")
    monkeypatch.setattr(ipip, "tunnel", lambda device: {"exists": True, "up": True, "mtu": 65536, "kind": None,
                                                        "addresses": ["127.0.0.1/8"]})
    with pytest.raises(CommandExecutionError, match="lo exists and is a device, not an ipip tunnel"):
        ipip.present(["10.10.24.88"], device="lo")
