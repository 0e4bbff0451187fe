"""Benchmark: ipvs.managed against ipvsadm-restore and ipvsadm-save, in the same run.

Runs inside a lab kernel that has ip_vs (it changes that kernel's IPVS table):

.. code-block:: bash

    LVS_LAB_MEM=1024M lvs-lab up          # 11,000 entries need more than the default 384M
    lvs-lab exec director -- $PWD/.venv/bin/python $PWD/bench/ipvs_managed.py --runs 3
    lvs-lab exec director -- $PWD/.venv/bin/python $PWD/bench/ipvs_managed.py --profile

For a table of SERVICES virtual services x DESTS tunnel destinations, paired runs (the
same table, one after the other, RUNS times) of

- ``ipvsadm-restore`` of the table (the batch tool an operator would use) against the
  first apply of ``ipvs.managed`` (through Salt's loader, as a minion runs it);
- ``ipvsadm-save -n`` (reading the table) against a no-change re-apply;
- a one-destination change, and 200 weights changed in one ``ipvs.set_weights`` call
  (the health runner's path);

each result compared entry by entry with the wanted table, ``ipvsadm-save -n`` as the
oracle. Each run starts from a reloaded ip_vs (see :func:`clear`). Prints the medians
and their ratios, the process's peak memory, and with
``--profile`` where the first apply's time goes (timers around each stage), with
``--hotspots`` cProfile's costliest functions.
"""

import argparse
import cProfile
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHEDIR = "/tmp/lvs-bench-cache"


def loaders():
    os.environ.setdefault("SETUPTOOLS_USE_DISTUTILS", "stdlib")
    import salt.config  # noqa: PLC0415
    import salt.loader  # noqa: PLC0415

    opts = salt.config.minion_config(None)
    opts.update(
        id="bench", file_client="local", cachedir=CACHEDIR, test=False,
        module_dirs=[os.path.join(REPO, "_modules")], states_dirs=[os.path.join(REPO, "_states")],
        utils_dirs=[os.path.join(REPO, "_utils")],
    )
    utils = salt.loader.utils(opts)
    mods = salt.loader.minion_mods(opts, utils=utils)
    states = salt.loader.states(opts, mods, utils, {})
    return mods, states


def table(services, dests):
    out = {}
    for i in range(services):
        vip = f"10.{200 + i // 62500}.{i // 250 % 250}.{i % 250 + 1}"
        out[f"tcp:{vip}:80"] = {"scheduler": "wrr",
                                "destinations": {f"10.10.{24 + j // 200}.{21 + j % 200}:80": {"weight": 1}
                                                 for j in range(dests)}}
    return out


def save_text(services):
    """The wanted table as ``ipvsadm-save -n`` prints it (the oracle's form)."""
    lines = []
    for spec, svc in services.items():
        vip = spec.split(":", 1)[1]
        lines.append(f"-A -t {vip} -s {svc['scheduler']}")
        lines += [f"-a -t {vip} -r {dest} -i -w {settings['weight']} --tun-type ipip"
                  for dest, settings in svc["destinations"].items()]
    return lines


def ipvsadm(*argv, stdin=None):
    began = time.perf_counter()
    proc = subprocess.run(argv, input=stdin, capture_output=True, check=True)
    return time.perf_counter() - began, proc.stdout.decode()


def oracle():
    return sorted(line for line in ipvsadm("ipvsadm-save", "-n")[1].splitlines() if line.strip())


def clear():
    """A pristine IPVS for the next run: the table flushed and ip_vs reloaded. Deleted
    destinations stay in the kernel's trash for about two minutes, and every destination
    added is first looked up in that trash, one by one: right after a flush of 110,000
    entries an add costs ~100,000 comparisons, whichever tool adds it."""
    ipvsadm("ipvsadm", "-C")
    with open("/proc/modules", encoding="ascii") as fh:
        loaded = [line.split()[0] for line in fh]
    schedulers = [name for name in loaded if name.startswith("ip_vs_")]
    subprocess.run(["rmmod", *schedulers, "ip_vs"], check=True)
    modprobe = "/run/modprobe" if os.path.exists("/run/modprobe") else "modprobe"  # the lab's module tree
    for module in ("ip_vs", *schedulers):
        subprocess.run([modprobe, module], check=True)
    shutil.rmtree(CACHEDIR, ignore_errors=True)


