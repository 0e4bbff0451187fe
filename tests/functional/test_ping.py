"""The directors' reachability probe (``lvstun.probe.ping``: the ``lvs_hosts`` beacon's)
against this host's kernel, in a network namespace the test makes (loopback only, so
nothing leaves it): an ICMP echo for an IPv4 address, ICMPv6 for an IPv6 one, answered
over loopback; an address nobody there holds gets no answer."""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NETNS = f"lvsping{os.getpid()}"
SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
import lvstun.probe
out = {}
for address in sys.argv[2:]:
    try:
        out[address] = lvstun.probe.ping(address, 0.5)
    except OSError as err:
        out[address] = f"error: {err}"
print(json.dumps(out))
"""


@pytest.fixture(scope="module", name="netns")
def fixture_netns():
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("the probe needs root (raw sockets, a network namespace) and CI runs as root")
        pytest.skip("raw ICMP sockets and network namespaces need root")
    subprocess.run(["ip", "netns", "add", NETNS], check=True)
    try:
        subprocess.run(["ip", "-n", NETNS, "link", "set", "lo", "up"], check=True)
        yield NETNS
    finally:
        subprocess.run(["ip", "netns", "del", NETNS], check=False)


def _ping(netns, *addresses):
    proc = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", SCRIPT,
                           os.path.join(REPO, "_utils"), *addresses], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def test_ipv4_and_ipv6_addresses_that_answer_are_reached(netns):
    assert _ping(netns, "127.0.0.1", "::1") == {"127.0.0.1": "echo reply", "::1": "echo reply"}


def test_an_address_nobody_holds_is_not(netns):
    # No route out of the namespace: the probe fails at once, as a silent host does in time.
    assert all(v.startswith("error: ") for v in _ping(netns, "192.0.2.77", "2001:db8:77::1").values())
