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
import json
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


CPU = {}  # op name -> [(user, system) seconds of each run], this process and its children


class cpu:
    """Context: the CPU time (user, system) spent in the block by this process and its
    children (``ipvsadm``), added to ``CPU[name]``."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.before = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]

    def __exit__(self, *exc):
        after = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
        user = sum(a.ru_utime - b.ru_utime for a, b in zip(after, self.before, strict=True))
        system = sum(a.ru_stime - b.ru_stime for a, b in zip(after, self.before, strict=True))
        CPU.setdefault(self.name, []).append((user, system))


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
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--without", help="machinery switched off (bench/machinery.py): uring,layouts")
    parser.add_argument("--hotspots", action="store_true",
                        help="also profile one first apply with cProfile (slow on UML: minutes at 11,000 entries)")
    args = parser.parse_args()
    clear()
    mods, states = loaders()
    if args.without:
        assert mods["ipvs.list"] and states["ipvs.managed"]  # loaded: their lvstun modules are the ones to switch
        sys.path.insert(0, os.path.join(REPO, "bench"))
        import machinery  # noqa: PLC0415

        machinery.disable(machinery.parse(args.without))
    want = table(args.services, args.dests)
    expected = sorted(save_text(want))
    restore_input = ("\n".join(line.removesuffix(" --tun-type ipip") for line in save_text(want)) + "\n").encode()
    entries = args.services * (1 + args.dests)
    runs = {name: [] for name in ("restore", "first", "save", "again", "one", "weights")}

    def managed(services, name=None):
        began = time.perf_counter()
        with cpu(name or "other"):
            ret = states["ipvs.managed"](name="bench", services=services)
        elapsed = time.perf_counter() - began
        assert ret["result"] is True, ret["comment"]
        return elapsed, ret

    for _ in range(args.runs):
        clear()
        with cpu("restore"):
            runs["restore"].append(ipvsadm("ipvsadm-restore", stdin=restore_input)[0])
        assert oracle() == expected
        with cpu("save"):
            runs["save"].append(ipvsadm("ipvsadm-save", "-n")[0])
        clear()
        elapsed, first = managed(want, "first")
        runs["first"].append(elapsed)
        assert reported(first) == entries and oracle() == expected
        report = report_size(first)
        elapsed, again = managed(want, "again")
        runs["again"].append(elapsed)
        assert again["changes"] == {}
        spec = next(iter(want))
        changed = {**want, spec: {**want[spec], "destinations": {**want[spec]["destinations"],
                                                                  "10.10.24.21:80": {"weight": 7}}}}
        elapsed, one = managed(changed, "one")
        runs["one"].append(elapsed)
        assert reported(one) == 1 and oracle() == sorted(
            line.replace("-r 10.10.24.21:80 -i -w 1 ", "-r 10.10.24.21:80 -i -w 7 ") if line.startswith(
                f"-a -t {spec.split(':', 1)[1]} ") else line for line in expected)
        managed(want)
        weights = {}
        for spec in list(want)[:20]:
            weights[spec] = {dest: 0 for dest in list(want[spec]["destinations"])[:10]}
        began = time.perf_counter()
        with cpu("weights"):
            result = mods["ipvs.set_weights"](weights)
        runs["weights"].append(time.perf_counter() - began)
        changed_count = sum(len(v) for k, v in result.items() if k != "missing")
        zeroed = {(spec.split(":", 1)[1], dest) for spec, dests in weights.items() for dest in dests}
        assert changed_count == sum(map(len, weights.values())) and "missing" not in result
        assert oracle() == sorted(
            line.replace(" -w 1 ", " -w 0 ") if line.startswith("-a -t ") and (line.split()[2], line.split()[4])
            in zeroed else line for line in expected)

    print(f"table: {args.services} services x {args.dests} tunnel destinations = {entries} entries "
          + (f"(without {args.without}) " if args.without else "") +
          f"(kernel {os.uname().release}, {args.runs} paired runs, medians; every result checked against "
          "ipvsadm-save -n)")
    fig = {name: median(values) for name, values in runs.items()}
    rows = [("ipvsadm-restore of the table", "restore"), ("ipvs.managed first apply", "first"),
            ("ipvsadm-save -n of the table", "save"), ("ipvs.managed no-change re-apply", "again"),
            ("ipvs.managed one-destination change", "one"), ("ipvs.set_weights, 200 weights", "weights")]
    for label, name in rows:
        user, system = (median(part) for part in zip(*CPU[name], strict=True))
        print(f"  {label:<40} {fig[name]:8.3f} s   ({', '.join(f'{v:.3f}' for v in runs[name])}); CPU user "
              f"{user:.3f} s, system {system:.3f} s")
    print(f"  first apply: {fig['restore'] / fig['first']:.2f}x faster than ipvsadm-restore")
    print(f"  no-change re-apply: {fig['again'] / fig['save']:.2f}x the time of ipvsadm-save -n")
    extra = median(one - again for one, again in zip(runs["one"], runs["again"], strict=True))
    print(f"  one-destination change: {extra:+.3f} s over the no-change re-apply (median of the paired runs)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak memory of this process (Salt's loader included): {peak:.0f} MiB")
    print(f"  the first apply's return (what state.apply sends the master): {report['bytes'] / 1e6:.2f} MB of JSON, "
          f"{report['changes']} changes; Salt's highstate outputter renders it in {report['render']:.2f} s")
    stages = {}
    if args.profile:
        clear()
        stages = timed_stages(mods, states)
        began = time.perf_counter()
        managed(want, "profiled")
        total = time.perf_counter() - began
        user, system = CPU["profiled"][-1]
        print(f"where the time of one first apply goes ({total:.3f} s; CPU user {user:.3f} s, system "
              f"{system:.3f} s; timers around each stage: wall, user, system):")
        for stage, (wall, s_user, s_system) in stages.items():
            print(f"  {stage:<58} {wall:7.3f} s  {100 * wall / total:5.1f} %  user {s_user:.3f}  system "
                  f"{s_system:.3f}")
        rest = total - sum(wall for stage, (wall, _, _) in stages.items() if not stage.startswith(" "))
        print(f"  {'the rest (Salt state wrappers, ownership record, Python)':<58} {rest:7.3f} s  "
              f"{100 * rest / total:5.1f} %")
        stages = {"first": {k: list(v) for k, v in stages.items()}, "again": stages}
        for values in stages["again"].values():
            values[:] = [0.0, 0.0, 0.0]
        began = time.perf_counter()
        managed(want, "profiled")
        total = time.perf_counter() - began
        print(f"where the time of the no-change re-apply after it goes ({total:.3f} s):")
        for stage, (wall, s_user, s_system) in stages["again"].items():
            if wall:
                print(f"  {stage:<58} {wall:7.3f} s  {100 * wall / total:5.1f} %  user {s_user:.3f}  system "
                      f"{s_system:.3f}")
        rest = total - sum(wall for stage, (wall, _, _) in stages["again"].items() if not stage.startswith(" "))
        print(f"  {'the rest (Salt state wrappers, ownership record, Python)':<58} {rest:7.3f} s  "
              f"{100 * rest / total:5.1f} %")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"kernel": os.uname().release, "entries": entries, "without": args.without or "",
                       "runs": runs, "medians": fig,
                       "cpu": {name: [median(part) for part in zip(*values, strict=True)]
                               for name, values in CPU.items()},
                       "peak_mib": peak, "report": report, "stages": stages}, fh)
    if args.hotspots:
        clear()
        profiler = cProfile.Profile()
        profiler.enable()
        managed(want)
        profiler.disable()
        profile_report(profiler)
    clear()
    return 0


def reported(ret):
    """How many entries a state's return reports changed (one by one, or per service)."""
    return sum(1 + sum(change["destinations"].values()) - (change["old"] == change["new"] == {})
               if "destinations" in change else 1 for change in ret["changes"].values())


