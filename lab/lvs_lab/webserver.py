"""The lab's application: a small server on each real server that names itself.

TCP (HTTP): ``GET /`` answers ``served by <name>``; ``GET /bytes/N`` answers N bytes
(large responses); ``GET /slow/S`` sends 100 bytes every 0.1 s for S seconds (a
long-lived connection); ``POST`` answers how many bytes it received (large requests, for
the MTU tests). UDP (``--udp-port``): any datagram is answered ``served by <name>``,
sent from the address it was sent to (the VIP), as a real UDP service must.
Both listen on every address, so they answer on the VIPs the real server holds, on
IPv6 too where the kernel has it (HTTP: one socket for both; UDP: one socket each).
"""

import argparse
import http.server
import socket
import socketserver
import struct
import threading
import time

IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
SLOW_CHUNK = 100  # bytes per tenth of a second of a /slow/SECONDS download


def make_handler(name):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def _answer(self, body):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Served-By", name)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path.startswith("/slow/"):
                return self._slow(float(self.path.rsplit("/", 1)[1] or 0))
            if self.path.startswith("/bytes/"):
                body = b"x" * min(int(self.path.rsplit("/", 1)[1] or 0), 10_000_000)
            else:
                body = f"served by {name}\n".encode()
            self._answer(body)

        def _slow(self, seconds):
            """A long download: SLOW_CHUNK bytes every 0.1 s for ``seconds`` (a long-lived
            connection whose client keeps acknowledging through the director)."""
            chunks = max(1, min(int(seconds * 10), 36_000))
            self.send_response(200)
            self.send_header("Content-Length", str(chunks * SLOW_CHUNK))
            self.send_header("X-Served-By", name)
            self.end_headers()
            for _ in range(chunks):
                self.wfile.write(b"x" * SLOW_CHUNK)
                self.wfile.flush()
                time.sleep(0.1)

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            received = len(self.rfile.read(length)) if length else 0
            self._answer(f"served by {name}: received {received} bytes\n".encode())

        def log_message(self, *args):
            pass

    return Handler


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    allow_reuse_address = True
    daemon_threads = True


class _DualStackServer(_Server):
    """Every IPv4 and IPv6 address, one socket (IPv4 clients as ``::ffff:a.b.c.d``)."""

    address_family = socket.AF_INET6

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def http_server(name, port):
    """The HTTP server on ``port``: both families, or IPv4 where the kernel has no IPv6."""
    try:
        return _DualStackServer(("::", port), make_handler(name))
    except OSError:  # no IPv6 in this kernel
        return _Server(("0.0.0.0", port), make_handler(name))


def serve_udp(name, port):
    """Answer every datagram from the address it was sent to (IPv4 and, where the kernel
    has it, IPv6: a thread each)."""
    try:
        sock6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    except OSError:  # no IPv6 in this kernel
        sock6 = None
    if sock6 is not None:
        sock6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock6.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
        sock6.bind(("::", port))
        threading.Thread(target=_answer_udp, args=(sock6, name, socket.IPPROTO_IPV6), daemon=True).start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    sock.bind(("0.0.0.0", port))
    _answer_udp(sock, name, socket.IPPROTO_IP)


def _answer_udp(sock, name, level):
    """Answer each datagram on ``sock`` from its destination address (the packet info of
    ``level``: IPv4's ``in_pktinfo`` or IPv6's ``in6_pktinfo``)."""
    reply = f"served by {name}\n".encode()
    kind, size = (IP_PKTINFO, 12) if level == socket.IPPROTO_IP else (IPV6_PKTINFO, 20)
    while True:
        _, ancillary, _, peer = sock.recvmsg(2048, socket.CMSG_SPACE(size))
        info = None
        for got_level, got_kind, data in ancillary:
            if got_level == level and got_kind == kind:
                info = data[:size]
        if level == socket.IPPROTO_IP:
            local = struct.unpack("I4s4s", info)[2] if info else b"\0" * 4
            packet_info = struct.pack("I4s4s", 0, local, b"\0" * 4)
        else:
            local = info[:16] if info else b"\0" * 16
            packet_info = local + struct.pack("I", 0)
        sock.sendmsg([reply], [(level, kind, packet_info)], 0, peer)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, action="append", default=[], help="TCP (HTTP) port; default 80")
    parser.add_argument("--udp-port", type=int, action="append", default=[])
    args = parser.parse_args()
    for port in args.udp_port:
        threading.Thread(target=serve_udp, args=(args.name, port), daemon=True).start()
    servers = [http_server(args.name, port) for port in args.port or [80]]
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    servers[0].serve_forever()


if __name__ == "__main__":
    main()
