"""Benchmark: how fast backend health reaches the director, on the seed's lab.

.. code-block:: bash

    lvs-lab up
    .venv/bin/python bench/health.py --trials 10 --host-trials 3

Through the real beacons, reactor and runner (the pack's default settings: checks every
second, fall 2 / rise 2, hold 10 s, heartbeat 10 s), it measures, polling the director's
table with ipvsadm every 0.1 s:

- a real server's service killed (its port refuses connections) -> weight 0: median, p95;
- the service back -> weight restored: median (includes the hold time);
- a real server's host stopped outright (its kernel killed) -> weight 0: median;
- requests from the client while a backend is drained (``lvs.drain``) under steady
  load: how many failed (must be 0).

Each figure is printed with its trials; the lab's seed site must be up and healthy.
"""

import argparse
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from lvs_lab.lab import Lab  # noqa: E402
from tests.lab import health_helpers as hh  # noqa: E402


def timed(lab, minion, weight, timeout):
    began = time.monotonic()
    hh.wait_for(lambda: hh.weight_of(lab, minion) == weight, timeout, step=0.1)
    return time.monotonic() - began


def figures(name, values):
    values = sorted(values)
    p95 = statistics.quantiles(values, n=20)[-1] if len(values) >= 2 else values[0]
    print(f"{name}: median {statistics.median(values):.2f} s, p95 {p95:.2f} s, "
          f"min {values[0]:.2f} s, max {values[-1]:.2f} s over {len(values)} trials: "
          f"{', '.join(f'{v:.2f}' for v in values)}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--host-trials", type=int, default=3)
    parser.add_argument("--minion", default="rs1")
    args = parser.parse_args()
    lab = Lab()
    assert lab.hosts, "the lab is not up (lvs-lab up)"
    hh.wait_for(lambda: set(hh.weights(lab).values()) == {1}, 60)
    down, back = [], []
    for trial in range(args.trials):
        hh.block_service(lab, args.minion)
        began = time.monotonic()
        hh.wait_for(lambda: hh.weight_of(lab, args.minion) == 0, 60, step=0.1)
        down.append(time.monotonic() - began)
        hh.block_service(lab, args.minion, blocked=False)
        began = time.monotonic()
        hh.wait_for(lambda: hh.weight_of(lab, args.minion) == 1, 90, step=0.1)
        back.append(time.monotonic() - began)
        print(f"trial {trial + 1}: service killed -> 0 in {down[-1]:.2f} s, back -> restored in {back[-1]:.2f} s",
              flush=True)
    figures("service killed -> weight 0", down)
    figures("service back -> weight restored", back)
    stopped = []
    for trial in range(args.host_trials):
        lab.halt("rs3")
        began = time.monotonic()
        hh.wait_for(lambda: hh.weight_of(lab, "rs3") == 0, 60, step=0.1)
        stopped.append(time.monotonic() - began)
        print(f"host trial {trial + 1}: rs3 stopped -> 0 in {stopped[-1]:.2f} s", flush=True)
        lab.boot("rs3")
        lab.wait_booted(["rs3"])
        lab.wait_minions(["rs3"], timeout=300)
        hh.wait_for(lambda: hh.weight_of(lab, "rs3") == 1, 240)
    if stopped:
        figures("host stopped -> weight 0", stopped)
    drain_under_load(lab)


def drain_under_load(lab, rounds=20, per_round=10):
    """Steady load from the client; rs2 drained after a quarter of it, back after three."""
    results = []
    for index in range(rounds):
        if index == rounds // 4:
            lab.salt_run("lvs.drain", "rs2", "reason=benchmark")
        if index == 3 * rounds // 4:
            lab.salt_run("lvs.undrain", "rs2")
        results.append(hh.client_send(lab, per_round))
    failed = sum(r["failed"] for r in results)
    answered = sum(sum(r["answers"].values()) for r in results)
    print(f"drain under load: {answered} of {rounds * per_round} requests answered, {failed} failed "
          f"(rs2 drained for the middle half)", flush=True)


if __name__ == "__main__":
    main()
