"""A small IOS-like SSH server for the tests: it runs on loopback, keeps a running and a
startup config, answers ``show running-config`` from them, and records every line it
receives, so that a test sees exactly what a real device would have been sent.

It knows the commands the pack sends (and rejects everything else as IOS does):
``enable``, ``terminal length|width``, ``show running-config|startup-config``,
``configure terminal``, ``interface X`` (known interfaces only), ``[no] ip nat inside|
outside``, ``[no] ip nat inside source static A B``, ``[no] ip route P M NH [track T]``,
``[no] ip sla N`` with ``icmp-echo A source-interface X`` and its ``threshold``,
``timeout``, ``frequency``, ``ip sla schedule N life forever start-time now``,
``[no] track T ip sla N reachability`` with ``[no] delay``, ``exit``, ``end``,
``write memory``. Its checks follow IOS: a static entry whose inside or outside
address is already mapped is refused, removing an unknown entry is refused, removing an
entry in use asks ``[no]:``, a scheduled SLA entry cannot be modified or scheduled
again, a track object's number is 1-1000 and its kind cannot change, a route's
prefix, mask and next hop name it (a second ``ip route`` to the same replaces its
options), and a global command typed in a sub-mode leaves the sub-mode (as IOS does).
Faults for the tests: ``reject`` (a line -> an error text)
and ``drop_on`` (a line that closes the session when received).
"""

import asyncio
import ipaddress
import re
import threading

import asyncssh

