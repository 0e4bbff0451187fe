"""The lab's ptrace shim for linux.uml (lab/lvs_lab/uml_xstate.c), on this host's kernel.

A ptraced child holds random values in every x87/SSE/AVX/AVX-512 register; the test
program (tests/xstate_check.c) saves and restores them through caller buffers shorter
than the CPU's XSAVE area, as Debian 12's UML does on AMX hosts, and the child compares
its registers bit for bit. Caller lengths below the host's size exercise the widening
path on every CPU, so a CI machine without AVX-512 or AMX still tests it.
"""

import os
import re
import shutil
import subprocess

import pytest

from lvs_lab import uml

CHECK_SOURCE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "xstate_check.c")
UML_BUFFER = 2696  # HOST_FP_SIZE of Debian 12's UML (6.1): what it passes to ptrace


def _require(condition, why):
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(f"the shim cannot be tested on this CI machine: {why}")
        pytest.skip(why)


@pytest.fixture(scope="module", name="built")
def fixture_built(tmp_path_factory):
    _require(shutil.which("cc") or shutil.which("gcc"), "no C compiler (scripts/bootstrap installs gcc)")
    with open("/proc/cpuinfo", encoding="utf-8") as fh:
        _require("xsave" in fh.read(), "this CPU has no XSAVE")
    out = tmp_path_factory.mktemp("shim")
    return uml.build_shim(str(out)), uml.compile_c(CHECK_SOURCE, str(out / "xstate_check"))


def _run(built, *args, preload=True, **env):
    shim, check = built
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LVS_LAB_XSTATE")}
    environ.update(env)
    if preload:
        environ["LD_PRELOAD"] = shim
    return subprocess.run([check, *map(str, args)], capture_output=True, text=True, env=environ, timeout=120,
                          check=False)


def _kernel_size(built):
    proc = _run(built, "ptrace", 4096)  # longer than needed: the kernel clamps it, passes through
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return int(re.search(r"kernel=(\d+)", proc.stdout).group(1))


def test_registers_survive_save_and_restore_through_short_buffers(built):
    full = _kernel_size(built)
    lengths = sorted(n for n in {512, 576, 832, UML_BUFFER, full} if n <= full)
    assert any(n < full for n in lengths)
    for length in lengths:
        proc = _run(built, "ptrace", length)
        print(proc.stdout)
        assert proc.returncode == 0, f"length {length}:\n{proc.stdout}{proc.stderr}"
        assert proc.stdout.count(": OK") == 3, proc.stdout  # roundtrip, modify, two-tasks


def test_without_the_shim_the_kernel_refuses_short_restores(built):
    """The control: what UML meets on a CPU whose XSAVE area exceeds its buffer."""
    full = _kernel_size(built)
    proc = _run(built, "ptrace", full - 64, preload=False)
    assert proc.returncode != 0
    assert "SETREGSET of" in proc.stderr and "Bad address" in proc.stderr, proc.stderr


def test_clamp_simulates_a_larger_xsave_area_and_stats_count_widened_requests(built, tmp_path):
    """The knobs the lab's FPU test uses: full-length requests treated as 576 bytes."""
    full = _kernel_size(built)
    stats = tmp_path / "stats"
    proc = _run(built, "ptrace", full, LVS_LAB_XSTATE_CLAMP="576", LVS_LAB_XSTATE_STATS=str(stats))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    counts = dict(line.split() for line in stats.read_text().splitlines())
    assert int(counts["widened_set"]) >= 1 and int(counts["widened_get"]) >= 1
    assert int(counts["full_size"]) == full


def test_vector_registers_survive_context_switches_on_this_kernel(built):
    """The stress mode itself, natively (the lab runs it inside UML guests)."""
    proc = _run(built, "stress", 1, 3)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 processes, 0 with corrupted registers: OK" in proc.stdout
