"""One health check of a service, with a hard timeout: TCP connect, HTTP or HTTPS GET
with an expected status (and body), a DNS query, a UDP request that must be answered,
or a command whose exit status decides. Several checks run at once
(:func:`run_all`), so a round costs the longest timeout, not their sum.
"""

import os
import re
import socket
import ssl
import struct
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from . import dnsmsg


def _socket(address, kind, timeout, mark=None):
    """A socket for ``address``; ``mark`` (SO_MARK, root) steers it by policy routing
    (the router's probe of one director: lvstun.dirgroup)."""
    sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, kind)
    try:
        sock.settimeout(timeout)
        if mark is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)
    except OSError:
        sock.close()
        raise
    return sock


def _connected(address, port, timeout, mark=None, kind=socket.SOCK_STREAM):
    sock = _socket(address, kind, timeout, mark)
    try:
        sock.connect((address, port))
    except OSError:
        sock.close()
        raise
    return sock


def tcp(address, port, timeout, mark=None):
    with _connected(address, port, timeout, mark):
        return "connected"


def _ranges(expect):
    """``[[low, high], ...]`` for a check's ``expect``: that form, or one status as a number."""
    return [[expect, expect]] if isinstance(expect, int) else expect


def status_ok(status, expect):
    """Whether an HTTP ``status`` is one ``expect`` accepts (:func:`_ranges`)."""
    return any(low <= status <= high for low, high in _ranges(expect))


def _expected(expect):
    return ", ".join(str(low) if low == high else f"{low}-{high}" for low, high in _ranges(expect))


def _receive(sock, deadline, done, limit=65536):
    """Bytes read from ``sock`` until ``done(data)``, the peer closes, ``limit`` bytes
    came, or ``deadline`` passes (``socket.timeout``, an OSError)."""
    data = b""
    while len(data) < limit and not done(data):
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(limit - len(data))
        if not chunk:
            break
        data += chunk
    return data


def http_verdict(answer, expect, body=None):
    """The reason an HTTP ``answer`` (its first bytes, or all of them when ``body``, a
    regex, must match) passes; raises OSError when it does not."""
    parts = answer.split(b"\r\n", 1)[0].split()
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise OSError(f"not an HTTP answer: {answer[:40]!r}")
    status = int(parts[1])
    if not status_ok(status, expect):
        raise OSError(f"HTTP {status}, expected {_expected(expect)}")
    if body is not None and not re.search(body.encode(), answer.split(b"\r\n\r\n", 1)[-1]):
        raise OSError(f"HTTP {status}, but the body does not match {body!r}")
    return f"HTTP {status}"


