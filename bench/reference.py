"""Benchmark: the IPVS table and the scrape on Debian's stock kernel, beside the lab's
user-mode Linux kernel, in one run (``make bench``).

.. code-block:: bash

    make bench                                   # both kernels, 11,000 and 110,000 entries
    .venv/bin/python bench/reference.py --no-lab # the stock kernel only

Runs ``bench/ipvs_managed.py`` (against ``ipvsadm-restore`` and ``ipvsadm-save -n``)
and ``bench/metrics_scrape.py`` (against node_exporter's IPVS collector)

- on Debian's stock 6.1 kernel booted under QEMU (``lvs_lab.refkernel``: KVM where a
  normal KVM answers, else TCG, named in the output), with the host's root and this
  checkout's virtualenv mounted read-only;
- on the lab's UML director (a lab brought up with 1024 MiB for it when none is up,
  and taken down after);

and prints the figures side by side, each against its baseline from the same kernel
and run, with the user and system CPU of each. Each benchmark's own output follows.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from lvs_lab import refkernel  # noqa: E402
from lvs_lab.lab import Lab  # noqa: E402

PYTHON = sys.executable
# This checkout's shared code first (a virtualenv may have another checkout installed).
ENV = ["env", f"PYTHONPATH={os.path.join(REPO, '_utils')}:{REPO}"]


def _managed_args(entries_services, dests, runs, out, profile, without=""):
    return [*ENV, PYTHON, os.path.join(REPO, "bench", "ipvs_managed.py"), "--services", str(entries_services),
            "--dests", str(dests), "--runs", str(runs), "--json", out, *(["--profile"] if profile else []),
            *(["--without", without] if without else [])]


def _scrape_args(runs, out, without=""):
    return [*ENV, PYTHON, os.path.join(REPO, "bench", "metrics_scrape.py"), "--runs", str(runs), "--json", out,
            *(["--without", without] if without else [])]


MACHINERY = ("uring", "layouts")


def on_reference(tables, runs, scrapes, folder, machinery=False):
    """Every benchmark on the stock kernel, in one boot: ``({name: figures}, output)``;
    with ``machinery``, the 11,000-entry table and the scrape again without each piece of
    the system-call machinery (bench/machinery.py)."""
    script = []
    for services, dests in tables:
        script.append(" ".join(_managed_args(services, dests, runs if services * dests <= 20000 else 1,
                                             f"/run/out/managed-{services}x{dests}.json", profile=True)))
    script.append(" ".join(_scrape_args(scrapes, "/run/out/scrape.json")))
    if machinery:
        for piece in MACHINERY:
            script.append(" ".join(_managed_args(1000, 10, 1, f"/run/out/without-{piece}-managed.json", False,
                                                 piece)))
        for piece in MACHINERY:
            script.append(" ".join(_scrape_args(scrapes, f"/run/out/without-{piece}-scrape.json", piece)))
    command = ["/bin/sh", "-c", " && ".join(script)]
    code, output = refkernel.run(command, timeout=6 * 3600, out=folder)
    if code != 0:
        sys.exit(f"the benchmarks failed on the stock kernel ({code}):\n{output[-4000:]}")
    return _figures(folder), output


def on_lab(tables, runs, scrapes):
    """Every benchmark on the lab's UML director: ``({name: figures}, output)``."""
    with open("/proc/sys/vm/max_map_count", encoding="ascii") as fh:
        if int(fh.read()) < 262144:  # UML maps each guest page on its own: 110,000 entries need more
            subprocess.run(["sysctl", "-qw", "vm.max_map_count=262144"], check=True)
    lab, brought = Lab(), False
    if not lab.hosts:
        env = dict(os.environ, LVS_LAB_MEM="1024M")
        subprocess.run([os.path.join(os.path.dirname(PYTHON), "lvs-lab"), "up"], env=env, check=True)
        lab, brought = Lab(), True
    # The director's folder on the host is mounted read-write at the same path in it.
    folder = os.path.join(lab.host_dir("director"), "bench-figures")
    os.makedirs(folder, exist_ok=True)
    outputs = []
    try:
        lab.salt_json("director", "beacons.disable")  # its own checks would re-weight the table measured
        for services, dests in tables:
            argv = _managed_args(services, dests, runs if services * dests <= 20000 else 1,
                                 os.path.join(folder, f"managed-{services}x{dests}.json"), profile=True)
            code, out, err = lab.capture("director", *argv)
            outputs.append(out + err)
            if code != 0:
                sys.exit(f"ipvs_managed.py failed on the UML director:\n{out}\n{err}")
        code, out, err = lab.capture("director", *_scrape_args(scrapes, os.path.join(folder, "scrape.json")))
        outputs.append(out + err)
        if code != 0:
            sys.exit(f"metrics_scrape.py failed on the UML director:\n{out}\n{err}")
        figures = _figures(folder)
    finally:
        if brought:
            subprocess.run([os.path.join(os.path.dirname(PYTHON), "lvs-lab"), "down"], check=False)
        else:
            lab.salt_json("director", "beacons.enable")
    return figures, "\n".join(outputs)


