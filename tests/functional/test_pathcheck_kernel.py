"""The director's path checks (``lvstun.pathcheck``) against this host's kernel, in two
namespaces the test makes: a "director" and a "real server" joined by a veth pair.

The host's kernel has no ipip module, so here the inner packets go out as they are
(a raw IP_HDRINCL socket instead of the IPIP one); everything else is the real thing:
the packets built here are answered by the real server's kernel TCP/UDP/ICMP stack and
a real HTTP server, the BPF filter runs in the kernel, and the answers go to an
address the director does not hold (as the VIP's answers do, which the director's
kernel drops as martians), so its stack never resets the connections. The encapsulated
path, with real tunnels: tests/lab/test_paths.py."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DIRECTOR, SERVER = f"lvspcd{os.getpid()}", f"lvspcs{os.getpid()}"
SOURCE = "10.77.9.9"  # the inner source: routed to the director, held by nobody
VIP = "10.77.0.2"  # the "real server" answers from its own address, as from a VIP


def _require(condition, why):
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(f"the path checks cannot be tested on this CI machine: {why}")
        pytest.skip(why)


def _ns(name, *argv, check=True, **kw):
    proc = subprocess.run(["ip", "netns", "exec", name, *map(str, argv)], capture_output=True, text=True,
                          check=False, **kw)
    if check:
        assert proc.returncode == 0, f"{' '.join(map(str, argv))}: {proc.stderr}"
    return proc


SERVERS = textwrap.dedent(r"""
    import http.server, socket, ssl, struct, sys, threading
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path in ("/", "/health") else 503)
            self.end_headers()
            self.wfile.write(b"status: ok" if self.path == "/health" else b"hello")
        def log_message(self, *args):
            pass
    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address):
            pass  # the checks reset their connections: no tracebacks for that
    web = Server(("0.0.0.0", 8080), Handler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    tls = Server(("0.0.0.0", 8443), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[1], sys.argv[2])
    tls.socket = context.wrap_socket(tls.socket, server_side=True)
    threading.Thread(target=tls.serve_forever, daemon=True).start()

    def dns_answer(query):
        # A for web.example. -> 10.77.0.2; anything else NXDOMAIN (the question echoed).
        end = query.index(b"\0", 12) + 5
        name = query[12:end - 4]
        known = name == b"\x03web\x07example\x00"
        flags = 0x8180 if known else 0x8183
        head = struct.pack("!HHHHHH", struct.unpack("!H", query[:2])[0], flags, 1, 1 if known else 0, 0, 0)
        answer = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton("10.77.0.2") if known else b""
        return head + query[12:end] + answer

    def dns_udp():
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("0.0.0.0", 5300))
        while True:
            data, peer = sock.recvfrom(2048)
            sock.sendto(dns_answer(data), peer)
    threading.Thread(target=dns_udp, daemon=True).start()

    def dns_tcp():
        listener = socket.create_server(("0.0.0.0", 5300))
        while True:
            conn, _ = listener.accept()
            with conn:
                data = b""
                while len(data) < 2 or len(data) < 2 + struct.unpack("!H", data[:2])[0]:
                    data += conn.recv(2048)
                answer = dns_answer(data[2:])
                conn.sendall(struct.pack("!H", len(answer)) + answer)
    threading.Thread(target=dns_tcp, daemon=True).start()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("0.0.0.0", 5353))
    print("ready", flush=True)
    while True:
        data, peer = udp.recvfrom(2048)
        udp.sendto(data, peer)
""")

CHECKS = textwrap.dedent("""
    import json, sys
    import lvstun.probe as probe
    checks = json.loads(sys.argv[1])
    outcomes = {key: probe.run(check, check.pop("address")) for key, check in checks.items()}
    print(json.dumps({key: [*outcome, getattr(outcome, "weight", None)] for key, outcome in outcomes.items()}))
