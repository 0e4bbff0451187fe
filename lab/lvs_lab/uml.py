"""What the lab needs to know about the user-mode Linux kernel on this machine.

* The ptrace shim (``uml_xstate.c``, docs/lab.md): Debian 12's ``linux.uml`` saves and
  restores guest FPU state in a 2,696-byte buffer, and host kernels refuse a
  ``PTRACE_SETREGSET NT_X86_XSTATE`` shorter than the CPU's XSAVE area (11,008 bytes
  with AMX). The shim, preloaded into every ``linux.uml``, widens those requests. It is
  built here, from source, by the C compiler the bootstrap installs.
* Why a kernel did not boot, in one line a user can act on (:func:`diagnose`).
"""

import glob
import os
import re
import shutil
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
SHIM_SOURCE = os.path.join(HERE, "uml_xstate.c")
SHIM_NAME = "uml_xstate.so"
MODULES_ROOT = "/usr/lib/uml/modules"


class BuildError(RuntimeError):
    """The C compiler is missing or refused a source file."""


def compile_c(source, output, shared=False):
    """Compile ``source`` into ``output`` unless ``output`` is newer; return ``output``."""
    if os.path.exists(output) and os.path.getmtime(output) >= os.path.getmtime(source):
        return output
    compiler = shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        raise BuildError(f"no C compiler to build {os.path.basename(source)}: apt-get install gcc libc6-dev "
                         "(scripts/bootstrap does)")
    os.makedirs(os.path.dirname(output) or ".", exist_ok=True)
    partial = f"{output}.{os.getpid()}.tmp"
    argv = [compiler, "-O2", "-Wall", "-Wextra", "-Werror", *(["-shared", "-fPIC"] if shared else []),
            "-o", partial, source]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BuildError(f"building {os.path.basename(source)} failed:\n{proc.stderr.strip()}")
    os.replace(partial, output)
    return output


def build_shim(directory):
    """The ptrace shim for ``linux.uml``, built into ``directory``; its path."""
    return compile_c(SHIM_SOURCE, os.path.join(directory, SHIM_NAME), shared=True)


def kernel_release(uml="/usr/bin/linux.uml"):
    """The release of the installed UML kernel (``6.1.176`` on Debian 12), from its
    module tree; None when there is none."""
    trees = sorted(os.path.basename(p) for p in glob.glob(os.path.join(MODULES_ROOT, "*")) if os.path.isdir(p))
    if len(trees) == 1:
        return trees[0]
    proc = subprocess.run([uml, "--version"], capture_output=True, text=True, check=False, timeout=30)
    version = proc.stdout.strip().split()[-1] if proc.stdout.strip() else None
    return version if version in trees else (trees[-1] if trees else None)


def cpu_vector_features(cpuinfo="/proc/cpuinfo"):
    """The vector extensions that set the size of this CPU's XSAVE area, for messages."""
    try:
        with open(cpuinfo, encoding="utf-8") as fh:
            flags = next((line.split(":", 1)[1].split() for line in fh if line.startswith("flags")), [])
    except OSError:
        return "unknown"
    found = [name for name, flag in (("AVX", "avx"), ("AVX-512", "avx512f"), ("AMX", "amx_tile")) if flag in flags]
    return ", ".join(found) or "none of AVX, AVX-512, AMX"


# Console messages of a kernel that did not come up, and what to do about each. The
# first that matches wins; ``{0}`` is the first group of the match.
KNOWN_FAILURES = (
    (r"ptrace (?:set|get) fp regs failed",
     "its processes die restoring their FPU state (\"ptrace set fp regs failed\"): this CPU's XSAVE area "
     "({cpu}) is larger than UML's buffer and the lab's ptrace shim did not take effect; check that "
     "lvs-lab built {shim} and that linux.uml runs with it in LD_PRELOAD (docs/lab.md)"),
    (r"lab: modprobe (\S+) failed",
     "kernel module {0} is missing for UML release {release}: its modules belong under "
     f"{MODULES_ROOT}/RELEASE (reinstall user-mode-linux: apt-get install --reinstall user-mode-linux)"),
    (r"lab: no kernel modules",
     f"no module tree under {MODULES_ROOT} for UML release {{release}}: reinstall user-mode-linux"),
    (r"must be not mounted noexec|PROT_EXEC mmap in \S+\.\.\.failed",
     "UML maps its memory from /dev/shm (or $TMPDIR), mounted noexec here: mount -o remount,exec /dev/shm, "
     "or point TMPDIR at a tmpfs that allows exec"),
    (r"ptrace: Operation not permitted|check_ptrace",
     "UML cannot ptrace its own processes: run the lab as root, outside a container that denies ptrace "
     "(CAP_SYS_PTRACE, kernel.yama.ptrace_scope)"),
    (r"(?:open|opening) /dev/net/tun|tuntap.*(?:Operation not permitted|No such)|vector.*(?:failed|error)",
     "UML could not open its tap devices: run the lab as root on a host with /dev/net/tun (modprobe tun)"),
    (r"UML ran out of memory on the host side",
     "UML maps each page of a guest process with its own host mapping and reached the host's limit: "
     "raise it (sysctl -w vm.max_map_count=262144; a guest process of ~250 MiB needs more than the "
     "default 65,530)"),
    (r"Out of memory|Cannot allocate memory|Killed process",
     "the kernel ran out of memory: give each lab host more (LVS_LAB_MEM=512M) or free memory on the machine"),
    (r"(Kernel panic - not syncing: .*)",
     "{0} (see the console log)"),
)


def diagnose(console_text, release=None, shim=SHIM_NAME, cpu=None):
    """One line on why a kernel with this console output did not come up, or None."""
    for pattern, advice in KNOWN_FAILURES:
        match = re.search(pattern, console_text)
        if match:
            group = match.group(1) if match.groups() else ""
            return advice.format(group.strip(), release=release or "?", shim=shim,
                                 cpu=cpu or cpu_vector_features())
    return None
