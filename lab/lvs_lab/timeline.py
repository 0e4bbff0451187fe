"""What happened when, inside the lab's kernels, for the health benchmarks.

- :class:`WeightLog`: a loop in a director reads ``/proc/net/ip_vs`` every 10 ms and
  writes each change of one real server's weights (every service) with its time;
- :class:`Toggler`: a loop in a real server blocks and opens a TCP port with random
  phases (a crash-looping service: its port refuses while it is "dead") and writes
  each switch with the time before and after it.

Both write into the host's folder of their lab host (mounted at the same path in the
guest). A user-mode Linux guest reads the host's clock: the offset is measured and kept,
so their times and the host's line up.
"""

import json
import os
import time

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

TOGGLER = r"""
import json, random, subprocess, sys, time
port, cycles, seed, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
up_lo, up_hi, down_lo, down_hi = map(float, sys.argv[5:9])
rng = random.Random(seed)
rule = ["INPUT", "-p", "tcp", "--dport", port, "-j", "REJECT", "--reject-with", "tcp-reset"]
with open(path, "w", buffering=1) as out:
    for cycle in range(cycles):
        time.sleep(rng.uniform(up_lo, up_hi))
        before = time.time()
        subprocess.run(["iptables-legacy", "-I", *rule], check=True)
        dead_from = (before, time.time())
        time.sleep(rng.uniform(down_lo, down_hi))
        before = time.time()
        subprocess.run(["iptables-legacy", "-D", *rule], check=True)
        out.write(json.dumps({"cycle": cycle, "dead": [dead_from[0], dead_from[1], before, time.time()]}) + "\n")
    out.write(json.dumps({"done": time.time()}) + "\n")
"""


def _hex(address):
    return "".join(f"{int(part):02X}" for part in address.split("."))


def _start(lab, name, script_name, script, *args):
    script_path = os.path.join(lab.host_dir(name), script_name)
    with open(script_path, "w", encoding="utf-8") as fh:
        fh.write(script)
    code, _, err = lab.capture(name, "sh", "-c", f"setsid python3 {script_path} {' '.join(map(str, args))} "
                                                 "> /dev/null 2>&1 < /dev/null &")
    assert code == 0, err


def clock_offset(lab, name):
    """``(offset, (low, high))``: the guest's clock minus the host's. Each sample (host
    before, guest, host after) bounds it to [guest - after, guest - before]; 5 samples,
    the bounds intersected. User-mode Linux reads the host's clock: 0 when the samples
    allow it (an exec's start-up makes the guest's reading late in its bracket)."""
    low, high = float("-inf"), float("inf")
    for _ in range(5):
        before = time.time()
        _, out, _ = lab.capture(name, "python3", "-c", "import time; print(time.time())")
        after = time.time()
        low, high = max(low, float(out) - after), min(high, float(out) - before)
    assert low <= high, f"{name}'s clock drifts against the host's: no common offset"
    return (0.0 if low <= 0 <= high else (low + high) / 2), (low, high)


class WeightLog:
    """Every weight change of one real server (``address``) on ``director``, as the
    director's kernel shows it, for ``seconds``."""

    def __init__(self, lab, director, address, seconds):
        self.lab, self.director = lab, director
        self.path = os.path.join(lab.host_dir(director), f"lvs-bench-weights-{os.getpid()}-{time.time():.3f}")
        _start(lab, director, "lvs-bench-poller.py", POLLER, _hex(address), self.path, seconds)
        deadline = time.monotonic() + 30
        while not os.path.exists(self.path):
            assert time.monotonic() < deadline, f"the weight poller in {director} did not start"
            time.sleep(0.1)
        self.offset, self.bracket = clock_offset(lab, director)

    def changes(self, spec):
        """``[(host time, weight or None), ...]`` of the service ``spec`` (``ip:port``)."""
        ip, port = spec.rsplit(":", 1)
        key = f"{_hex(ip)}:{int(port):04X}="
        out = []
        with open(self.path, encoding="utf-8") as fh:
            for line in fh:
                stamp, *pairs = line.split()
                found = [int(p[len(key):]) for p in pairs if p.startswith(key)]
                weight = found[0] if found else None
                if not out or out[-1][1] != weight:
                    out.append((float(stamp) - self.offset, weight))
        return out

    def first_zero(self, spec, since, timeout=60):
        """Host time at which the weight of ``spec`` became 0, the first time after ``since``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, weight in self.changes(spec):
                if at >= since and weight == 0:
                    return at
            time.sleep(0.1)
        raise AssertionError(f"{self.director} {spec}: weight not 0 within {timeout} s")

    def weighted_between(self, spec, start, end):
        """Seconds within [start, end] during which ``spec``'s weight was above 0."""
        changes, total = self.changes(spec), 0.0
        for index, (at, weight) in enumerate(changes):
            until = changes[index + 1][0] if index + 1 < len(changes) else float("inf")
            lo, hi = max(at, start), min(until, end)
            if weight and hi > lo:
                total += hi - lo
        return total


class Toggler:
    """A crash-looping service on real server ``name``: ``cycles`` times, its TCP ``port``
    answers for ``up`` seconds then refuses for ``down`` seconds (each drawn uniformly
    from its range with the seed ``seed``)."""

    def __init__(self, lab, name, port, cycles, seed, up=(0.2, 3.0), down=(1.0, 5.0)):
        self.lab, self.name = lab, name
        self.path = os.path.join(lab.host_dir(name), f"lvs-bench-toggles-{os.getpid()}-{time.time():.3f}")
        self.offset, _ = clock_offset(lab, name)
        _start(lab, name, "lvs-bench-toggler.py", TOGGLER, port, cycles, seed, self.path, *up, *down)

    def lines(self):
        try:
            with open(self.path, encoding="utf-8") as fh:
                return [json.loads(line) for line in fh if line.endswith("\n")]
        except FileNotFoundError:
            return []

    def done(self):
        return any("done" in line for line in self.lines())

    def wait(self, timeout):
        deadline = time.monotonic() + timeout
        while not self.done():
            assert time.monotonic() < deadline, f"the crash loop in {self.name} did not end within {timeout} s"
            time.sleep(1)

    def dead(self):
        """``[(dead from, dead until), ...]`` in host time: from the moment the block
        was asked for (the earliest it can hold) to the moment it was lifted."""
        return [(line["dead"][0] - self.offset, line["dead"][3] - self.offset)
                for line in self.lines() if "dead" in line]
