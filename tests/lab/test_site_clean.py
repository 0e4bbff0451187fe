"""A host that leaves the site (salt/lvs/clean.sls): each role gets back exactly what its
installer left, read with the kernel's own tools against the snapshot taken before the
pack's first apply; a second run changes nothing; applying the site brings it back."""

import pytest

from lvs_lab import traffic
from tests.lab.conftest import pristine
from tests.lab.site_helpers import apply, clean, edited, site_tree, snapshot

# The health loop would re-weight the tables these tests take apart.
pytestmark = pytest.mark.usefixtures("health_paused")

STARTUP = "etc/minion.d/lvs-pack.conf"  # the startup highstate's file, in the host's folder


@pytest.fixture(name="before")
def fixture_before(lab):
    lab.set_pillar(site_tree())
    apply(lab)
    found = pristine(lab)
    if found is None:
        pytest.skip("this lab was not brought up by the test session: no snapshot from before the first apply")
    yield found
    lab.set_pillar(site_tree())
    apply(lab)


def _assert_left_the_site(lab, host, before):
    assert snapshot(lab, [host]) == {host: before[host]}
    beacons = lab.salt_json(host, "beacons.list", "return_yaml=False").get(host) or {}
    assert not {"lvs_backend", "lvs_hosts"} & set(beacons), beacons
    code, _, _ = lab.capture(host, "test", "-e", f"{lab.host_dir(host)}/{STARTUP}")
    assert code == 1  # no startup highstate: a reboot does not bring the role back
    assert clean(lab, host) == {}  # a second run changes nothing


@pytest.mark.parametrize("host", ["director", "router"])
def test_clean_takes_off_exactly_what_the_pack_put_on(lab, before, host):
    assert snapshot(lab, [host]) != {host: before[host]}  # the pack's setup is there to take off
    predicted = clean(lab, host, test=True)
    assert predicted  # test=True lists what would go ...
    assert snapshot(lab, [host]) != {host: before[host]}  # ... and changes nothing
    assert clean(lab, host) == predicted
    _assert_left_the_site(lab, host, before)
    # Applying the site puts the host back in its role, and traffic flows.
    apply(lab)
    report = traffic.run(lab, lab.site(), count=9, service="web")
    assert report["ok"], traffic.describe(report)


def test_a_real_server_that_left_the_pillar_is_cleaned_and_the_site_serves_without_it(lab, before):
    lab.set_pillar(edited(site_tree("seed"), lambda tree: tree["realservers"].pop("rs3")))
    apply(lab)
    changes = clean(lab, "rs3")
    assert "tunl0 address 10.10.24.88/32" in changes["lvs-clean-tunnel"]
    assert changes["lvs-clean-network"]["net.ipv4.conf.all.arp_ignore"]["old"] == 1  # ARP hidden until now
    _assert_left_the_site(lab, "rs3", before)
    report = traffic.run(lab, lab.site(), count=10, service="web")
    assert report["ok"] and set(report["answers"]) == {"rs1", "rs2"}, traffic.describe(report)
