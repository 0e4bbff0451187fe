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

from lvs_lab import keepalived  # noqa: E402
from lvs_lab.lab import Lab  # noqa: E402
from tests.lab import health_helpers as hh  # noqa: E402

KEEPALIVED_CONF = """global_defs {{
  router_id lvs_bench_checker
}}
virtual_server {vip} {port} {{
  delay_loop 1
  lb_algo rr
  lb_kind TUN
  protocol TCP
{reals}}}
"""
REAL = """  real_server {address} {port} {{
    weight 1
    inhibit_on_failure
    TCP_CHECK {{
      connect_timeout 1
      retry 0
    }}
  }}
"""


def keepalived_start(lab, service):
    """keepalived's checker in the director, its virtual server the VIP on a port of its own."""
    svc = lab.site().services[service]
    used = {s.port for s in lab.site().services.values() if s.vip == svc.vip}
    port = next(p for p in range(svc.port + 8000, 65536) if p not in used)
    reals = "".join(REAL.format(address=lab.site().hosts[b.minion_id].address, port=b.port) for b in svc.backends)
    keepalived.start(lab, "director", KEEPALIVED_CONF.format(vip=svc.vip, port=port, reals=reals), "-C")
    spec = f"{svc.vip}:{port}"
    hh.wait_for(lambda: len(hh.weights(lab, service=spec)) == len(svc.backends), 30)
    return spec


POLLER = r"""
import sys, time
backend, path, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
last, end = None, time.time() + seconds
with open(path, "w", buffering=1) as out:
    while time.time() < end:
        seen, service = {}, None
        with open("/proc/net/ip_vs") as table:
            for line in table:
                parts = line.split()
                if parts and parts[0] in ("TCP", "UDP", "SCTP"):
                    service = parts[1]
                elif len(parts) > 3 and parts[0] == "->" and parts[1].startswith(backend + ":"):
                    seen[service] = int(parts[3])
        if seen != last:
            out.write(f"{time.time():.4f} {' '.join(f'{k}={v}' for k, v in sorted(seen.items()))}\n")
            last = seen
        time.sleep(0.01)
"""


class Poller:
    """Every weight change of one backend on the director, as the director sees it:
    a loop in the director reads /proc/net/ip_vs every 10 ms and writes each change
    with its time into the director's lab folder. The guest's clock is the
    host's (user-mode Linux): its offset is measured and kept."""

    def __init__(self, lab, address, seconds):
        self.lab = lab
        self.hex = "".join(f"{int(part):02X}" for part in address.split("."))
        # The host's folder of the director is mounted at the same path in it (read-write).
        self.path = os.path.join(lab.host_dir("director"), f"lvs-bench-weights-{os.getpid()}-{time.time():.0f}")
        script = os.path.join(lab.host_dir("director"), "lvs-bench-poller.py")
        with open(script, "w", encoding="utf-8") as fh:
            fh.write(POLLER)
        code, _, err = lab.capture("director", "sh", "-c", f"setsid python3 {script} {self.hex} {self.path} {seconds} "
                                                        "> /dev/null 2>&1 < /dev/null &")
        assert code == 0, err
        deadline = time.monotonic() + 30
        while not os.path.exists(self.path):
            assert time.monotonic() < deadline, "the director's weight poller did not start"
            time.sleep(0.1)
        # The guest's clock against the host's: each sample (host before, guest, host
        # after) bounds the offset to [guest - after, guest - before]; 5 samples, the
        # bounds intersected (user-mode Linux keeps the host's time: about 0).
        low, high = float("-inf"), float("inf")
        for _ in range(5):
            before = time.time()
            _, out, _ = lab.capture("director", "python3", "-c", "import time; print(time.time())")
            after = time.time()
            low, high = max(low, float(out) - after), min(high, float(out) - before)
        assert low <= high, "the director's clock drifts against the host's: no common offset"
        # User-mode Linux reads the host's clock: 0 when the samples allow it (an exec's
        # start-up makes the guest's reading late in its bracket, so the middle is not
        # the best guess); else the middle.
        self.offset = 0.0 if low <= 0 <= high else (low + high) / 2
        self.bracket = (low, high)

    def first_zero(self, spec, since, timeout=60):
        """Host time at which the director's weight for ``spec`` (ip:port) became 0, the
        first time after ``since``."""
        ip, port = spec.rsplit(":", 1)
        key = "".join(f"{int(part):02X}" for part in ip.split(".")) + f":{int(port):04X}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.path, encoding="utf-8") as fh:
                for line in fh:
                    stamp, *pairs = line.split()
                    at = float(stamp) - self.offset
                    if at >= since and f"{key}=0" in pairs:
                        return at
            time.sleep(0.1)
        raise AssertionError(f"{spec}: weight not 0 within {timeout} s")


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
    poller = Poller(lab, hh.address(lab, minion), 30 * trials + 60)
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
    baseline = None if args.no_keepalived else keepalived_start(lab, "web")
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
