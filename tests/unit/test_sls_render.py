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
