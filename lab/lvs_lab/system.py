"""The real machine as the lab uses it: its constants (the checkout, the state folder,
the UML kernel), commands run on it or in a lab namespace, and small file helpers."""

import contextlib
import ctypes
import os
import shlex
import subprocess
import sys
import threading

from lvs_lab import plan

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout: lab/lvs_lab/..
STATE_DIR = os.environ.get("LVS_LAB_DIR", "/run/lvs-lab")
UML = "/usr/bin/linux.uml"
UML_MEM = os.environ.get("LVS_LAB_MEM", "384M")  # per UML kernel; the 1,000-service benchmark wants more
GUEST_MODULES = "ipip ip_vs ip_vs_rr ip_vs_wrr ip_vs_wlc"
BIN = os.path.dirname(os.path.abspath(sys.executable))
CLONE_NEWNET = 0x40000000


class LabError(RuntimeError):
    """Something in the lab failed; the message says what and where to look."""


def reap_children():
    """Wait for this process's own exited children (kernels it booted and killed)."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def sh(*argv, check=True, capture=False, netns=None, timeout=120, **kwargs):
    """Run a command on the real machine (optionally inside a lab namespace)."""
    if netns:
        argv = ("ip", "netns", "exec", netns, *argv)
    proc = subprocess.run(
        [str(a) for a in argv],
        check=False,
        text=True,
        capture_output=capture,
        timeout=timeout,
        **kwargs,
    )
    if check and proc.returncode != 0:
        detail = (proc.stderr or "").strip() if capture else ""
        raise LabError(f"command failed ({proc.returncode}): {' '.join(map(str, argv))}\n{detail}")
    return proc


def _setns(path):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise LabError(f"setns {path}: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(fd)


def connect_in_switch(address, timeout=10):
    """A TCP connection opened from inside the lab's switch namespace.

    A socket stays in the namespace it was created in, so only this thread visits the
    namespace, for the time of the ``connect``.
    """
    import socket  # noqa: PLC0415

    home = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    try:
        _setns(f"/run/netns/{plan.SWITCH_NS}")
        try:
            return socket.create_connection(address, timeout=timeout)
        finally:
            _setns(f"/proc/self/fd/{home}")
    finally:
        os.close(home)


def shell_assignments(env):
    """``KEY='value'`` lines that a POSIX shell sources as plain values, whatever the
    values hold (quotes, ``$( )``, newlines): the guest's init sources host.env."""
    return "".join(f"{key}={shlex.quote(str(value))}\n" for key, value in env.items())


def write_new(path, text, mode):
    """Write ``path`` afresh, created with ``mode`` (no moment with wider permissions)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def process_table():
    """{pid: (state, process group, session, command line)} of every process but this one."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                line = fh.read().decode(errors="replace").replace("\0", " ")
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as fh:
                state, _ppid, pgid, sid = fh.read().rsplit(")", 1)[1].split()[:4]
            table[int(entry)] = (state, int(pgid), int(sid), line)
        except (OSError, ValueError, IndexError):
            continue
    return table
