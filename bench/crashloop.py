"""Benchmark: a crash-looping real server, on the lab (the seed's site or two_vips).

.. code-block:: bash

    lvs-lab up                          # or: lvs-lab up --site two_vips
    .venv/bin/python bench/crashloop.py --cycles 100

A loop in rs1 (``lvs_lab.timeline.Toggler``) makes its web service die and come back
as a daemon under ``Restart=always`` does when it keeps crashing: up for 0.2-3 s, dead
(its port refuses) for 1-5 s, random phases, ``--cycles`` times; once with the
salt-master up, once with it stopped. Under steady load from the client (a request
every 50 ms to the web service's public address), a loop in every director records
each weight change of rs1 (``lvs_lab.timeline.WeightLog``). Printed per director and
mode: the time rs1 spent dead but weighted in each cycle (median, p99, max, total) and
the cycles over the target (``fall`` x ``health:path_interval`` + 0.5 s: 1.5 s with the
defaults), and the requests that failed.

The baseline in the same cycles: Debian's keepalived as a checker (``keepalived -C``)
in every director, beside the pack's table, with a virtual server of its own (the VIP
on another port, the same real servers, ``delay_loop 1``, ``connect_timeout 1``,
``retry 0``, ``inhibit_on_failure``): its weights are recorded the same way.

Exit status 1 when a cycle went over the target on a director (the pack's figures).
"""

import argparse
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from lvs_lab import keepalived, load, timeline  # noqa: E402
from lvs_lab.lab import Lab  # noqa: E402


def _p99(values):
    return statistics.quantiles(values, n=100, method="inclusive")[-1] if len(values) >= 2 else values[0]


def _line(label, values, target):
    over = sum(1 for v in values if v > target)
    return (f"{label}: dead but weighted per cycle: median {statistics.median(values):.2f} s, "
            f"p99 {_p99(values):.2f} s, max {max(values):.2f} s, total {sum(values):.1f} s over {len(values)} "
            f"cycles; {over} cycle(s) over {target:.2f} s")


def run_mode(lab, args, label, specs):
    """One crash loop; returns the pack's worst cycle over all directors."""
    site = lab.site()
    svc = site.services[args.service]
    backend = site.hosts[args.minion]
    seconds = args.cycles * (3.0 + 5.0 + 1.0) + 120
    logs = {d: timeline.WeightLog(lab, d, backend.address, seconds) for d in specs}
    toggler = timeline.Toggler(lab, args.minion, svc.port, args.cycles, args.seed)
    began, results = time.time(), []
    target = f"{svc.protocol}:{svc.public or svc.vip}:{svc.port}"
    while not toggler.done():
        results += load.Running(lab, "steady", 20, 0.05, target).result()
    toggler.wait(60)
    time.sleep(2)
    dead = toggler.dead()
    check = svc.check
    limit = int(check["fall"]) * site.health.path_interval + 0.5
    worst = 0.0
    print(f"{label}: {len(dead)} cycles in {time.time() - began:.0f} s, rs dead {sum(e - s for s, e in dead):.0f} s "
          f"in all", flush=True)
    for director, log in logs.items():
        for name, spec in (("pack", f"{svc.vip}:{svc.port}"), ("keepalived", specs[director])):
            if spec is None:
                continue
            values = [log.weighted_between(spec, start, end) for start, end in dead]
            print(f"{label}: {director} {name}: " + _line(name, values, limit), flush=True)
            if name == "pack":
                worst = max(worst, max(values))
                late = [(i, round(v, 2)) for i, v in enumerate(values) if v > limit]
                if late:
                    print(f"{label}: {director} pack: cycles over the target (cycle, seconds): {late}", flush=True)
    in_dead = [r for r in results if any(s <= r[0] <= e for s, e in dead)]
    print(f"{label}: requests: {len(results)} sent, {sum(1 for r in results if not r[2])} failed "
          f"({sum(1 for r in in_dead if not r[2])} of the {len(in_dead)} sent while {args.minion} was dead)",
          flush=True)
    return worst, limit


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--minion", default="rs1")
    parser.add_argument("--service", default="web")
    parser.add_argument("--modes", default="up,stopped", help="master up and/or stopped")
    parser.add_argument("--no-keepalived", action="store_true")
    args = parser.parse_args()
    lab = Lab()
    assert lab.hosts, "the lab is not up (lvs-lab up)"
    lab.wait_serving(60)
    directors = sorted(h.minion_id for h in lab.site().directors)
    specs = {d: None if args.no_keepalived else keepalived.start_checker(lab, d, args.service) for d in directors}
    failed = False
    try:
        for mode in args.modes.split(","):
            # Every backend serving, by every record (the runner's too) before a mode:
            # with the master stopped nothing could bring back a backend it holds out.
            lab.wait_serving(120)
            if mode == "stopped":
                lab.stop_master()
            try:
                worst, limit = run_mode(lab, args, f"master {mode}", specs)
                failed = failed or worst > limit
            finally:
                if mode == "stopped":
                    lab.start_master()
            args.seed += 1
    finally:
        for director in directors:
            if specs[director]:
                keepalived.stop(lab, director)
    print(f"target (no cycle over fall x path_interval + 0.5 s on any director): {'NOT met' if failed else 'met'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
