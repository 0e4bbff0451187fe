"""The pack's system-call machinery, switched off one piece at a time, for before/after
figures (``--without`` of bench/ipvs_managed.py and bench/metrics_scrape.py).

Each piece was added for the lab's UML kernel, where a system call costs tens of
microseconds; on Debian's stock kernel it must still earn its place (``make bench``):

- ``uring``: destination dumps as io_uring chains (``lvstun.dumpchain``), else one dump
  at a time;
- ``layouts``: replies read by learnt layouts (``lvstun.genl._DestLayout``), else each
  walked attribute by attribute.

(The exporter's allocator settings were another piece: 0.95x on the stock kernel, so
they went, 2026-12-05; and several netlink datagrams per ``recvmmsg``: 0.99x the
re-apply and the scrape, the first apply 10 % slower with it, so it went too.)

Run as ``python bench/machinery.py --without uring,layouts -m lvstun.exporter ARGS``
to start a module with those pieces off.
"""

import runpy
import sys

PIECES = ("uring", "layouts")


def disable(names):
    """Switch off the named pieces in this process (the ``lvstun`` modules as loaded:
    call after Salt's loader has loaded the pack's modules)."""
    unknown = set(names) - set(PIECES)
    if unknown:
        raise SystemExit(f"unknown machinery: {sorted(unknown)} (known: {', '.join(PIECES)})")
    ipvsclient, genl = sys.modules.get("lvstun.ipvsclient"), sys.modules.get("lvstun.genl")
    if ipvsclient is None:
        import lvstun.genl as genl  # noqa: PLC0415
        import lvstun.ipvsclient as ipvsclient  # noqa: PLC0415
    if "uring" in names:
        ipvsclient.Client._dump_chains = lambda self: False
    if "layouts" in names:
        genl.MAX_LAYOUTS = 0
        genl._LAYOUTS.clear()


def parse(text):
    return [name for name in (text or "").split(",") if name]


def main():
    argv = sys.argv[1:]
    names = []
    if argv[:1] == ["--without"]:
        names, argv = parse(argv[1]), argv[2:]
    if argv[:1] != ["-m"] or len(argv) < 2:
        raise SystemExit(__doc__)
    disable(names)
    sys.argv = [argv[1], *argv[2:]]
    runpy.run_module(argv[1], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
