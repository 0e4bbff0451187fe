"""Why a lab kernel did not boot, in one line (lvs_lab.uml.diagnose)."""

import pytest

from lvs_lab import uml

# The console of a lab kernel on an AMX host before the shim (issue 11), shortened.
FPU_CONSOLE = """Checking PROT_EXEC mmap in /dev/shm...OK
Run /work/lvs_lab/guest-init as init process
userspace - ptrace set fp regs failed, errno = 14
Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b
 [<6017f0e2>] ? putname+0x0/0x9b
"""


@pytest.mark.parametrize(
    ("console", "expected"),
    [
        (FPU_CONSOLE, ["ptrace set fp regs failed", "XSAVE area (AVX, AMX)", "/run/lvs-lab/uml_xstate.so",
                       "LD_PRELOAD"]),
        ("lab: modprobe ip_vs failed\nlab: director up\n", ["kernel module ip_vs is missing for UML release 6.1.176",
                                                           "/usr/lib/uml/modules/RELEASE"]),
        ("lab: no kernel modules for 6.12.29\n", ["no module tree under /usr/lib/uml/modules for UML release "
                                                  "6.1.176"]),
        ("Checking PROT_EXEC mmap in /dev/shm...failed: Operation not permitted\n"
         "/dev/shm must be not mounted noexec\n", ["noexec", "remount,exec /dev/shm"]),
        ("Checking that ptrace can change system call numbers...ptrace: Operation not permitted\n"
         "check_ptrace : expected SIGSTOP, got status = 9\n", ["cannot ptrace", "root"]),
        ("do_syscall_stub: syscall 9 failed, return value = 0xfffffffffffffff4\nUML ran out of memory on the host "
         "side! This can happen due to a memory limitation or vm.max_map_count has been reached.\n",
         ["vm.max_map_count=262144"]),
        ("Run /init as init process\nKernel panic - not syncing: VFS: Unable to mount root fs\n",
         ["Kernel panic - not syncing: VFS: Unable to mount root fs"]),
    ],
)
def test_known_console_messages_become_one_actionable_line(console, expected):
    line = uml.diagnose(console, release="6.1.176", shim="/run/lvs-lab/uml_xstate.so", cpu="AVX, AMX")
    assert line is not None and "\n" not in line
    for text in expected:
        assert text in line


def test_fpu_failure_wins_over_the_panic_it_causes():
    assert uml.diagnose(FPU_CONSOLE, cpu="AVX").startswith("its processes die restoring their FPU state")


def test_a_console_without_a_known_failure_gives_no_diagnosis():
    assert uml.diagnose("Checking PROT_EXEC mmap in /dev/shm...OK\nRun /init as init process\n") is None


def test_cpu_vector_features_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 avx512f amx_tile amx_int8\n")
    assert uml.cpu_vector_features(str(cpuinfo)) == "AVX, AVX-512, AMX"
    cpuinfo.write_text("flags\t\t: fpu sse2\n")
    assert uml.cpu_vector_features(str(cpuinfo)) == "none of AVX, AVX-512, AMX"