def report_size(ret):
    """What a state's return costs on its way to the user: its JSON's size, and the
    time Salt's highstate outputter takes to render it on the master's CLI."""
    import salt.config  # noqa: PLC0415
    import salt.output  # noqa: PLC0415

    data = {"bench": {"ipvs_|-bench_|-bench_|-managed": {**ret, "__run_num__": 0, "__sls__": "bench",
                                                            "start_time": "00:00:00", "duration": 0.0}}}
    opts = salt.config.master_config(None)
    opts.update(color=False, state_verbose=True, state_output="full")
    began = time.perf_counter()
    text = salt.output.out_format(data, "highstate", opts)
    return {"bytes": len(json.dumps(ret)), "changes": len(ret["changes"]), "render": time.perf_counter() - began,
            "lines": text.count("\n")}


def timed_stages(mods, states):
    """Wrap the stages of an apply with timers: ``{stage: [wall, user CPU, system CPU]}``
    (seconds) filled as they run."""
    assert mods["ipvs.list"] and states["ipvs.managed"]  # loaded: their lvstun modules are the ones to wrap
    ipvsclient, ipvs = sys.modules["lvstun.ipvsclient"], sys.modules["lvstun.ipvs"]
    stages = {}  # filled in the order the stages are wrapped below

    def timer(owner, name, stage):
        original = getattr(owner, name)

        def wrapped(*args, **kwargs):
            began, used = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
            try:
                return original(*args, **kwargs)
            finally:
                now = resource.getrusage(resource.RUSAGE_SELF)
                for index, spent in enumerate((time.perf_counter() - began, now.ru_utime - used.ru_utime,
                                               now.ru_stime - used.ru_stime)):
                    stages[stage][index] += spent

        setattr(owner, name, wrapped)

    wrapped = (
        (ipvsclient.Client, "read", "read the kernel's table: whole records"),
        (ipvsclient.Client, "read_settings", "read the kernel's table: its settings, before and after"),
        (ipvs, "wanted", "check the wanted table (lvstun.ipvs.wanted)"),
        (ipvs, "unchanged", "compare it with the kernel's settings"),
        (ipvs, "records", "build the records of the services to plan"),
        (ipvs, "plan", "plan and change report (lvstun.ipvs.plan), before and after"),
        (ipvsclient.Client, "apply", "encode the requests and send them"),
        (ipvsclient.Client, "_send_batch", "  of which: send() calls (the kernel applying) and errors"),
    )
    for owner, name, stage in wrapped:
        stages[stage] = [0.0, 0.0, 0.0]
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
