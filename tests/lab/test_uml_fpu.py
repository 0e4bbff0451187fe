"""Guest FPU state on the lab's kernel: processes inside a UML guest keep distinct random
values in every vector register across thousands of context switches.

Run twice: as the lab runs its kernels (the shim preloaded), and with the shim told to
treat UML's requests as 576 bytes long, which is what a CPU whose XSAVE area is larger
than UML's buffer (AMX) makes it do; so this machine tests that case too.
"""

import contextlib
import os
import re
import signal
import subprocess

import pytest

from lvs_lab import lab as lab_mod
from lvs_lab import uml
from tests.lab.conftest import require_lab

CHECK_SOURCE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "xstate_check.c")


@pytest.fixture(scope="module", name="guest_tools")
def fixture_guest_tools(tmp_path_factory):
    require_lab()
    out = tmp_path_factory.mktemp("fpu")
    shim = uml.build_shim(str(out))
    check = uml.compile_c(CHECK_SOURCE, str(out / "xstate_check"))
    return out, shim, check


def _boot_and_check(out, shim, check, name, **env):
    """Boot a UML guest whose init runs the stress check; return (console, stats)."""
    init = out / f"init-{name}"
    init.write_text(f"#!/bin/sh\nmount -t proc proc /proc\n{check} stress 6 3\necho \"xstate-exit=$?\"\n"
                    "echo o > /proc/sysrq-trigger\n")
    init.chmod(0o755)
    stats = out / f"stats-{name}"
    environ = {**os.environ, "LD_PRELOAD": shim, "LVS_LAB_XSTATE_STATS": str(stats), **env}
    argv = [lab_mod.UML, "mem=128M", "rootfstype=hostfs", "rootflags=/", "ro", f"init={init}",
            "con0=null,fd:1", "con=null", f"umid=lvslab-fpu-{name}", f"uml_dir={out}"]
    # linux.uml makes itself a session leader: whatever of the kernel is left once its
    # main process is done (or timed out) goes with its session, and the main is reaped.
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=environ, start_new_session=True)
    try:
        console, _ = proc.communicate(timeout=180)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    counts = dict(line.split() for line in stats.read_text().splitlines()) if stats.exists() else {}
    return console, counts


@pytest.mark.parametrize("clamp", [None, "576"], ids=["as-the-lab-runs", "xsave-larger-than-uml-buffer"])
def test_vector_registers_survive_context_switches_in_a_uml_guest(guest_tools, clamp):
    out, shim, check = guest_tools
    env = {"LVS_LAB_XSTATE_CLAMP": clamp} if clamp else {}
    console, counts = _boot_and_check(out, shim, check, clamp or "plain", **env)
    assert "xstate-exit=0" in console, console[-3000:]
    assert "3 processes, 0 with corrupted registers: OK" in console, console[-3000:]
    rounds = [int(n) for n in re.findall(r"process \d+: (\d+) rounds", console)]
    assert len(rounds) == 3 and min(rounds) > 10, console[-3000:]
    if clamp:
        # Every save and restore of the guest went through the widening path.
        assert int(counts["widened_set"]) >= 1024 and int(counts["widened_get"]) >= 1024, counts