def _figures(folder):
    found = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".json"):
            with open(os.path.join(folder, name), encoding="utf-8") as fh:
                found[name.removesuffix(".json")] = json.load(fh)
    return found


def _row(label, value, baseline, baseline_label, cpu=None):
    ratio = f"{baseline / value:.2f}x faster than {baseline_label}" if value <= baseline else \
        f"{value / baseline:.2f}x the time of {baseline_label}"
    spent = f"; CPU user {cpu[0]:.2f} s, system {cpu[1]:.2f} s" if cpu else ""
    return f"{label}: {value:.3f} s against {baseline:.3f} s ({ratio}){spent}"


def describe_machinery(figures):
    """Before/after of each piece of the machinery on this kernel (same boot)."""
    lines = ["  the system-call machinery, each piece switched off (same boot; ratio > 1: it helps):"]
    managed, scrape = figures.get("managed-1000x10"), figures.get("scrape")
    for piece in MACHINERY:
        off_managed, off_scrape = figures.get(f"without-{piece}-managed"), figures.get(f"without-{piece}-scrape")
        parts = []
        if managed and off_managed:
            for key, label in (("first", "first apply"), ("again", "re-apply")):
                off, on = off_managed["medians"][key], managed["medians"][key]
                parts.append(f"{label} {off:.2f} s without against {on:.2f} s ({off / on:.2f}x)")
        if scrape and off_scrape:
            parts.append(f"scrape {off_scrape['pack']['median']:.2f} s against {scrape['pack']['median']:.2f} s "
                         f"({off_scrape['pack']['median'] / scrape['pack']['median']:.2f}x), memory peak "
                         f"{off_scrape['pack']['peak_mib']:.0f} against {scrape['pack']['peak_mib']:.0f} MiB")
        if parts:
            lines.append(f"    {piece}: " + "; ".join(parts))
    return lines


def describe(kernel_name, figures):
    lines = [f"== {kernel_name}"]
    for name, fig in sorted(figures.items()):
        if not name.startswith("managed-"):
            continue
        med, cpu = fig["medians"], fig["cpu"]
        lines.append(f"  {fig['entries']} entries (kernel {fig['kernel']}, {len(fig['runs']['first'])} paired run(s)):")
        lines.append("    " + _row("first apply", med["first"], med["restore"], "ipvsadm-restore", cpu["first"]))
        lines.append(f"      ipvsadm-restore CPU user {cpu['restore'][0]:.2f} s, system {cpu['restore'][1]:.2f} s")
        lines.append("    " + _row("no-change re-apply", med["again"], med["save"], "ipvsadm-save -n", cpu["again"]))
        lines.append("    " + _row("one-destination change", med["one"], med["again"], "the no-change re-apply",
                                   cpu["one"]))
        lines.append(f"    200 weights (ipvs.set_weights): {med['weights']:.3f} s; "
                     f"peak memory {fig['peak_mib']:.0f} MiB")
        report = fig["report"]
        lines.append(f"    the first apply's return: {report['bytes'] / 1e6:.2f} MB, {report['changes']} changes, "
                     f"rendered by the highstate outputter in {report['render']:.2f} s")
        stages = fig.get("stages", {})
        for run, label in (("first", "the first apply"), ("again", "the no-change re-apply")):
            if stages.get(run):
                lines.append(f"      where {label}'s time goes (stages; wall, user, system):")
            for stage, (wall, user, system) in (stages.get(run) or {}).items():
                lines.append(f"        {stage.strip():<60} {wall:7.3f} s  user {user:.3f}  system {system:.3f}")
    if any(name.startswith("without-") for name in figures):
        lines += describe_machinery(figures)
    scrape = figures.get("scrape")
    if scrape:
        lines.append(f"  one scrape of {scrape['destinations']} destinations: "
                     + _row("lvstun.exporter", scrape["pack"]["median"], scrape["node"]["median"],
                            "node_exporter --collector.ipvs")
                     + f"; memory peak {scrape['pack']['peak_mib']:.1f} MiB against "
                       f"{scrape['node']['peak_mib']:.1f} MiB")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="paired runs at 11,000 entries")
    parser.add_argument("--scrapes", type=int, default=10)
    parser.add_argument("--no-lab", action="store_true", help="the stock kernel only")
    parser.add_argument("--no-large", action="store_true", help="skip 110,000 entries")
    parser.add_argument("--machinery", action="store_true",
                        help="also each piece of the system-call machinery switched off, on the stock kernel")
    args = parser.parse_args()
    tables = [(1000, 10)] + ([] if args.no_large else [(10000, 10)])
    with tempfile.TemporaryDirectory(prefix="lvs-bench-") as folder:
        ref_dir = os.path.join(folder, "stock")
        engine = refkernel.accelerator()
        stock, stock_out = on_reference(tables, args.runs, args.scrapes, ref_dir, args.machinery)
        print(stock_out)
        uml = None
        if not args.no_lab:
            uml, uml_out = on_lab(tables, args.runs, args.scrapes)
            print(uml_out)
        print(describe(f"Debian's stock kernel under QEMU ({engine.upper()}): what users run", stock))
        if uml:
            print(describe("the lab's UML director (user code native, system calls emulated: not what users see)",
                           uml))


if __name__ == "__main__":
    main()