INVALID = "% Invalid input detected at '^' marker."
STATIC = re.compile(r"^ip nat inside source static (\S+) (\S+)$")
ROUTE = re.compile(r"^ip route (\S+) (\S+) (\S+)(?: track (\d+))?$")
ROUTE6 = re.compile(r"^ipv6 route (\S+)/(\d+) (\S+)(?: track (\d+))?$")  # mask: the prefix length
SLA = re.compile(r"^ip sla (\d+)$")
SLA_SCHEDULE = re.compile(r"^ip sla schedule (\d+) life forever start-time now$")
ECHO = re.compile(r"^icmp-echo (\S+) source-interface (\S+)$")
ECHO_SETTING = re.compile(r"^(threshold|timeout|frequency) (\d+)$")
ECHO_DEFAULTS = {"threshold": 5000, "timeout": 5000, "frequency": 60}
TRACK = re.compile(r"^track (\d+) (ip sla \d+ (?:reachability|state))$")
DELAY = re.compile(r"^delay(?: down (\d+))?(?: up (\d+))?$")
RUNNING_ENTRY = "%Entry already running and cannot be modified (only can delete (no) and start over)"


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
        self.slas = {}  # entry number -> {"echo": (address, interface) or None, settings, "scheduled"}
        self.tracks = {}  # track number -> {"kind": "ip sla N reachability", "delay": (down, up)}
        self.lock = threading.Lock()

    def running_config(self):
        out = ["Building configuration...", "", "Current configuration : 1024 bytes", "!",
               "version 15.2", f"hostname {self.hostname}", "!"]
        for name, lines in self.interfaces.items():
            out.append(f"interface {name}")
            out.extend(f" {line}" for line in lines)
            out.append("!")
        for number, track in sorted(self.tracks.items()):
            out.append(f"track {number} {track['kind']}")
            down, up = track["delay"]
            delay = " ".join(f"{way} {value}" for way, value in (("down", down), ("up", up)) if value)
            if delay:
                out.append(f" delay {delay}")
            out.append("!")
        out.extend(self.globals)
        for number, entry in sorted(self.slas.items()):
            if entry["echo"] is None:
                continue  # no operation yet: IOS does not show it
            out.append(f"ip sla {number}")
            out.append(" icmp-echo {} source-interface {}".format(*entry["echo"]))
            out.extend(f" {key} {entry[key]}" for key in ("threshold", "timeout", "frequency")
                       if entry[key] != ECHO_DEFAULTS[key])
        out.extend(f"ip sla schedule {number} life forever start-time now"
                   for number, entry in sorted(self.slas.items()) if entry["scheduled"])
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
        static, route, route6 = STATIC.match(body), ROUTE.match(body), ROUTE6.match(body)
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
        if route or route6:
            pattern = ROUTE if route else ROUTE6
            prefix, mask, hop, track = (route or route6).groups()
            valid = _is_ip(prefix) and _is_ip(mask) and _is_ip(hop) if route else \
                _is_ip6(prefix) and 0 <= int(mask) <= 128 and _is_ip6(hop)
            if not valid:
                return INVALID
            if track is not None and not 1 <= int(track) <= 1000:
                return INVALID
            same = [line for line in self.globals if pattern.match(line) and pattern.match(line).groups()[:3]
                    == (prefix, mask, hop)]
            if neg:
                if not same:
                    return "%No matching route to delete"
                self.globals.remove(same[0])
                return ""
            if same:  # the same route: its options replaced
                self.globals[self.globals.index(same[0])] = body
            else:
                self.globals.append(body)
            return ""
        sla, schedule, track = SLA.match(body), SLA_SCHEDULE.match(body), TRACK.match(body)
        if sla:
            number = int(sla.group(1))
            if neg:
                if number not in self.slas:
                    return f"%Entry {number} does not exist"
                del self.slas[number]  # its schedule with it
                return ""
            self.slas.setdefault(number, {"echo": None, **ECHO_DEFAULTS, "scheduled": False})
            return ""
        if schedule and not neg:
            entry = self.slas.get(int(schedule.group(1)))
            if entry is None or entry["echo"] is None:
                return "%Entry does not exist or has no operation configured"
            if entry["scheduled"]:
                return "%Entry already scheduled (only can delete (no) and start over)"
            entry["scheduled"] = True
            return ""
        if neg and re.match(r"^track \d+$", body):
            number = int(body.split()[1])
            if number not in self.tracks:
                return f"%Track object {number} does not exist"
            del self.tracks[number]
            return ""
        if track and not neg:
            number, kind = int(track.group(1)), track.group(2)
            if not 1 <= number <= 1000:
                return INVALID
            have = self.tracks.setdefault(number, {"kind": kind, "delay": (0, 0)})
            if have["kind"] != kind:
                return f"%Cannot change the type of track object {number}: delete it first"
            return ""
        return INVALID

    def configure_sla(self, number, mode, line):
        """A line inside ``ip sla N``: ``icmp-echo`` (mode ``config-ip-sla``), then its
        settings (``config-ip-sla-echo``). Returns ``(error, new mode)``."""
        entry = self.slas[number]
        echo, setting = ECHO.match(line), ECHO_SETTING.match(line)
        if mode == "config-ip-sla" and echo:
            if entry["scheduled"]:
                return RUNNING_ENTRY, mode
            if not (_is_ip(echo.group(1)) or _is_ip6(echo.group(1))) or echo.group(2) not in self.interfaces:
                return INVALID, mode
            if entry["echo"] not in (None, echo.groups()):
                return "%Entry already has an operation: delete it (no ip sla) and start over", mode
            entry["echo"] = echo.groups()
            return "", "config-ip-sla-echo"
        if mode == "config-ip-sla-echo" and setting:
            if entry["scheduled"]:
                return RUNNING_ENTRY, mode
            entry[setting.group(1)] = int(setting.group(2))
            if entry["threshold"] > entry["timeout"] or entry["timeout"] > entry["frequency"] * 1000:
                entry[setting.group(1)] = ECHO_DEFAULTS[setting.group(1)]
                return "%Threshold must not exceed the timeout, nor the timeout the frequency", mode
            return "", mode
        return None, mode  # not a sub-mode line

    def configure_track(self, number, line):
        """A line inside ``track T ...``: ``[no] delay [down S] [up S]``; None when it is
        not one."""
        if line == "no delay":
            self.tracks[number]["delay"] = (0, 0)
            return ""
        delay = DELAY.match(line)
        if not delay or delay.groups() == (None, None):
            return None
        self.tracks[number]["delay"] = tuple(int(value or 0) for value in delay.groups())
        return ""

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


def _is_ip6(text):
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


class _Session:
    def __init__(self, device, process):
        self.device = device
        self.process = process
        self.mode = "exec"  # exec, enable, config, or a sub-mode: config-if, config-ip-sla(-echo), config-track
        self.interface = None
        self.object = None  # the SLA entry's or the track object's number in their sub-modes

    def prompt(self):
        suffix = {"exec": ">", "enable": "#"}.get(self.mode, f"({self.mode})#")
        return f"{self.device.hostname}{suffix}"

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
            self.mode, self.interface, self.object = "enable", None, None
            return ""
        if line == "exit":
            self.mode = "config" if self.mode != "config" else "enable"
            self.interface = self.object = None
            return ""
        if self.mode.startswith("config-ip-sla"):
            with dev.lock:
                error, self.mode = dev.configure_sla(self.object, self.mode, line)
            if error is not None:
                return error
            self.mode, self.object = "config", None  # a global command: IOS leaves the sub-mode
        if self.mode == "config-track":
            with dev.lock:
                error = dev.configure_track(self.object, line)
            if error is not None:
                return error
            self.mode, self.object = "config", None
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
            error = dev.configure(line)
        if not error and SLA.match(line):
            self.mode, self.object = "config-ip-sla", int(line.split()[2])
        elif not error and TRACK.match(line):
            self.mode, self.object = "config-track", int(line.split()[1])
        return error


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
