"""A small IOS-like SSH server for the tests: it runs on loopback, keeps a running and a
startup config, answers ``show running-config`` from them, and records every line it
receives, so that a test sees exactly what a real device would have been sent.

It knows the commands the pack sends (and rejects everything else as IOS does):
``enable``, ``terminal length|width``, ``show running-config|startup-config``,
``configure terminal``, ``interface X`` (known interfaces only), ``[no] ip nat inside|
outside``, ``[no] ip nat inside source static A B``, ``[no] ip route P M NH``, ``exit``,
``end``, ``write memory``. Its checks follow IOS: a static entry whose inside or outside
address is already mapped is refused, removing an unknown entry is refused, removing an
entry in use asks ``[no]:``. Faults for the tests: ``reject`` (a line -> an error text)
and ``drop_on`` (a line that closes the session when received).
"""

import asyncio
import ipaddress
import re
import threading

import asyncssh

INVALID = "% Invalid input detected at '^' marker."
STATIC = re.compile(r"^ip nat inside source static (\S+) (\S+)$")
ROUTE = re.compile(r"^ip route (\S+) (\S+) (\S+)$")


class Device:
    """The device's state: interfaces, config lines, what it received."""

    def __init__(self, hostname="edge1", username="admin", password="secret", secret="enable",
                 interfaces=("GigabitEthernet0/0", "GigabitEthernet0/1", "GigabitEthernet0/2")):
        self.hostname = hostname
        self.username, self.password, self.secret = username, password, secret
        self.interfaces = {name: [] for name in interfaces}  # name -> sub-lines
        self.globals = []  # top-level config lines besides hostname and interfaces
        self.startup = None
        self.received = []  # every line received in any session, in order
        self.sessions = 0
        self.reject = {}  # line -> error text answered instead of applying it
        self.drop_on = None  # a line that closes the session when received
        self.in_use = set()  # static entries with translations: removal asks to confirm
        self.lock = threading.Lock()

    def running_config(self):
        out = ["Building configuration...", "", "Current configuration : 1024 bytes", "!",
               "version 15.2", f"hostname {self.hostname}", "!"]
        for name, lines in self.interfaces.items():
            out.append(f"interface {name}")
            out.extend(f" {line}" for line in lines)
            out.append("!")
        out.extend(self.globals)
        out.extend(["!", "end"])
        return "\n".join(out)

    def save(self):
        self.startup = self.running_config()

    def statics(self):
        return [STATIC.match(line).groups() for line in self.globals if STATIC.match(line)]

    def configure(self, line):
        """Apply one global config line; return the error text or ''."""
        neg = line.startswith("no ")
        body = line[3:] if neg else line
        static, route = STATIC.match(body), ROUTE.match(body)
        if static:
            inside, outside = static.groups()
            if not (_is_ip(inside) and _is_ip(outside)):
                return INVALID
            if neg:
                if body not in self.globals:
                    return "%Translation not found"
                self.globals.remove(body)
                return ""
            for have_in, have_out in self.statics():
                if (have_in, have_out) == (inside, outside):
                    return ""
                if have_in == inside:
                    return f"% {inside} already mapped ({have_in} -> {have_out})"
                if have_out == outside:
                    return f"% similar static entry ({have_in} -> {have_out}) already exists"
            self.globals.append(body)
            return ""
        if route:
            prefix, mask, hop = route.groups()
            if not (_is_ip(prefix) and _is_ip(mask) and _is_ip(hop)):
                return INVALID
            if neg:
                if body in self.globals:
                    self.globals.remove(body)
                    return ""
                return "%No matching route to delete"
            if body not in self.globals:
                self.globals.append(body)
            return ""
        return INVALID

    def configure_interface(self, name, line):
        neg = line.startswith("no ")
        body = line[3:] if neg else line
        if body not in ("ip nat inside", "ip nat outside"):
            return INVALID
        lines = self.interfaces[name]
        for other in ("ip nat inside", "ip nat outside"):
            if other in lines:
                lines.remove(other)
        if not neg:
            lines.append(body)
        return ""


def _is_ip(text):
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


