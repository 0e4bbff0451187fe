"""What a TUN real server needs, as data."""

import pytest

import lvstun.tun


def test_realserver_sysctls_cover_the_seed_and_the_lan_nic():
    wanted = lvstun.tun.realserver_sysctls("tunl0", "eth0")
    assert wanted["net.ipv4.conf.all.arp_ignore"] == 1 and wanted["net.ipv4.conf.eth0.arp_ignore"] == 1
    assert wanted["net.ipv4.conf.all.arp_announce"] == 2 and wanted["net.ipv4.conf.eth0.arp_announce"] == 2
    assert wanted["net.ipv4.conf.tunl0.arp_ignore"] == 1 and wanted["net.ipv4.conf.tunl0.arp_announce"] == 2
    assert {wanted[f"net.ipv4.conf.{i}.rp_filter"] for i in ("all", "default", "tunl0")} == {0}


def test_director_sysctls_turn_forwarding_off_and_take_ipvs_settings():
    assert lvstun.tun.director_sysctls() == {"net.ipv4.ip_forward": 0}
    assert lvstun.tun.director_sysctls({"conn_reuse_mode": 3, "expire_nodest_conn": 1, "x": None}) == {
        "net.ipv4.ip_forward": 0, "net.ipv4.vs.conn_reuse_mode": 3, "net.ipv4.vs.expire_nodest_conn": 1}


def test_vips_are_validated_and_deduplicated():
    assert lvstun.tun.vip_list(["10.10.24.89", "10.10.24.88", "10.10.24.89"]) == ["10.10.24.88", "10.10.24.89"]
    assert lvstun.tun.vip_list("10.10.24.88") == ["10.10.24.88"]
    for bad in ("10.10.24.88/32", "nope", "10.10.24.256"):
        with pytest.raises(ValueError, match="is not an IP address"):
            lvstun.tun.vip_list([bad])
