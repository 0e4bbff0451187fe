"""How the lab maps a site onto engines, addresses and device names."""

import os

import yaml

import lvspack_site
from lvs_lab import plan, traffic

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _seed_site():
    with open(os.path.join(REPO, "pillar", "lvs", "seed.sls"), encoding="utf-8") as fh:
        return lvspack_site.parse(yaml.safe_load(fh))


def test_seed_site_becomes_uml_hosts_router_namespace_and_client():
    hosts = plan.build(_seed_site())
    assert {n: (h.engine, h.role, h.minion) for n, h in hosts.items()} == {
        "router": ("netns", "router", True),
        "director": ("uml", "director", True),
        "rs1": ("uml", "realserver", True),
        "rs2": ("uml", "realserver", True),
        "rs3": ("uml", "realserver", True),
        "client": ("netns", "client", False),
    }
    assert hosts["rs3"].lan_address == "10.10.24.23/24"
    assert hosts["director"].gateway == "10.10.24.1"
    assert hosts["client"].lan_address == "112.2.21.1/24"
    assert hosts["client"].gateway == "112.2.21.88"
    mgmt = [h.mgmt_ip for h in hosts.values() if h.minion]
    assert len(set(mgmt)) == len(mgmt) and plan.MASTER_ADDRESS not in mgmt


def test_device_names_fit_the_kernel_limit_and_are_unique():
    hosts = plan.build(_seed_site())
    names = [h.tap(net) for h in hosts.values() for net in ("lan", "mgmt")]
    assert len(set(names)) == len(names)
    assert all(len(name) <= 15 for name in names)


def test_director_counters_are_read_from_iptables_save():
    save = "\n".join(
        [
            "*mangle",
            "[12:720] -A PREROUTING -j LVSLAB_PROBE",
            "[30:1800] -A LVSLAB_PROBE -d 10.10.24.88/32 -p tcp -m comment --comment requests -m tcp --dport 80",
            "[0:0] -A LVSLAB_PROBE -s 10.10.24.88/32 -p tcp -m comment --comment responses -m tcp --sport 80",
            "[31:2480] -A LVSLAB_PROBE_OUT -p ipencap -m comment --comment ipip",
            "COMMIT",
        ]
    )
    assert traffic.read_counters(save) == {"requests": (30, 1800), "responses": (0, 0), "ipip": (31, 2480)}