class _Session:
    def __init__(self, device, process):
        self.device = device
        self.process = process
        self.mode = "exec"  # exec, enable, config, config-if
        self.interface = None

    def prompt(self):
        suffix = {"exec": ">", "enable": "#", "config": "(config)#", "config-if": "(config-if)#"}
        return f"{self.device.hostname}{suffix[self.mode]}"

    def write(self, text):
        self.process.stdout.write(text.replace("\n", "\r\n"))

    async def readline(self):
        line = await self.process.stdin.readline()
        if not line:
            raise EOFError
        return line.rstrip("\r\n")

    async def run(self):
        self.write(f"\n{self.prompt()}")
        while True:
            line = (await self.readline()).strip()
            with self.device.lock:
                self.device.received.append(line)
            if self.device.drop_on is not None and line == self.device.drop_on:
                self.process.channel.close()
                return
            if line:
                out = await self.command(line)
                if out:
                    self.write(out + "\n")
            self.write(self.prompt())

    async def command(self, line):
        dev = self.device
        if line in dev.reject and self.mode.startswith("config"):
            return dev.reject[line]
        if self.mode == "exec":
            if line == "enable":
                self.write("Password: ")
                if (await self.readline()) == dev.secret:
                    self.mode = "enable"
                    return ""
                return "% Access denied"
            if line.startswith("terminal "):
                return ""
            return INVALID if not line.startswith("show") else "% Privileged command"
        if self.mode == "enable":
            if line.startswith("terminal "):
                return ""
            if line in ("show running-config", "show run"):
                return dev.running_config()
            if line == "show startup-config":
                return dev.startup or "startup-config is not present"
            if line in ("configure terminal", "conf t"):
                self.mode = "config"
                return "Enter configuration commands, one per line.  End with CNTL/Z."
            if line in ("write memory", "write mem", "copy running-config startup-config"):
                dev.save()
                return "Building configuration...\n[OK]"
            if line in ("exit", "disable"):
                self.mode = "exec"
                return ""
            return INVALID
        if line == "end":
            self.mode, self.interface = "enable", None
            return ""
        if line == "exit":
            self.mode, self.interface = ("config", None) if self.mode == "config-if" else ("enable", None)
            return ""
        if line.startswith("interface "):
            name = line.split(None, 1)[1]
            if name not in dev.interfaces:
                return INVALID
            self.mode, self.interface = "config-if", name
            return ""
        if self.mode == "config-if":
            with dev.lock:
                return dev.configure_interface(self.interface, line)
        neg_static = STATIC.match(line[3:]) if line.startswith("no ") else None
        if neg_static and line[3:] in dev.globals and neg_static.groups() in dev.in_use:
            self.write("Static entry in use, do you want to delete child entries? [no]: ")
            answer = (await self.readline()).strip()
            with dev.lock:
                dev.received.append(answer)
            if answer.lower() not in ("y", "yes"):
                return ""
            dev.in_use.discard(neg_static.groups())
        with dev.lock:
            return dev.configure(line)


class _Server(asyncssh.SSHServer):
    def __init__(self, device):
        self.device = device

    def begin_auth(self, username):
        return True

    def password_auth_supported(self):
        return True

    def validate_password(self, username, password):
        return username == self.device.username and password == self.device.password


class FakeIOS:
    """Run a :class:`Device` behind an SSH server on 127.0.0.1, in a thread of its own.

    .. code-block:: python

        with FakeIOS() as ios:
            ios.port, ios.device.running_config()
    """

    def __init__(self, device=None):
        self.device = device or Device()
        self.port = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server = None

    def _process(self, process):
        self.device.sessions += 1
        session = _Session(self.device, process)

        async def run():
            try:
                await session.run()
            except (EOFError, asyncssh.Error, BrokenPipeError, ConnectionError):
                pass
            if not process.is_closing():
                process.exit(0)

        return run()

    async def _start(self):
        key = asyncssh.generate_private_key("ssh-ed25519")
        self._server = await asyncssh.create_server(
            lambda: _Server(self.device), "127.0.0.1", 0, server_host_keys=[key],
            process_factory=self._process, line_editor=True, encoding="utf-8")
        self.port = self._server.sockets[0].getsockname()[1]

    def __enter__(self):
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        return self

    def __exit__(self, *exc):
        async def stop():
            self._server.close()
            await self._server.wait_closed()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
