"""The lab's user-mode Linux kernels: the shim they run with, booting, halting and
restarting one, commands run inside one (``exec``), the processes the lab owns.

A part of :class:`lvs_lab.lab.Lab` (a mixin: the lab's state is the Lab's)."""

import contextlib
import io
import os
import signal
import subprocess
import sys
import time

from lvs_lab import agent, plan, uml
from lvs_lab.system import (
    BIN,
    GUEST_MODULES,
    REPO,
    UML,
    UML_MEM,
    LabError,
    connect_in_switch,
    process_table,
    shell_assignments,
)


class Kernels:
    def shim(self):
        """The ptrace shim every ``linux.uml`` of the lab runs with (built if needed)."""
        try:
            return uml.build_shim(self.state_dir)
        except uml.BuildError as err:
            raise LabError(str(err)) from None

    def boot(self, name):
        """Boot (or re-boot) the UML kernel of host ``name``; return without waiting."""
        host = self.hosts[name]
        hdir = self.host_dir(name)
        os.makedirs(hdir, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(hdir, "booted"))
        lab_parent = os.path.dirname(os.path.dirname(os.path.abspath(agent.__file__)))
        env = {
            "LAB_NAME": name,
            "LAB_LAN_IF": host.lan_interface,
            "LAB_LAN_ADDR": host.lan_address,
            "LAB_GATEWAY": host.gateway or "",
            "LAB_MGMT_ADDR": host.mgmt_address,
            "LAB_MODULES": GUEST_MODULES,
            "LAB_PYTHON": sys.executable,
            "LAB_PYTHONPATH": lab_parent,
            "LAB_BIND": " ".join(sorted({REPO, lab_parent, os.path.dirname(BIN), sys.base_prefix})),
            "LAB_WEB": " ".join(f"--port {p}" for p in host.extra.get("tcp_ports", [])) + "".join(
                f" --udp-port {p}" for p in host.extra.get("udp_ports", [])) if host.role == "realserver" else "",
            "LAB_MINION": os.path.join(BIN, "salt-minion") if host.minion else "",
        }
        with open(os.path.join(hdir, "host.env"), "w", encoding="utf-8") as fh:
            fh.write(shell_assignments(env))
        init = os.path.join(os.path.dirname(os.path.abspath(__file__)), "guest-init")
        argv = [
            UML,
            f"mem={UML_MEM}",
            "rootfstype=hostfs",
            "rootflags=/",
            "ro",
            f"init={init}",
            f"LAB_HOSTDIR={hdir}",
            "con0=null,fd:1",
            "con=null",
            f"umid=lvslab-{name}",
            f"uml_dir={self._path('uml')}",
            # Fixed MACs, as real NICs have: a rebooted host keeps its neighbours' ARP entries.
            f"vec0:transport=tap,ifname={host.tap('lan')},mac={host.mac('lan')}",
            f"vec1:transport=tap,ifname={host.tap('mgmt')},mac={host.mac('mgmt')}",
        ]
        os.makedirs(self._path("uml"), exist_ok=True)
        # Every kernel runs with the ptrace shim, on every CPU: where UML's FPU buffer is
        # as large as the CPU's XSAVE area it passes requests through (docs/lab.md).
        preload = f"LD_PRELOAD={self.shim()}"
        # Exec'd, not under a shell: linux.uml makes itself a session leader, and halt()
        # kills that session by the pid recorded here.
        with open(os.path.join(hdir, "console.log"), "wb") as console:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", plan.SWITCH_NS, "env", preload, *argv],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        for pidfile in ("kernel.pid", "kernel.pgid"):
            with open(os.path.join(hdir, pidfile), "w", encoding="utf-8") as fh:
                fh.write(str(proc.pid))

    def halt(self, name):
        """Stop the UML kernel of ``name`` at once (as pulling its power cord would)."""
        pidfile = os.path.join(self.host_dir(name), "kernel.pid")
        with contextlib.suppress(FileNotFoundError, ValueError):
            with open(pidfile, encoding="utf-8") as fh:
                pgid = int(fh.read())
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            os.unlink(pidfile)

    def wait_booted(self, names, timeout=120):
        """Wait until the kernels of ``names`` ran their init; raise LabError saying why
        one did not (at once when its kernel is gone), or lacks a kernel module."""
        deadline = time.monotonic() + timeout
        pending = set(names)
        while pending:
            pending = {n for n in pending if not os.path.exists(os.path.join(self.host_dir(n), "booted"))}
            dead = {n for n in pending if not self._kernel_running(n)}
            if dead or (pending and time.monotonic() > deadline):
                raise LabError(self._boot_failure(dead or pending, "stopped before its init ran" if dead
                                                  else f"did not finish booting in {timeout} s"))
            if pending:
                time.sleep(0.2)
        missing = {n for n in names if "lab: modprobe" in self._console(n)}
        if missing:
            raise LabError(self._boot_failure(missing, "booted without a kernel module the lab needs"))

    def _console(self, name):
        with contextlib.suppress(OSError), open(os.path.join(self.host_dir(name), "console.log"),
                                                encoding="utf-8", errors="replace") as fh:
            return fh.read()
        return ""

    def _kernel_running(self, name):
        """Whether the ``linux.uml`` process of ``name`` is still there (not a zombie)."""
        try:
            with open(os.path.join(self.host_dir(name), "kernel.pid"), encoding="utf-8") as fh:
                pid = int(fh.read())
            with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
                return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, ValueError, IndexError):
            return False

    def _boot_failure(self, names, problem):
        """One line per host: what its console says went wrong, and what to do."""
        release = uml.kernel_release(UML)
        lines = []
        for name in sorted(names):
            console = os.path.join(self.host_dir(name), "console.log")
            why = uml.diagnose(self._console(name), release=release, shim=os.path.join(self.state_dir,
                                                                                         uml.SHIM_NAME))
            if why is None:
                return self._hint(names, problem, "console.log")
            lines.append(f"{name} {problem}: {why} (console: {console})")
        return "\n".join(lines)

    def restart(self, name, timeout=180):
        """Power-cycle host ``name`` and wait until its minion answers again.

        A kernel host is killed and booted again; the router's namespace is deleted
        (with everything the kernel held for it) and made again, as a reboot would."""
        host = self.hosts.get(name)
        if host is None or not host.minion:
            raise LabError(f"no lab host with a minion named {name!r}; hosts: {', '.join(self.minions)}")
        if host.engine == "uml":
            self.halt(name)
            self.boot(name)
            self.wait_booted([name])
        else:
            self._stop_native_minion(host)
            self._unwire_router(host)
            self._wire_router(host)
            self._start_native_minion(host)
        self.wait_minions([name], timeout=timeout)

    def exec(self, name, argv, stdin=b"", out=None, err=None):
        """Run ``argv`` on lab host ``name``, passing its output to ``out``/``err``
        (binary streams, default this process's); return its exit code."""
        host = self.hosts.get(name)
        if host is None:
            raise LabError(f"no lab host {name!r}; hosts: {', '.join(sorted(self.hosts))}")
        out = out or sys.stdout.buffer
        err = err or sys.stderr.buffer
        if host.engine == "uml":
            return agent.run(host.mgmt_ip, argv, stdin=stdin, out=out, err=err, connect=connect_in_switch)
        proc = subprocess.run(["ip", "netns", "exec", host.netns, *argv], input=stdin, capture_output=True,
                              check=False)
        out.write(proc.stdout)
        err.write(proc.stderr)
        return proc.returncode

    def capture(self, name, *argv):
        """Run a command on ``name``; return (exit code, stdout text, stderr text)."""
        out, err = io.BytesIO(), io.BytesIO()
        code = self.exec(name, argv, out=out, err=err)
        return code, out.getvalue().decode(), err.getvalue().decode()

    def processes(self, zombies=True, matching=None):
        """PIDs of processes that belong to the lab (zombies too unless ``zombies`` is
        false): by command line, by the process group of a kernel the lab started, or by
        the session of such a process (a daemon's children rename themselves: salt-master's
        EventPublisher names no path). ``matching`` (a test of a command line): only the
        processes it admits, and their sessions."""
        groups = set()
        for name in os.listdir(self._path("hosts")) if os.path.isdir(self._path("hosts")) else ():
            with contextlib.suppress(OSError, ValueError), \
                    open(os.path.join(self.host_dir(name), "kernel.pgid"), encoding="utf-8") as fh:
                groups.add(int(fh.read()))
        table = process_table()
        if matching is None:
            ours = {pid for pid, (_, pgid, _, line) in table.items()
                    if self.state_dir in line or "umid=lvslab-" in line or pgid in groups}
        else:
            ours = {pid for pid, (*_, line) in table.items() if matching(line)}
        # A daemon's session: it called setsid and its leader, the daemon's first fork,
        # has exited (or is the lab's own process); never a live shell's session, nor
        # this process's own.
        sessions = {table[pid][2] for pid in ours if table[pid][2] not in table or table[pid][2] in ours}
        sessions.discard(os.getsid(0))
        return sorted(pid for pid, (state, _, sid, _) in table.items()
                      if (pid in ours or sid in sessions) and (zombies or state != "Z"))