""")


def _certificate(folder):
    """A self-signed certificate for web.example (the check's SNI and host name)."""
    import datetime  # noqa: PLC0415

    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "web.example")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("web.example")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    paths = (os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem"))
    with open(paths[0], "wb") as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    return paths

ROUND = textwrap.dedent("""
    import json, socket, sys, time
    import lvstun.pathcheck as pc

    class Direct(pc.Round):
        @staticmethod
        def open_sender(kind="ipip", v6=False):
            return socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)

    class Starved(Direct):
        # The thread does not run for 0.8 s after its first send (the minion busy elsewhere).
        def _start(self, attempt):
            super()._start(attempt)
            if sum(a.stage is not None for a in self.attempts.values()) == 1:
                time.sleep(0.8)

    probes = {key: pc.Probe(**spec) for key, spec in json.loads(sys.argv[1]).items()}
    kind = Starved if sys.argv[3:] == ["starved"] else Direct
    print(json.dumps(kind(sys.argv[2], probes).run()))
""")


@pytest.fixture(name="pair", scope="module")
def fixture_pair(tmp_path_factory):
    _require(os.geteuid() == 0, "namespaces and raw sockets need root")
    _require(shutil.which("ip"), "iproute2 is missing")
    for name in (DIRECTOR, SERVER):
        subprocess.run(["ip", "netns", "add", name], check=True)
    server = None
    try:
        subprocess.run(["ip", "link", "add", "d0", "netns", DIRECTOR, "type", "veth", "peer", "name", "s0",
                        "netns", SERVER], check=True)
        _ns(DIRECTOR, "ip", "addr", "add", "10.77.0.1/24", "dev", "d0")
        _ns(SERVER, "ip", "addr", "add", f"{VIP}/24", "dev", "s0")
        for name, dev in ((DIRECTOR, "d0"), (SERVER, "s0")):
            _ns(name, "ip", "link", "set", dev, "up")
            _ns(name, "ip", "link", "set", "lo", "up")
        _ns(SERVER, "ip", "route", "add", "10.77.9.0/24", "via", "10.77.0.1")
        cert, key = _certificate(tmp_path_factory.mktemp("tls"))
        server = subprocess.Popen(["ip", "netns", "exec", SERVER, sys.executable, "-c", SERVERS, cert, key],
                                  stdout=subprocess.PIPE, text=True)
        assert server.stdout.readline().strip() == "ready"
        yield cert
    finally:
        if server is not None:
            server.kill()
            server.wait()
        for name in (DIRECTOR, SERVER):
            subprocess.run(["ip", "netns", "del", name], check=False)


def run_round(probes, source=SOURCE, *extra):
    env = {**os.environ, "PYTHONPATH": os.path.join(REPO, "_utils")}
    proc = _ns(DIRECTOR, sys.executable, "-c", ROUND, json.dumps(probes), source, *extra, env=env, timeout=30)
    return {key: [tuple(outcome) for outcome in outcomes] for key, outcomes in json.loads(proc.stdout).items()}


def probe(kind, port, **extra):
    return {"kind": kind, "backend": VIP, "vip": VIP, "port": port, "timeout": 0.5, **extra}


def test_each_kind_passes_on_a_live_service_and_fails_on_a_dead_one(pair):
    began = time.monotonic()
    got = run_round({
        "tcp up": probe("tcp", 8080), "tcp refused": probe("tcp", 8081, tries=2),
        "http up": probe("http", 8080), "http 503": probe("http", 8080, path="/broken"),
        "udp up": probe("udp", 5353), "udp refused": probe("udp", 5354),
    })
    took = time.monotonic() - began
    assert got["tcp up"] == [(True, "connected through the tunnel")]
    # A refused connection is tried again at once: both failures within the round.
    assert got["tcp refused"] == [(False, "connection refused through the tunnel")] * 2
    assert got["http up"] == [(True, "HTTP 200 through the tunnel")]
    assert got["http 503"] == [(False, "HTTP 503, expected 200 (through the tunnel)")]
    assert got["udp up"] == [(True, "answered through the tunnel")]
    assert got["udp refused"] == [(False, "ICMP unreachable (code 3) through the tunnel")]
    assert took < 10, took  # nothing waited for its timeout (the interpreter's start included)


def test_no_answer_fails_after_the_timeout(pair):
    # An address on the veth's network that nobody holds: nothing answers.
    got = run_round({"silent": {**probe("tcp", 8080), "backend": "10.77.0.3", "vip": "10.77.0.3"}})
    assert got == {"silent": [(False, "no SYN-ACK within 0.5s (silent)")]}


def test_the_checks_leave_no_connection_behind_on_the_server(pair):
    run_round({"tcp": probe("tcp", 8080), "http": probe("http", 8080)})
    time.sleep(0.2)
    out = _ns(SERVER, "ss", "-Htn", "state", "all", f"( sport = :8080 and dst {SOURCE} )").stdout
    states = [line.split()[0] for line in out.splitlines()]
    assert not [s for s in states if s in ("SYN-RECV", "ESTAB", "CLOSE-WAIT")], out


LISTEN = textwrap.dedent("""
    import json, select, sys, time
    import lvstun.pathcheck as pc
    sock = pc._packet_socket(pc.answer_filter(bytes(map(int, sys.argv[1].split("."))), 61000, 61009))
    print("ready", flush=True)
    seen, end = [], time.monotonic() + 2
    while time.monotonic() < end:
        if select.select([sock], [], [], 0.1)[0]:
            protocol, source, body = pc.parse(sock.recv(65535))
            seen.append(body.decode(errors="replace")[-12:])
    print(json.dumps(seen))
""")

SEND = textwrap.dedent("""
    import socket, struct, sys
    import lvstun.pathcheck as pc
    src, dst, other = (socket.inet_aton(a) for a in sys.argv[1:4])
    tagged = lambda tag: tag.encode().rjust(12, b".")
    packets = [
        pc.udp_packet(src, dst, 53, 61005, tagged("udp-in")),
        pc.udp_packet(src, dst, 53, 61010, tagged("udp-above")),
        pc.tcp_packet(src, dst, 80, 60999, 1, 1, pc.ACK, tagged("tcp-below")),
        pc.tcp_packet(src, dst, 80, 61009, 1, 1, pc.ACK, tagged("tcp-in")),
        pc.udp_packet(src, other, 53, 61005, tagged("udp-other")),
    ]
    for ident, tag in ((77, "echo-other"), (78, "echo-other")):  # echo replies are no round's answers
        body = tagged(tag)
        head = struct.pack("!BBHHH", 0, 0, 0, ident, 1)
        packets.append(pc._ip(src, dst, socket.IPPROTO_ICMP,
                                struct.pack("!BBHHH", 0, 0, pc.checksum(head + body), ident, 1) + body))
    body = pc.udp_packet(dst, src, 61003, 53, b"") + tagged("unreach-in")
    head = struct.pack("!BBHI", 3, 3, 0, 0)
    packets.append(pc._ip(src, dst, socket.IPPROTO_ICMP,
                            struct.pack("!BBHI", 3, 3, pc.checksum(head + body), 0) + body))
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as sock:
        for packet in packets:
            sock.sendto(packet, (socket.inet_ntoa(packet[16:20]), 0))
""")


def test_the_filter_passes_only_this_rounds_answers(pair):
    env = {**os.environ, "PYTHONPATH": os.path.join(REPO, "_utils")}
    listener = subprocess.Popen(["ip", "netns", "exec", DIRECTOR, sys.executable, "-c", LISTEN, SOURCE],
                                stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert listener.stdout.readline().strip() == "ready"
        _ns(SERVER, sys.executable, "-c", SEND, VIP, SOURCE, "10.77.9.10", env=env)
        out, _ = listener.communicate(timeout=10)
    finally:
        listener.kill()
    seen = sorted(tag.strip(".") for tag in json.loads(out))
    assert seen == ["tcp-in", "udp-in", "unreach-in"]


def test_each_kind_of_real_server_check_against_real_services(pair):
    """``lvstun.probe.run`` as the real servers' beacon runs it (here from the other
    namespace): HTTP status sets and body, HTTPS with and without verification, DNS,
    and commands."""
    cert = pair
    base = {"address": VIP, "timeout": 0.5}
    http = {**base, "type": "http", "port": 8080, "path": "/health"}
    https = {**http, "type": "https", "port": 8443}
    dns = {**base, "type": "dns", "port": 5300, "protocol": "udp", "query": "web.example", "query_type": "A",
           "rcode": "NOERROR", "answer": None}
    checks = {
        "http range": {**http, "expect": [[200, 299]]},
        "http set misses": {**http, "expect": [[204, 204], [301, 302]]},
        "http body": {**http, "expect": [[200, 200]], "body": "status: (ok|degraded)"},
        "http body misses": {**http, "expect": [[200, 200]], "body": "^down"},
        "https unverified": {**https, "expect": [[200, 200]]},
        "https verified": {**https, "expect": [[200, 200]], "verify": True, "ca": cert, "host": "web.example"},
        "https wrong name": {**https, "expect": [[200, 200]], "verify": True, "ca": cert, "host": "other.example"},
        "https unknown ca": {**https, "expect": [[200, 200]], "verify": True, "host": "web.example"},
        "dns": dns,
        "dns address": {**dns, "answer": "10.77.0.2"},
        "dns over tcp": {**dns, "protocol": "tcp", "answer": "10.77.0.2"},
        "dns wrong address": {**dns, "answer": "10.77.0.9"},
        "dns nxdomain": {**dns, "query": "nothing.example"},
        "dns nxdomain expected": {**dns, "query": "nothing.example", "rcode": "NXDOMAIN"},
        "script": {**base, "type": "script", "port": 80, "command": [shutil.which("true")]},
        "script fails": {**base, "type": "script", "port": 80,
                         "command": [shutil.which("sh"), "-c", "echo no >&2; exit 3"]},
        "script hangs": {**base, "type": "script", "port": 80, "command": [shutil.which("sleep"), "5"]},
        "dynamic 7": {**base, "type": "script", "port": 80, "dynamic": True,
                      "command": [shutil.which("sh"), "-c", "exit 9"]},
        "dynamic 0": {**base, "type": "script", "port": 80, "dynamic": True, "command": [shutil.which("true")]},
        "dynamic down": {**base, "type": "script", "port": 80, "dynamic": True, "command": [shutil.which("false")]},
    }
    env = {**os.environ, "PYTHONPATH": os.path.join(REPO, "_utils")}
    got = json.loads(_ns(DIRECTOR, sys.executable, "-c", CHECKS, json.dumps(checks), env=env, timeout=60).stdout)
    verdicts = {key: ok for key, (ok, _, _) in got.items()}
    assert verdicts == {
        "http range": True, "http set misses": False, "http body": True, "http body misses": False,
        "https unverified": True, "https verified": True, "https wrong name": False, "https unknown ca": False,
        "dns": True, "dns address": True, "dns over tcp": True, "dns wrong address": False, "dns nxdomain": False,
        "dns nxdomain expected": True, "script": True, "script fails": False, "script hangs": False,
        "dynamic 7": True, "dynamic 0": True, "dynamic down": False,
    }, got
    # keepalived's misc_dynamic: exit 2-255 is up at weight status - 2, exit 0 at the pillar's.
    assert got["dynamic 7"][2] == 7 and got["dynamic 0"][2] is None and got["script"][2] is None
    assert got["http set misses"][1].endswith("HTTP 200, expected 204, 301-302")
    assert "body does not match" in got["http body misses"][1]
    assert got["dns nxdomain"][1].endswith("DNS NXDOMAIN, expected NOERROR")
    assert got["script fails"][1].endswith("exited 3: no") and "ran over 0.5s" in got["script hangs"][1]


def test_dns_and_http_bodies_through_the_tunnel(pair):
    dns = {**probe("dns", 5300), "query": ["web.example", "A", "NOERROR", "10.77.0.2"]}
    got = run_round({
        "dns": dns, "dns nxdomain": {**dns, "query": ["nothing.example", "A", "NOERROR", None]},
        "http body": {**probe("http", 8080), "path": "/health", "expect": [[200, 200]], "body": "ok$"},
        "http body misses": {**probe("http", 8080), "path": "/health", "expect": [[200, 200]], "body": "^x"},
    })
    assert got["dns"] == [(True, "DNS NOERROR with 10.77.0.2 through the tunnel")]
    assert got["dns nxdomain"] == [(False, "DNS NXDOMAIN, expected NOERROR through the tunnel")]
    assert got["http body"] == [(True, "HTTP 200 through the tunnel")]
    assert got["http body misses"][0][0] is False and "body does not match" in got["http body misses"][0][1]


def test_answers_that_came_in_time_count_though_the_thread_ran_late(pair):
    """A round whose thread sleeps past the timeout after sending (a busy minion) still
    finds the answers waiting in its socket: no false failure."""
    got = run_round({"tcp": probe("tcp", 8080), "udp": probe("udp", 5353)}, SOURCE, "starved")
    assert got == {"tcp": [(True, "connected through the tunnel")], "udp": [(True, "answered through the tunnel")]}
