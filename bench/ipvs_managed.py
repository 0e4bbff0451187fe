"""Benchmark: ipvs.managed against one ipvsadm process per entry (the old Salt way).

Runs inside a lab kernel that has ip_vs (it changes that kernel's IPVS table):

.. code-block:: bash

    lvs-lab up
    lvs-lab exec director -- $PWD/.venv/bin/python $PWD/bench/ipvs_managed.py

Prints, for a table of SERVICES virtual services x DESTS tunnel destinations: the
first apply, a no-change re-apply and a one-destination change with ipvs.managed
(through Salt's loader, as a minion runs it), then the same table built by one
ipvsadm process per entry, in the same run, and the ratio.
"""

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def loaders(cachedir):
    os.environ.setdefault("SETUPTOOLS_USE_DISTUTILS", "stdlib")
    import salt.config  # noqa: PLC0415
    import salt.loader  # noqa: PLC0415

    opts = salt.config.minion_config(None)
    opts.update(
        id="bench", file_client="local", cachedir=cachedir, test=False,
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
                                "destinations": {f"10.10.24.{21 + j}:80": {"weight": 1} for j in range(dests)}}
    return out


def ipvsadm_per_entry(services):
    """One ipvsadm process per entry, run by a small shell (forking this Python process
    that many times would measure fork cost, and can exhaust a small lab kernel)."""
    lines = []
    for spec, svc in services.items():
        vip = spec.split(":", 1)[1]
        lines.append(f"ipvsadm -A -t {vip} -s {svc['scheduler']}")
        lines += [f"ipvsadm -a -t {vip} -r {dest} -i -w {settings['weight']}"
                  for dest, settings in svc["destinations"].items()]
    script = "set -e\n" + "\n".join(lines) + "\n"
    began = time.perf_counter()
    subprocess.run(["sh"], input=script.encode(), check=True)
    return time.perf_counter() - began


def clear():
    subprocess.run(["ipvsadm", "-C"], check=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--dests", type=int, default=10)
    args = parser.parse_args()
    cachedir = "/tmp/lvs-bench-cache"
    shutil.rmtree(cachedir, ignore_errors=True)
    mods, states = loaders(cachedir)
    want = table(args.services, args.dests)
    entries = args.services * (1 + args.dests)
    clear()
    figures = {}

    def timed(label, services):
        began = time.perf_counter()
        ret = states["ipvs.managed"](name="bench", services=services)
        figures[label] = time.perf_counter() - began
        assert ret["result"] is True, ret["comment"]
        return ret

    first = timed("ipvs.managed first apply", want)
    assert len(first["changes"]) == entries
    again = timed("ipvs.managed no-change re-apply", want)
    assert again["changes"] == {}
    changed = {**want}
    spec = next(iter(changed))
    destinations = {**changed[spec]["destinations"], "10.10.24.21:80": {"weight": 7}}
    changed[spec] = {**changed[spec], "destinations": destinations}
    one = timed("ipvs.managed one-destination change", changed)
    assert len(one["changes"]) == 1
    assert len(mods["ipvs.list"]()) == args.services
    clear()
    figures["ipvsadm, one process per entry"] = ipvsadm_per_entry(want)
    clear()

    print(f"table: {args.services} services x {args.dests} tunnel destinations = {entries} entries "
          f"(kernel {os.uname().release})")
    for label, seconds in figures.items():
        print(f"  {label:<40} {seconds:8.2f} s")
    ratio = figures["ipvsadm, one process per entry"] / figures["ipvs.managed first apply"]
    print(f"  first apply: ipvs.managed is {ratio:.1f}x faster than one ipvsadm per entry")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak memory of this process (Salt's loader included): {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
