"""Helpers for the site tests: what each host holds (read with the kernel's own tools,
independently of the pack), pillar trees, and state returns by minion."""

import contextlib
import copy
import json
import os
import re
import subprocess
import sys
import threading
import time

from lvs_lab import lab as lab_mod
from lvs_lab.saltd import site_tree as repository_tree

HOLD = 3  # s a backend that went down stays out in the lab tests' sites (the default: 10)


def site_tree(name="seed"):
    """The repository's example site ``name`` as the lab tests serve it: with a hold of
    ``HOLD`` seconds, so that the many tests that wait for a backend to come back wait
    less (the default hold is the unit tests' and the benchmarks')."""
    tree = repository_tree(name)
    tree.setdefault("health", {})["hold"] = HOLD
    return tree

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# What a host of each role holds that the pack manages, as the kernel's tools print it.
SNAPSHOT = {
    "director": "ipvsadm-save -n; ipvsadm -Ln --daemon; ip -br addr; ip route show table main; "
                # the exporter's socket, by state and address (its accept queue moves with the scrapes)
                "sysctl -n net.ipv4.ip_forward; ss -Hltn 'sport = :9847' | awk '{print $1, $4}'",
    "realserver": "ip -br addr; ip rule; ip route show table main; ip route show table 4242; "
                  "sysctl -n net.ipv4.ip_forward net.ipv4.conf.all.arp_ignore net.ipv4.conf.all.arp_announce "
                  "net.ipv4.conf.tunl0.arp_ignore net.ipv4.conf.eth0.arp_ignore net.ipv4.conf.all.rp_filter "
                  "net.ipv4.conf.tunl0.rp_filter",
    "router": "nft list ruleset; ip -br addr; sysctl -n net.ipv4.ip_forward; ip -d nexthop show; "
              "ip route show table all proto 77; ip rule",
}


def edited(tree, change):
    """A deep copy of ``tree`` with ``change(copy)`` applied."""
    tree = copy.deepcopy(tree)
    change(tree)
    return tree


def snapshot(lab, hosts=None):
    """{host: text} of everything the pack manages on each (or the named) lab host."""
    out = {}
    for name, host in sorted(lab.hosts.items()):
        if host.role not in SNAPSHOT or (hosts and name not in hosts):
            continue
        code, text, err = lab.capture(name, "sh", "-c", SNAPSHOT[host.role])
        assert code == 0, f"{name}: {err}"
        # A veth's peer index changes when it is made again (and with it the padding); a
        # resilient group's unbalanced_time is the kernel's running timer, not a setting.
        text = re.sub(r"unbalanced_time \S+ ", "", re.sub(r"@if\d+", "", text))
        out[name] = re.sub(r"[ \t]+", " ", text)
    return out


def changes_by_minion(returns):
    """{minion: {state id: changes}} of a ``state.apply`` return, only states with changes."""
    out = {}
    for minion, states in returns.items():
        assert isinstance(states, dict), f"{minion}: {states}"
        out[minion] = {s["__id__"]: s["changes"] for s in states.values() if s["changes"]}
    return out


def results_by_minion(returns):
    return {minion: {s["__id__"]: s["result"] for s in states.values()} for minion, states in returns.items()}


def apply(lab, *args):
    """``salt '*' state.apply ARGS`` (every minion must return)."""
    returns = lab.salt_json("--timeout=600", "*", "state.apply", *args, timeout=900)
    assert sorted(returns) == lab.minions, returns
    return returns


@contextlib.contextmanager
def packet_too_big_dropped(netns):
    """Namespace ``netns`` hears no ICMPv6 "packet too big" (as behind many firewalls)
    while the block runs: an nftables table of the test's own, deleted after."""
    nft = ["ip", "netns", "exec", netns, "nft"]
    subprocess.run([*nft, "-f", "-"], check=True, text=True, input=(
        "table ip6 lvslab_noptb {\n chain input {\n type filter hook input priority 0;\n"
        " icmpv6 type packet-too-big counter drop\n }\n}\n"))
    try:
        subprocess.run(["ip", "-n", netns, "-6", "route", "flush", "cache"], check=False)  # a fresh path MTU
        yield
    finally:
        subprocess.run([*nft, "delete", "table", "ip6", "lvslab_noptb"], check=False)


def clean(lab, host, test=False):
    """``salt HOST state.apply lvs.clean`` (the host leaves its site): its changes by
    state id; every state must have succeeded."""
    args = ["--timeout=600", host, "state.apply", "lvs.clean"] + (["test=True"] if test else [])
    returns = lab.salt_json(*args, timeout=900)
    states = returns.get(host)
    assert isinstance(states, dict), returns
    failed = {s["__id__"]: s["comment"] for s in states.values() if s["result"] is False}
    assert not failed, failed
    return changes_by_minion({host: states})[host]


def buckets(lab, key=None):
    """``{bucket index: member id}`` of the router's director group (of site ``key``)."""
    site = lab.site(key)
    out = subprocess.run(["ip", "-n", lab.hosts[site.router.minion_id].netns, "-j", "nexthop", "bucket", "show",
                          "id", str(site.ha.base)], capture_output=True, text=True, check=True).stdout
    return {b["bucket"]["index"]: b["bucket"]["nhid"] for b in json.loads(out)}


def group_weights(lab, key=None):
    """``{member id: weight}`` of the router's director group (of site ``key``), as the
    kernel holds it now."""
    site = lab.site(key)
    return dict(_group_reader(lab, site)())


def _group_reader(lab, site):
    argv = ["ip", "-n", lab.hosts[site.router.minion_id].netns, "-j", "nexthop", "show", "id", str(site.ha.base)]

    def read():
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        return tuple((m["id"], m.get("weight", 1)) for m in json.loads(out)[0]["group"])

    return read


def group_sampler(lab, key=None, every=0.05):
    """Start sampling the router's director group (of site ``key``): returns ``(samples,
    stop)``; ``samples`` gets ``(time, ((member id, weight), ...))`` at each change of the
    group, until ``stop()`` (which waits for the sampler)."""
    read, samples, done = _group_reader(lab, lab.site(key)), [], threading.Event()

    def sample():
        last = None
        while not done.is_set():
            group = read()
            if group != last:
                samples.append((time.time(), group))
                last = group
            time.sleep(every)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()

    def stop():
        done.set()
        thread.join()

    return samples, stop


def active_connections(lab, director):
    """The active connections of ``director``'s IPVS table (ipvsadm's ActiveConn column)."""
    code, out, err = lab.capture(director, "ipvsadm", "-Ln")
    assert code == 0, err
    return sum(int(line.split()[4]) for line in out.splitlines() if line.strip().startswith("->")
               and line.split()[4].isdigit())


@contextlib.contextmanager
def beside(lab, key):
    """The example site ``key`` up beside the lab's seed (its kernels booted, the states
    applied to its minions, serving), taken away when done: the next modules find the
    seed's lab as it was."""
    began = time.monotonic()
    lab.add_site(key)
    sys.stderr.write(f"\nsite {key} up beside the seed's in {time.monotonic() - began:.0f} s\n")
    yield lab
    lab.remove_site(key)
    assert lab_mod.Lab().extra_sites == []