def median(values):
    return statistics.median(values)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--dests", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="time the stages of one first apply")
    parser.add_argument("--hotspots", action="store_true",
                        help="also profile one first apply with cProfile (slow on UML: minutes at 11,000 entries)")
    args = parser.parse_args()
    clear()
    mods, states = loaders()
    want = table(args.services, args.dests)
    expected = sorted(save_text(want))
    restore_input = ("\n".join(line.removesuffix(" --tun-type ipip") for line in save_text(want)) + "\n").encode()
    entries = args.services * (1 + args.dests)
    runs = {name: [] for name in ("restore", "first", "save", "again", "one", "weights")}

    def managed(services):
        began = time.perf_counter()
        ret = states["ipvs.managed"](name="bench", services=services)
        elapsed = time.perf_counter() - began
        assert ret["result"] is True, ret["comment"]
        return elapsed, ret

    for _ in range(args.runs):
        clear()
        runs["restore"].append(ipvsadm("ipvsadm-restore", stdin=restore_input)[0])
        assert oracle() == expected
        runs["save"].append(ipvsadm("ipvsadm-save", "-n")[0])
        clear()
        elapsed, first = managed(want)
        runs["first"].append(elapsed)
        assert len(first["changes"]) == entries and oracle() == expected
        elapsed, again = managed(want)
        runs["again"].append(elapsed)
        assert again["changes"] == {}
        spec = next(iter(want))
        changed = {**want, spec: {**want[spec], "destinations": {**want[spec]["destinations"],
                                                                  "10.10.24.21:80": {"weight": 7}}}}
        elapsed, one = managed(changed)
        runs["one"].append(elapsed)
        assert len(one["changes"]) == 1 and oracle() == sorted(
            line.replace("-r 10.10.24.21:80 -i -w 1 ", "-r 10.10.24.21:80 -i -w 7 ") if line.startswith(
                f"-a -t {spec.split(':', 1)[1]} ") else line for line in expected)
        managed(want)
        weights = {}
        for spec in list(want)[:20]:
            weights[spec] = {dest: 0 for dest in list(want[spec]["destinations"])[:10]}
        began = time.perf_counter()
        result = mods["ipvs.set_weights"](weights)
        runs["weights"].append(time.perf_counter() - began)
        changed_count = sum(len(v) for k, v in result.items() if k != "missing")
        zeroed = {(spec.split(":", 1)[1], dest) for spec, dests in weights.items() for dest in dests}
        assert changed_count == sum(map(len, weights.values())) and "missing" not in result
        assert oracle() == sorted(
            line.replace(" -w 1 ", " -w 0 ") if line.startswith("-a -t ") and (line.split()[2], line.split()[4])
            in zeroed else line for line in expected)

    print(f"table: {args.services} services x {args.dests} tunnel destinations = {entries} entries "
          f"(kernel {os.uname().release}, {args.runs} paired runs, medians; every result checked against "
          "ipvsadm-save -n)")
    fig = {name: median(values) for name, values in runs.items()}
    rows = [("ipvsadm-restore of the table", "restore"), ("ipvs.managed first apply", "first"),
            ("ipvsadm-save -n of the table", "save"), ("ipvs.managed no-change re-apply", "again"),
            ("ipvs.managed one-destination change", "one"), ("ipvs.set_weights, 200 weights", "weights")]
    for label, name in rows:
        print(f"  {label:<40} {fig[name]:8.3f} s   ({', '.join(f'{v:.3f}' for v in runs[name])})")
    print(f"  first apply: {fig['restore'] / fig['first']:.2f}x faster than ipvsadm-restore")
    print(f"  no-change re-apply: {fig['again'] / fig['save']:.2f}x the time of ipvsadm-save -n")
    extra = median(one - again for one, again in zip(runs["one"], runs["again"], strict=True))
    print(f"  one-destination change: {extra:+.3f} s over the no-change re-apply (median of the paired runs)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak memory of this process (Salt's loader included): {peak:.0f} MiB")
    if args.profile:
        clear()
        stages = timed_stages(mods, states)
        began = time.perf_counter()
        managed(want)
        total = time.perf_counter() - began
        print(f"where the time of one first apply goes ({total:.3f} s, timers around each stage):")
        for stage, seconds in stages.items():
            print(f"  {stage:<58} {seconds:7.3f} s  {100 * seconds / total:5.1f} %")
        rest = total - sum(seconds for stage, seconds in stages.items() if not stage.startswith(" "))
        print(f"  {'the rest (Salt state wrappers, ownership record, Python)':<58} {rest:7.3f} s  "
              f"{100 * rest / total:5.1f} %")
    if args.hotspots:
        clear()
        profiler = cProfile.Profile()
        profiler.enable()
        managed(want)
        profiler.disable()
        profile_report(profiler)
    clear()
    return 0


def timed_stages(mods, states):
    """Wrap the stages of an apply with timers: ``{stage: seconds}`` filled as they run."""
    assert mods["ipvs.list"] and states["ipvs.managed"]  # loaded: their lvstun modules are the ones to wrap
    ipvsclient, ipvs = sys.modules["lvstun.ipvsclient"], sys.modules["lvstun.ipvs"]
    stages = {}  # filled in the order the stages are wrapped below

    def timer(owner, name, stage):
        original = getattr(owner, name)

        def wrapped(*args, **kwargs):
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                stages[stage] = stages.get(stage, 0) + time.perf_counter() - began

        setattr(owner, name, wrapped)

    wrapped = (
        (ipvsclient.Client, "read", "read the kernel's table: before, and the services touched after"),
        (ipvs, "desired_service", "validate and normalise the wanted table"),
        (ipvs, "plan", "plan and change report (lvstun.ipvs.plan), before and after"),
        (ipvsclient.Client, "apply", "encode the requests and send them"),
        (ipvsclient.Client, "_send_batch", "  of which: send() calls (the kernel applying) and errors"),
    )
    for owner, name, stage in wrapped:
        stages[stage] = 0
        timer(owner, name, stage)
    return stages


def profile_report(profiler):
    """The costliest functions of one first apply by own time (cProfile). On UML every
    clock read is a system call, so cProfile inflates functions called often: the
    stage timers above give the split, this list the hot spots."""
    stats = pstats.Stats(profiler)
    print("hot spots (cProfile, own time; inflated for functions with many calls):")
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:10]
    for (path, line, func), (calls, _, own, cum, _) in rows:
        print(f"  {own:7.3f} s own {cum:7.3f} s cum {calls:8d} calls  {os.path.basename(path)}:{line} {func}")


if __name__ == "__main__":
    sys.exit(main())
