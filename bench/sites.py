"""Benchmark: a master's per-event cost with many sites (no lab: simulated pillars).

.. code-block:: bash

    .venv/bin/python bench/sites.py                  # 1, 10 and 50 sites x 20 real servers
    .venv/bin/python bench/sites.py --counts 1 50 200 --events 2000

For each site count it stores every minion's pillar (a router, two directors, 20 real
servers per site, the sites at the same addresses) in Salt's own cache (``localfs``, as a
master's minion data cache holds them), then, after a warm-up, times per event:

- the gate (``lvs_reactor.job`` for ``salt/beacon/<rs>/lvs_backend/``: the site lookup
  and the queue check), and
- the runner's health round (``lvs.health``: the site lookup, the site's record read,
  the real server's report; its answer is a heartbeat: nothing changes, as most are),
  the real server's answer given by a stand-in client (no daemons),

for real servers picked at random over every site. Prints microseconds per event for
each count and the ratio to the one-site figure (the baseline, same run): flat means
the cost does not grow with the number of sites.
"""

import argparse
import importlib.util
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import types

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, "_utils")]

import salt.cache  # noqa: E402
import salt.config  # noqa: E402

import lvstun.gate  # noqa: E402
import lvstun.sites  # noqa: E402

REALSERVERS = 20


def tree(site):
    """Site ``site`` (minion ids prefixed ``s<site>-``): 2 directors, 20 real servers, the
    same addresses as every other site."""
    prefix = f"s{site}-"
    return {"lvs": {
        "site": f"s{site}",
        "lan": {"subnet": "10.10.24.0/24", "gateway": "10.10.24.1"},
        "router": {"id": f"{prefix}router", "wan_address": "112.2.21.88/24"},
        "directors": {f"{prefix}director{d}": {"address": f"10.10.24.{2 + d}"} for d in range(2)},
        "realservers": {f"{prefix}rs{r}": {"address": f"10.10.24.{21 + r}"} for r in range(REALSERVERS)},
        "services": {"web": {"vip": "10.10.24.88", "public": "112.2.21.88", "port": 80, "scheduler": "wrr"}}}}


def minions_of(pillar):
    lvs = pillar["lvs"]
    return [lvs["router"]["id"], *lvs["directors"], *lvs["realservers"]]


def load(name, *parts):
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, *parts))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Client:
    """The real servers' answers: each reports its web service healthy, just now."""

    def cmd(self, target, fun, *args, **kwargs):
        if fun == "lvs_health.report":
            return {target: {"services": {"web": {"healthy": True}}, "at": time.time(), "age": 0.5}}
        return {}


def measure(count, events, folder):
    opts = dict(salt.config.DEFAULT_MASTER_OPTS, cachedir=os.path.join(folder, str(count)), cache="localfs",
                id="master", __role="master", conf_file="/dev/null")
    cache = salt.cache.factory(opts)  # (a cachedir per count and trial: an index of its own)
    realservers = []
    for site in range(count):
        pillar = tree(site)
        for minion in minions_of(pillar):
            cache.store("pillar", minion, pillar)
        realservers += list(pillar["lvs"]["realservers"])
    time.sleep(lvstun.sites.RECENT + 1)  # pillars refreshed a while ago (a fresh one is read again: sites.RECENT)
    reactor = load(f"lvs_reactor_bench{count}", "_modules", "lvs_reactor.py")
    reactor.__opts__ = opts
    runner = load(f"lvs_runner_bench{count}", "_runners", "lvs.py")
    runner.__opts__ = opts
    runner._client = lambda: types.SimpleNamespace(cmd=Client().cmd)  # noqa: SLF001 (the daemons' stand-in)
    picks = [random.choice(realservers) for _ in range(events)]
    for minion in realservers:  # warm-up: the index reads every pillar once; each real server's first report
        runner.health(minion)
    began = time.perf_counter()
    for minion in picks:
        job = reactor.job(f"salt/beacon/{minion}/lvs_backend/")
        assert job == {"fun": "lvs.health", "minion": minion}, job
        lvstun.gate.forget(("health", minion))  # (the job would start now: the next event may queue again)
    gate = (time.perf_counter() - began) / events
    began = time.perf_counter()
    for minion in picks:
        result = runner.health(minion)
        assert result.get("changed") is False, result
    health = (time.perf_counter() - began) / events
    return gate, health, len(realservers), sum(len(minions_of(tree(s))) for s in range(count))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="lvs-bench-sites-")
    try:
        rows = {}
        for count in args.counts:
            trials = [measure(count, args.events, os.path.join(folder, f"t{t}")) for t in range(args.trials)]
            rows[count] = (statistics.median(t[0] for t in trials), statistics.median(t[1] for t in trials),
                           trials[0][2], trials[0][3])
        base_gate, base_health = rows[args.counts[0]][:2]
        print(f"{'sites':>5} {'minions':>7} {'real servers':>12} {'gate us/event':>14} {'ratio':>6} "
              f"{'runner us/event':>16} {'ratio':>6}")
        for count, (gate, health, realservers, minions) in rows.items():
            print(f"{count:>5} {minions:>7} {realservers:>12} {gate * 1e6:>14.1f} {gate / base_gate:>6.2f} "
                  f"{health * 1e6:>16.1f} {health / base_health:>6.2f}")
        print(f"(median of {args.trials} trials of {args.events} events each; ratios against {args.counts[0]} "
              "site(s), this run)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
