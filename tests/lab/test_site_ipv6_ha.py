"""An IPv6 site of two directors on real kernels (pillar/lvs/ipv6_ha.sls), deployed by
``state.apply`` beside the lab's seed (``Lab.add_site``) and taken away at the end.

The router (a namespace on the host kernel) spreads the IPv6 flows over both directors
through its resilient group (IPv6 nexthops, the pack's ``ip -6`` probe rules); the UML
directors hold the VIP on lo and sync their connections over an IPv6 multicast group.
A director is killed: the router's own probes take it out, and the downloads it carried
go on through the survivor (its sync daemon gave it their entries). The same figures
with more trials: ``bench/director_ha.py --site ipv6_ha``.

Every check reads the hosts with the kernel's own tools (ip, ipvsadm) or sends traffic
from the site's client: never with the pack's own readers.
"""

import subprocess
import time

import pytest

from lvs_lab import load, traffic
from tests.lab.site_helpers import active_connections, beside, buckets

SITE = "ipv6_ha"
BOTH = ["v6h-director", "v6h-director2"]
VIP = "2001:db8:26::88"


@pytest.fixture(scope="module", name="v6ha")
def fixture_v6ha(lab):
    with beside(lab, SITE) as up:
        yield up


def test_both_directors_serve_ipv6_clients_through_the_routers_group_and_sync_over_ipv6(v6ha):
    assert v6ha.director_group(SITE) == {name: True for name in BOTH}
    router = v6ha.hosts[v6ha.site(SITE).router.minion_id].netns
    route = subprocess.run(["ip", "-n", router, "-6", "route", "show", f"{VIP}/128"], capture_output=True,
                           text=True, check=True).stdout
    assert f"nhid {v6ha.site(SITE).ha.base}" in route, route
    for director in BOTH:
        code, out, err = v6ha.capture(director, "ipvsadm", "-L", "--daemon")
        assert code == 0, err
        daemons = [line for line in out.splitlines() if "sync daemon" in line]
        assert len(daemons) == 2 and all("group=ff02::4c56" in line for line in daemons), out
        code, out, err = v6ha.capture(director, "ip", "-6", "addr", "show", "dev", "lo")
        assert code == 0 and f"{VIP}/128" in out, (out, err)  # the VIP on lo, never announced
    report = traffic.run(v6ha, v6ha.site(SITE), count=16)
    assert report["ok"], traffic.describe(report)
    assert set(report["answers"]) == {"v6h-rs1", "v6h-rs2"}
    assert report["response_bytes_through_directors"] == 0
    for director in BOTH:  # the router's group spread the flows over both
        assert report["directors"][director]["ipip"][0] > 0, traffic.describe(report)


def test_a_killed_director_is_taken_out_and_its_downloads_go_on_through_the_survivor(v6ha):
    lab = v6ha
    longs = load.start_downloads(lab, 12, 20, key=SITE)
    time.sleep(6)  # established, and synced to the other director
    busy = {d: active_connections(lab, d) for d in BOTH}
    assert all(busy.values()), f"the downloads did not spread over both directors: {busy}"
    steady = load.start_steady(lab, 12, key=SITE)
    time.sleep(2)
    before = buckets(lab, SITE)
    killed_at = time.time()
    lab.halt(BOTH[0])
    lab.wait_director_group(BOTH[1:], 30, key=SITE)  # the killed director taken out by the router's probes
    survivor = lab.site(SITE).ha.base + 2
    after = buckets(lab, SITE)
    assert all(after[i] == survivor for i, m in before.items() if m == survivor)  # its flows stayed
    assert set(after.values()) == {survivor}
    results, survived = steady.result(), longs.result()
    assert [d for d in survived if not d["ok"]] == [], survived  # every byte, through either director
    failed, last, _ = load.outage(results, killed_at)
    assert last < 8, f"requests still failed {last:.1f} s after the kill ({failed} failed)"
    assert [r for r in results if r[0] > killed_at + 1 and r[2]]
    # (Its return, a reboot and the probes passing again, is the IPv4 site's test's: the
    # site is taken away next.)
