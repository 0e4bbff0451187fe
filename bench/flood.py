"""Benchmark: backend health under a flood of forged events, on the seed's lab.

.. code-block:: bash

    lvs-lab up
    .venv/bin/python bench/flood.py --events 1000 --trials 3

Each trial kills rs2's web service (its port refuses connections) and measures how long
until its weight is 0 on the director, and how long the master takes to answer
``test.ping``: first on a quiet master (the baseline, same run), then right after
``--events`` events were fired on the master's bus (half naming minions that do not
exist, half naming rs1, which is healthy: the runner asks rs1 each time it runs).
Prints both figures and their ratio to the baseline.
"""

import argparse
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import salt.config  # noqa: E402
import salt.utils.event  # noqa: E402

from lvs_lab import health as hh  # noqa: E402
from lvs_lab.lab import Lab  # noqa: E402

HEALTHY = {"10.10.24.21": 1, "10.10.24.22": 1, "10.10.24.23": 1}


def flood(opts, events):
    began = time.monotonic()
    with salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=False) as bus:
        for n in range(events // 2):
            bus.fire_event({"services": {}, "changed": ["web"]}, f"salt/beacon/stranger{n}/lvs_backend/")
            bus.fire_event({"services": {"web": {"healthy": False}}, "changed": ["web"]},
                           "salt/beacon/rs1/lvs_backend/")
    return time.monotonic() - began


def trial(lab, opts, events):
    fired = flood(opts, events) if events else 0.0
    began = time.monotonic()
    lab.salt_json("director", "test.ping", "--timeout=30")
    ping = time.monotonic() - began
    hh.block_service(lab, "rs2")
    began = time.monotonic()
    hh.wait_for(lambda: hh.weight_of(lab, "rs2") == 0, 120, step=0.1)
    drained = time.monotonic() - began
    hh.block_service(lab, "rs2", blocked=False)
    hh.wait_for(lambda: hh.weights(lab) == HEALTHY, 120, step=0.5)
    return fired, ping, drained


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    lab = Lab()
    assert lab.hosts, "the lab is not up (lvs-lab up)"
    opts = salt.config.master_config(os.path.join(lab.master_conf_dir, "master"))
    hh.wait_for(lambda: hh.weights(lab) == HEALTHY, 120)
    results = {}
    for label, events in (("quiet master", 0), (f"{args.events} forged events", args.events)):
        runs = [trial(lab, opts, events) for _ in range(args.trials)]
        results[label] = runs
        fired = statistics.median(r[0] for r in runs)
        print(f"{label}: fired in {fired:.2f} s; test.ping answered in median "
              f"{statistics.median(r[1] for r in runs):.2f} s ({', '.join(f'{r[1]:.2f}' for r in runs)}); "
              f"killed service -> weight 0 in median {statistics.median(r[2] for r in runs):.2f} s "
              f"({', '.join(f'{r[2]:.2f}' for r in runs)})", flush=True)
    quiet, flooded = results.values()

    def ratio(index):
        return statistics.median(r[index] for r in flooded) / statistics.median(r[index] for r in quiet)

    print(f"ratio flooded/quiet: test.ping {ratio(1):.2f}x, drain {ratio(2):.2f}x")


if __name__ == "__main__":
    main()