def http_request(path, host):
    """The check's request; ``host`` a name or an address (an IPv6 one in brackets, as
    a Host header writes it)."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return (f"GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: lvs-pack-check\r\n"
            "Connection: close\r\n\r\n").encode()


def _tls(sock, check, address):
    """``sock`` wrapped in TLS: SNI with the check's ``host`` (none for an address),
    the certificate verified only when ``verify`` (against ``ca``, or the system's)."""
    if check.get("verify"):
        context = ssl.create_default_context(cafile=check.get("ca"))
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context.wrap_socket(sock, server_hostname=check.get("host") or address)


def http(address, port, timeout, check=None, mark=None, tls=False):
    """GET ``check``'s path (``Host``: its ``host``, else ``address``), over TLS when
    ``tls``; the status must be one ``expect`` accepts and the body match ``body``."""
    check = check or {}
    expect, body = check.get("expect", 200), check.get("body")
    deadline = time.monotonic() + timeout
    limit = 65536 if body is not None else 4096
    with _connected(address, port, timeout, mark) as raw:
        sock = _tls(raw, check, address) if tls else raw
        with sock:
            sock.sendall(http_request(check.get("path", "/"), check.get("host") or address))
            # The status line alone, or with a body regex the whole answer.
            data = _receive(sock, deadline, lambda got: body is None and b"\r\n" in got, limit)
    return http_verdict(data, expect, body) + (" over TLS" if tls else "")


def dns(address, port, timeout, check, mark=None):
    """Ask ``check``'s ``query`` (over TCP for a TCP service); its answer must carry the
    expected ``rcode`` (and ``answer`` address, if set)."""
    ident, message = dnsmsg.query(check["query"], check.get("query_type", "A"))
    deadline = time.monotonic() + timeout
    if check.get("protocol") == "tcp":
        with _connected(address, port, timeout, mark) as sock:
            sock.sendall(struct.pack("!H", len(message)) + message)
            # A DNS message over TCP comes after its 2-byte length.
            answer = _receive(sock, deadline, lambda got: len(got) >= 2 and
                              len(got) >= 2 + struct.unpack("!H", got[:2])[0], 65537)[2:]
    else:
        with _connected(address, port, timeout, mark, socket.SOCK_DGRAM) as sock:
            sock.send(message)
            answer = sock.recv(65535)
    ok, reason = dnsmsg.verdict(answer, ident, check.get("rcode", "NOERROR"), check.get("answer"))
    if not ok:
        raise OSError(reason)
    return reason


class Outcome(tuple):
    """A check's ``(ok, reason)``, and the ``weight`` a dynamic script gave (else None)."""

    def __new__(cls, ok, reason, weight=None):
        outcome = super().__new__(cls, (ok, reason))
        outcome.weight = weight
        return outcome


def script(command, timeout, dynamic=False):
    """Run ``command`` (an argv list, no shell) with a time limit: exit 0 is up. With
    ``dynamic`` (keepalived's misc_dynamic): exit 0 is up at the pillar's weight, 1 is
    down, 2 to 255 up at weight status - 2. Returns ``(reason, weight or None)``."""
    try:
        proc = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise OSError(f"{command[0]} ran over {timeout:g}s") from None
    if dynamic and proc.returncode >= 2:
        return f"{command[0]} exited {proc.returncode}: weight {proc.returncode - 2}", proc.returncode - 2
    if proc.returncode:
        said = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()
        raise OSError(f"{command[0]} exited {proc.returncode}" + (f": {said[0][:120]}" if said else ""))
    return f"{command[0]} exited 0", None


def udp(address, port, timeout, mark=None):
    with _connected(address, port, timeout, mark, socket.SOCK_DGRAM) as sock:
        sock.send(b"lvs-pack-check\n")
        sock.recv(2048)
    return "answered"


def checksum(data):
    """The internet checksum (RFC 1071) of ``data``."""
    data += b"\0" * (len(data) % 2)
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def ping(address, timeout):
    """One ICMP echo (ICMPv6 for an IPv6 address; raw socket: root) answered within
    ``timeout`` seconds."""
    ident, seq = os.getpid() & 0xFFFF, int(time.monotonic() * 1000) & 0xFFFF
    v6 = ":" in address
    request, reply = (128, 129) if v6 else (8, 0)  # echo request and reply types
    body = b"lvs-pack-probe"
    header = struct.pack("!BBHHH", request, 0, 0, ident, seq)
    # IPv4: the checksum is ours; ICMPv6's covers a pseudo-header: the kernel fills it in.
    packet = header if v6 else struct.pack("!BBHHH", request, 0, checksum(header + body), ident, seq)
    packet += body
    deadline = time.monotonic() + timeout
    family, protocol = (socket.AF_INET6, socket.IPPROTO_ICMPV6) if v6 else (socket.AF_INET, socket.IPPROTO_ICMP)
    with socket.socket(family, socket.SOCK_RAW, protocol) as sock:
        sock.sendto(packet, (address, 0))
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise OSError("no echo reply")
            sock.settimeout(left)
            data, peer = sock.recvfrom(2048)
            start = 0 if v6 else (data[0] & 0x0F) * 4  # a raw IPv4 socket reads the IP header too
            if len(data) < start + 8:
                continue
            kind, _, _, rid, rseq = struct.unpack("!BBHHH", data[start:start + 8])
            if peer[0] == address and kind == reply and (rid, rseq) == (ident, seq):
                return "echo reply"


def run(check, address, mark=None):
    """Run ``check`` (a site service's ``check`` dict) against ``address`` (its packets
    marked ``mark``, if given); return ``(ok, reason)`` (an :class:`Outcome`: a dynamic
    script's weight rides along). Never raises, never waits
    beyond the check's timeout (much)."""
    kind, port, timeout = check["type"], check["port"], float(check["timeout"])
    try:
        if kind == "none":
            return True, "not checked"
        if kind in ("http", "https"):
            return True, http(address, port, timeout, check, mark, tls=kind == "https")
        if kind == "dns":
            return True, dns(address, port, timeout, check, mark)
        if kind == "script":
            reason, weight = script(check["command"], timeout, check.get("dynamic", False))
            return Outcome(True, reason, weight)
        if kind == "udp":
            return True, udp(address, port, timeout, mark)
        if kind == "ping":
            return True, ping(address, timeout)
        return True, tcp(address, port, timeout, mark)
    except (OSError, ValueError) as err:
        return False, f"{kind} {address}:{port}: {str(err) or type(err).__name__}"


def run_all(checks):
    """``{name: (ok, reason)}`` for ``{name: (check, address[, mark])}``, run concurrently."""
    if not checks:
        return {}
    with ThreadPoolExecutor(max_workers=min(16, len(checks))) as pool:
        futures = {name: pool.submit(run, *args) for name, args in checks.items()}
        return {name: future.result() for name, future in futures.items()}
