"""The role SLS files render any valid site's values as YAML strings, never as YAML
words (an interface named ``no`` stays "no", not False), and sysctl names of VLAN
interfaces reach the right /proc/sys file."""

import json
import os

import jinja2
import pytest
import yaml

import lvstun.sysctl
from tests.unit.checkout import REPO

ODD = "no"  # a valid interface name that plain YAML reads as False


def _render(role, cfg):
    with open(os.path.join(REPO, "salt", "lvs", f"{role}.sls"), encoding="utf-8") as fh:
        source = fh.read()
    env = jinja2.Environment()
    env.filters["json"] = json.dumps  # Salt's json filter
    template = env.from_string(source)
    salt = {"lvs_site.config": lambda: cfg}
    return yaml.safe_load(template.render(salt=salt))


def _args(states, state_id):
    return {k: v for item in next(iter(states[state_id].values())) for k, v in item.items()}


def test_realserver_values_stay_strings():
    cfg = {"device": ODD, "interface": "on", "vips": ["10.10.24.88"], "addresses": {}, "gateway": "10.10.24.1",
           "sysctls": {}, "vip_routes": {}, "heartbeat": 10, "decap": {"gue_ports": [], "gre": False}}
    args = _args(_render("realserver", cfg), "lvs-realserver-tunnel")
    assert args["name"] == ODD and args["lan_interface"] == "on"


def test_router_values_stay_strings():
    cfg = {"kind": "linux", "addresses": {}, "sysctls": {}, "routes": {}, "directors": None,
           "nat": {"table": "yes", "wan_interface": ODD, "mappings": []}}
    args = _args(_render("router", cfg), "lvs-router-nat")
    assert args["name"] == "yes" and args["wan_interface"] == ODD


def test_clean_takes_back_every_tunnel_device_the_host_recorded_and_the_network_waits_for_them():
    env = jinja2.Environment()
    env.filters["json"] = json.dumps  # Salt's json filter
    with open(os.path.join(REPO, "salt", "lvs", "clean.sls"), encoding="utf-8") as fh:
        template = env.from_string(fh.read())
    salt = {"file.join": os.path.join, "file.dirname": os.path.dirname, "file.file_exists": lambda path: False,
            "ipip.devices": lambda: ["ip6tnl0", "tun-vip", "tunl0"]}
    states = yaml.safe_load(template.render(salt=salt, opts={"conf_file": "/etc/salt/minion"}))
    args = _args(states, "lvs-clean-tunnel-tun-vip")
    assert args["name"] == "tun-vip" and args["decap"] is False
    assert {"lvs-clean-tunnel", "lvs-clean-tunnel6", "lvs-clean-tunnel-tun-vip"} == \
        {state_id for state_id in states if state_id.startswith("lvs-clean-tunnel")}
    assert {"ipip": "lvs-clean-tunnel-tun-vip"} in _args(states, "lvs-clean-network")["require"]


@pytest.mark.parametrize(("name", "expected"), [
    ("net.ipv4.conf.all.arp_ignore", "/proc/sys/net/ipv4/conf/all/arp_ignore"),
    ("net.ipv4.conf.eth0.100.rp_filter", "/proc/sys/net/ipv4/conf/eth0.100/rp_filter"),
    ("net.ipv4.ip_forward", "/proc/sys/net/ipv4/ip_forward"),
    ("net.ipv4.vs.conn_reuse_mode", "/proc/sys/net/ipv4/vs/conn_reuse_mode"),
])
def test_sysctl_paths_keep_dotted_interface_names(name, expected):
    assert lvstun.sysctl.path(name) == expected


@pytest.mark.parametrize(("value", "expected"), [(1, 1), ("1", 1), ([3, 0], [3, 0]), ("3 0", [3, 0]),
                                                 (["3", "50"], [3, 50]), (["7"], 7)])
def test_sysctl_values_of_one_or_several_numbers_compare_as_the_kernel_prints_them(value, expected):
    assert lvstun.sysctl.normal(value) == expected
