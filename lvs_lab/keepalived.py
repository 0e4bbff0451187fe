"""keepalived in a lab host, for the benchmarks' baselines (Debian's keepalived, which
the bootstrap installs): a configuration written into the host's /run, one daemon
started with pid files of its own, stopped again (it removes what it configured)."""

import io

CONF = "/run/lvs-bench-keepalived.conf"
PIDS = ("-p", "/run/lvs-bench-keepalived.pid", "-r", "/run/lvs-bench-vrrp.pid", "-c", "/run/lvs-bench-checkers.pid")


def start(lab, name, conf, *flags):
    """Start keepalived on lab host ``name`` with the configuration text ``conf``
    (``flags``: ``-C`` for the checkers alone, ``-P`` for VRRP alone)."""
    sink = io.BytesIO()
    code = lab.exec(name, ["sh", "-c", f"cat > {CONF}"], stdin=conf.encode(), out=sink, err=sink)
    assert code == 0, sink.getvalue()
    code, _, err = lab.capture(name, "keepalived", *flags, "-f", CONF, *PIDS)
    assert code == 0, err


def stop(lab, name, then=""):
    """Stop it (and wait a second for it to take down what it set up); ``then``: a shell
    command run after."""
    lab.capture(name, "sh", "-c", f"kill $(cat {PIDS[1]}) 2>/dev/null; sleep 1; {then} true")
