"""Benchmark: how fast backend health reaches the director, on the seed's lab.

.. code-block:: bash

    lvs-lab up
    .venv/bin/python bench/health.py --trials 10 --master-down-trials 10 --host-trials 3

With the pack's default settings (checks every second, fall 2 / rise 2, hold 10 s,
heartbeat 10 s), timed from the moment the kill command is sent to the moment the
director's table holds weight 0 (a loop in the director reads /proc/net/ip_vs every
10 ms and notes each change; its clock is the host's, the offset measured):

- a real server's service killed (its port refuses connections) -> weight 0: median,
  p95; with the salt-master up, then with it stopped (the director's own path checks
  act alone: the ``lvs_paths`` beacon);
- the baseline in the same trials: Debian's keepalived run in the director as a
  checker (``keepalived -C``) beside the pack's table, with a virtual server of its own
  (the VIP on another port, the same real servers, ``inhibit_on_failure``) and the
  tightest usual TCP check (``delay_loop 1``, ``connect_timeout 1``, ``retry 0``): the
  same kill takes it to weight 0 too, timed from the same moment;
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

from lvs_lab import health as hh  # noqa: E402
from lvs_lab import keepalived, timeline  # noqa: E402
from lvs_lab.lab import Lab  # noqa: E402


def kill_trial(lab, minion, baseline, poller):
    """Kill ``minion``'s service; seconds until its weight is 0 in the pack's service and
    in keepalived's (``baseline``, or None), as the director's own poller saw them;
    then bring it back."""
    began = time.time()  # from the moment the kill command is sent
    hh.block_service(lab, minion)
    try:
        took = {"kill command": time.time() - began, "pack": poller.first_zero(hh.WEB, began) - began}
        if baseline:
            took["keepalived"] = poller.first_zero(baseline, began) - began
    finally:
        hh.block_service(lab, minion, blocked=False)
    began = time.monotonic()
    hh.wait_for(lambda: hh.weight_of(lab, minion) == 1, 90, step=0.1)
    took["back"] = time.monotonic() - began
    if baseline:
        hh.wait_for(lambda: hh.weight_of(lab, minion, service=baseline) == 1, 30, step=0.1)
    return took


def figures(name, values):
    values = sorted(values)
    p95 = statistics.quantiles(values, n=20)[-1] if len(values) >= 2 else values[0]
    print(f"{name}: median {statistics.median(values):.2f} s, p95 {p95:.2f} s, "
          f"min {values[0]:.2f} s, max {values[-1]:.2f} s over {len(values)} trials: "
          f"{', '.join(f'{v:.2f}' for v in values)}", flush=True)


def kill_trials(lab, minion, trials, baseline, label):
    runs = []
    poller = timeline.WeightLog(lab, "director", hh.address(lab, minion), 30 * trials + 60)
    print(f"{label}: the director's clock taken as the host's {poller.offset:+.3f} s (the samples allow "
          f"{poller.bracket[0]:+.3f} to {poller.bracket[1]:+.3f} s)", flush=True)
    for trial in range(trials):
        runs.append(kill_trial(lab, minion, baseline, poller))
        print(f"{label} trial {trial + 1}: service killed -> 0 in {runs[-1]['pack']:.2f} s (keepalived "
              f"{runs[-1].get('keepalived', float('nan')):.2f} s; the kill command took "
              f"{runs[-1]['kill command']:.2f} s), back -> restored in {runs[-1]['back']:.2f} s", flush=True)
    if runs:
        figures(f"{label}: service killed -> weight 0", [r["pack"] for r in runs])
        if baseline:
            figures(f"{label}: keepalived (same kills) -> weight 0", [r["keepalived"] for r in runs])
    return runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--master-down-trials", type=int, default=10)
    parser.add_argument("--host-trials", type=int, default=3)
    parser.add_argument("--no-keepalived", action="store_true", help="skip the keepalived baseline")
    parser.add_argument("--minion", default="rs1")
    args = parser.parse_args()
    lab = Lab()
    assert lab.hosts, "the lab is not up (lvs-lab up)"
    hh.wait_for(lambda: set(hh.weights(lab).values()) == {1}, 60)
    baseline = None
    if not args.no_keepalived:
        baseline = keepalived.start_checker(lab, "director", "web")
        hh.wait_for(lambda: len(hh.weights(lab, service=baseline)) == len(lab.site().services["web"].backends), 30)
    try:
        runs = kill_trials(lab, args.minion, args.trials, baseline, "master up")
        if args.master_down_trials:
            lab.stop_master()
            try:
                kill_trials(lab, args.minion, args.master_down_trials, baseline, "master stopped")
            finally:
                lab.start_master()
    finally:
        if baseline:
            keepalived.stop(lab, "director")
    if runs:
        figures("service back -> weight restored (master up)", [r["back"] for r in runs])
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
