"""One health check of a service, with a hard timeout: TCP connect, HTTP GET with an
expected status, or a UDP request that must be answered. Several checks run at once
(:func:`run_all`), so a round costs the longest timeout, not their sum.
"""

import os
import socket
import struct
import time
from concurrent.futures import ThreadPoolExecutor


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


def http(address, port, timeout, path="/", expect=200, mark=None):
    deadline = time.monotonic() + timeout
    with _connected(address, port, timeout, mark) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {address}\r\nUser-Agent: lvs-pack-check\r\n\r\n".encode())
        data = b""
        while b"\r\n" not in data and len(data) < 4096:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(1024)
            if not chunk:
                break
            data += chunk
    parts = data.split(b"\r\n", 1)[0].split()
    if len(parts) < 2 or not parts[1].isdigit():
        raise OSError(f"not an HTTP answer: {data[:40]!r}")
    if int(parts[1]) != expect:
        raise OSError(f"HTTP {int(parts[1])}, expected {expect}")
    return f"HTTP {expect}"


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
    """One ICMP echo (IPv4, raw socket: root) answered within ``timeout`` seconds."""
    ident, seq = os.getpid() & 0xFFFF, int(time.monotonic() * 1000) & 0xFFFF
    header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    body = b"lvs-pack-probe"
    packet = struct.pack("!BBHHH", 8, 0, checksum(header + body), ident, seq) + body
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        sock.sendto(packet, (address, 0))
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise OSError("no echo reply")
            sock.settimeout(left)
            data, peer = sock.recvfrom(2048)
            ihl = (data[0] & 0x0F) * 4
            kind, _, _, rid, rseq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
            if peer[0] == address and kind == 0 and (rid, rseq) == (ident, seq):
                return "echo reply"


def run(check, address, mark=None):
    """Run ``check`` (a site service's ``check`` dict) against ``address`` (its packets
    marked ``mark``, if given); return ``(ok, reason)``. Never raises, never waits
    beyond the check's timeout (much)."""
    kind, port, timeout = check["type"], check["port"], float(check["timeout"])
    try:
        if kind == "none":
            return True, "not checked"
        if kind == "http":
            return True, http(address, port, timeout, check.get("path", "/"), check.get("expect", 200), mark)
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
