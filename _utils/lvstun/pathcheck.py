"""A backend's service checked from a director along the path IPVS forwards it.

The director sends the check as IPVS sends a client's packet in TUN mode: an IPv4
packet to the VIP (from the director's own LAN address), encapsulated as the service's
requests are (IPIP, GUE or GRE) to the real server; for an IPv6 VIP an IPv6 packet in
IPv6 (ip6ip6, IP protocol 41), in GUE over IPv6, or in GRE over IPv6. The real server decapsulates it,
its service answers from the VIP straight back to the director, and the answer proves
the whole path at once: the encapsulation passes between them (IP protocol 4, UDP to
the GUE port, or protocol 47), the real server takes it off, its tunnel device is up
and holds the VIP, the sysctls let the packet in, and the service answers.
keepalived's checks connect to the real server's own address and see none of that
(keepalived issue 306).

How: inner packets built here (TCP SYN, UDP datagram) go out on a raw IPPROTO_IPIP
socket, a UDP socket to the GUE port (a GUE header before each), or a raw IPPROTO_GRE
socket (a GRE header before each). The answer's source is the VIP, an address of the director itself, so
the director's kernel drops it as a martian; a packet socket sees it first (AF_PACKET,
with a classic BPF filter that passes only answers to this round's ports). TCP: a
SYN-ACK is up, a reset is down; for ``http`` the request goes with the ACK and the
answer decides: its first segment (the status line), or with a body regex the
segments until it matches, the server ends or 64 KiB came (they are not acknowledged:
the server sends what its window allows). Every connection is reset at the end,
so the real server keeps no half-open state. UDP: any answer from VIP:port (an ICMP
port unreachable is down at once); ``dns``: the check's query, its answer judged as
on the real servers.

IPv6: the same over a raw IPPROTO_IPV6 socket (GUE: a UDP socket for IPv6, its header
naming protocol 41; GRE: a raw IPPROTO_GRE socket for IPv6, protocol type 0x86DD), answers seen by a packet socket for
IPv6 (its filter on the IPv6 header; answers whose next header is TCP, UDP or ICMPv6,
as the real server's kernel sends them: no extension headers). An answer from the VIP,
when the director holds it, is taken by its kernel (IPv6 has no martian check): its TCP
stack resets to the VIP, that is to itself; the packet socket has the answer first.

Needs root (raw and packet sockets).
"""

import contextlib
import ctypes
import dataclasses
import random
import select
import socket
import struct
import time

from . import dnsmsg
from .probe import checksum, http_request, http_verdict

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
IPPROTO_ICMPV6 = 58
SO_ATTACH_FILTER = 26
PORTS = (61000, 65535)  # the inner source ports (above Linux's ephemeral range)
RETRY_AFTER = 0.05  # seconds before a probe that failed at once is sent again
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
MSS = 1360  # fits a 1500-byte LAN with any encapsulation's header and room to spare
# GUE version 0 without options, carrying IP protocol 4 (RFC draft-ietf-intarea-gue), or
# 41 for an inner IPv6 packet; GRE without options, carrying IPv4 (RFC 2784) or IPv6.
GUE_HEADER = struct.pack("!BBH", 0, socket.IPPROTO_IPIP, 0)
GUE_HEADER6 = struct.pack("!BBH", 0, socket.IPPROTO_IPV6, 0)
GRE_HEADER = struct.pack("!HH", 0, ETH_P_IP)
GRE_HEADER6 = struct.pack("!HH", 0, ETH_P_IPV6)
IPPROTO_GRE = 47
SILENT = " (silent)"  # ends the reason of an attempt that got no answer at all (not a refusal)


@dataclasses.dataclass
class Probe:
    """One backend's check: ``kind`` tcp, http, udp or dns; ``backend`` the real
    server's LAN address (the tunnel's end); ``tries``: attempts within ``timeout``
    when one fails at once (refused), so that ``fall`` failures can come in one round."""

    kind: str
    backend: str
    vip: str
    port: int
    timeout: float
    tries: int = 1
    path: str = "/"
    expect: object = 200  # an HTTP status, or [[low, high], ...]
    body: str = None  # a regex the first data segment's body must match
    host: str = None  # the Host header (else the VIP)
    query: tuple = None  # dns: (name, type, rcode, answer)
    encap: tuple = ("ipip", 0)  # how IPVS wraps this service's requests: (kind, GUE port)


def _ip(source, destination, protocol, payload):
    """An IP packet: IPv4 for 4-byte addresses, IPv6 for 16-byte ones."""
    if len(source) == 16:
        return struct.pack("!IHBB16s16s", 6 << 28, len(payload), protocol, 64, source, destination) + payload
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), random.getrandbits(16), 0x4000, 64,
                         protocol, 0, source, destination)
    return header[:10] + struct.pack("!H", checksum(header)) + header[12:] + payload


def _with_checksum(source, destination, protocol, segment, at):
    if len(source) == 16:  # RFC 8200 8.1: the IPv6 pseudo-header
        pseudo = source + destination + struct.pack("!IxxxB", len(segment), protocol)
    else:
        pseudo = source + destination + struct.pack("!BBH", 0, protocol, len(segment))
    return segment[:at] + struct.pack("!H", checksum(pseudo + segment)) + segment[at + 2:]


def tcp_packet(source, destination, sport, dport, seq, ack, flags, payload=b""):
    """An IP packet with a TCP segment (a SYN carries an MSS option); IPv4 or IPv6 by
    the addresses' length (packed: 4 or 16 bytes)."""
    options = struct.pack("!BBH", 2, 4, MSS) if flags & SYN else b""
    header = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, (20 + len(options)) // 4 << 4, flags, 65535, 0,
                         0) + options
    return _ip(source, destination, socket.IPPROTO_TCP,
               _with_checksum(source, destination, socket.IPPROTO_TCP, header + payload, 16))


def udp_packet(source, destination, sport, dport, payload):
    segment = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return _ip(source, destination, socket.IPPROTO_UDP,
               _with_checksum(source, destination, socket.IPPROTO_UDP, segment, 6))


_PROTOCOL = {"tcp": socket.IPPROTO_TCP, "http": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP,
             "dns": socket.IPPROTO_UDP}

# Classic BPF, as the kernel's struct sock_filter: (code, jump if true, jump if false, k).
_LD_W_ABS, _LD_H_ABS, _LD_B_ABS = 0x20, 0x28, 0x30
_LD_H_IND, _LD_B_IND, _LDX_MSH = 0x48, 0x50, 0xB1
_JEQ, _JGT, _JGE, _RET = 0x15, 0x25, 0x35, 0x06


def answer_filter(destination, first_port, last_port):
    """The BPF program a packet socket of one round keeps (on IPv4 packets from the
    network header on): TCP or UDP to ``destination`` on a port in ``[first_port,
    last_port]``, and ICMP unreachables to it."""
    program = [
        ("", _LD_W_ABS, None, None, 16), ("", _JEQ, None, "drop", int.from_bytes(destination, "big")),
        ("", _LD_B_ABS, None, None, 9), ("", _JEQ, "ports", None, socket.IPPROTO_TCP),
        ("", _JEQ, "ports", None, socket.IPPROTO_UDP), ("", _JEQ, "icmp", "drop", socket.IPPROTO_ICMP),
        ("ports", _LDX_MSH, None, None, 0), ("", _LD_H_IND, None, None, 2),
        ("", _JGE, None, "drop", first_port), ("", _JGT, "drop", "accept", last_port),
        ("icmp", _LDX_MSH, None, None, 0), ("", _LD_B_IND, None, None, 0),
        ("", _JEQ, "accept", "drop", 3),
        ("accept", _RET, None, None, 0xFFFF), ("drop", _RET, None, None, 0),
    ]
    return _assemble(program)


def _assemble(program):
    labels = {label: index for index, (label, *_) in enumerate(program) if label}

    def jump(target, index):
        return 0 if target is None else labels[target] - index - 1

    return b"".join(struct.pack("=HBBI", op, jump(true, index), jump(false, index), k)
                    for index, (_, op, true, false, k) in enumerate(program))


def answer_filter6(destination, first_port, last_port):
    """:func:`answer_filter` for IPv6 packets (a fixed 40-byte header, no extension
    header): TCP or UDP to ``destination`` on a port in ``[first_port, last_port]``, and
    ICMPv6 destination unreachables to it."""
    words = struct.unpack("!4I", destination)
    program = []
    for index, word in enumerate(words):
        program += [("", _LD_W_ABS, None, None, 24 + 4 * index), ("", _JEQ, None, "drop", word)]
    program += [
        ("", _LD_B_ABS, None, None, 6), ("", _JEQ, "ports", None, socket.IPPROTO_TCP),
        ("", _JEQ, "ports", None, socket.IPPROTO_UDP), ("", _JEQ, "icmp", "drop", IPPROTO_ICMPV6),
        ("ports", _LD_H_ABS, None, None, 42),
        ("", _JGE, None, "drop", first_port), ("", _JGT, "drop", "accept", last_port),
        ("icmp", _LD_B_ABS, None, None, 40), ("", _JEQ, "accept", "drop", 1),
        ("accept", _RET, None, None, 0xFFFF), ("drop", _RET, None, None, 0),
    ]
    return _assemble(program)


def _packet_socket(program, ethertype=ETH_P_IP):
    """A packet socket for IPv4 (or ``ethertype``) that passes only what ``program``
    accepts (anything queued before the filter was attached is read off and dropped)."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ethertype))
    try:
        code = ctypes.create_string_buffer(program)
        fprog = struct.pack("HL", len(program) // 8, ctypes.addressof(code))
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        sock.setblocking(False)
        while True:
            try:
                sock.recv(65535)
            except BlockingIOError:
                break
    except OSError:
        sock.close()
        raise
    return sock


def parse(packet):
    """``(protocol, source, body)`` of an IPv4 or IPv6 packet (``body``: its payload,
    without the link layer's padding; IPv6: the next header's), or None when it is too
    short to be one."""
    if len(packet) >= 40 and packet[0] >> 4 == 6:
        return packet[6], packet[8:24], packet[40:40 + struct.unpack("!H", packet[4:6])[0]]
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    ihl, total = (packet[0] & 0x0F) * 4, struct.unpack("!H", packet[2:4])[0]
    return packet[9], packet[12:16], packet[ihl:total]


def _pack(address):
    """An address as the packets carry it (4 or 16 bytes)."""
    return socket.inet_pton(socket.AF_INET6 if ":" in address else socket.AF_INET, address)


class _Attempt:
    """One probe's attempts in a round, as a small state machine over the answers."""

    def __init__(self, probe, sport, began):
        self.probe, self.sport = probe, sport
        self.deadline = None  # the first send's time + the timeout (its retries fit in it)
        self.outcomes, self.send_at, self.stage, self.isn = [], began, None, 0
        self.vip = _pack(probe.vip)

    @property
    def done(self):
        return self.stage == "done"

    def finish(self, ok, reason, now):
        """One attempt ended: another one follows if it failed early and tries remain."""
        self.outcomes.append((ok, reason))
        failed = sum(1 for passed, _ in self.outcomes if not passed)
        if ok or failed >= self.probe.tries or now + RETRY_AFTER >= self.deadline:
            self.stage = "done"
        else:
            self.stage, self.send_at = None, now + RETRY_AFTER


class Round:
    """The probes of one round, sent and answered over two sockets of its own."""

    def __init__(self, source, probes):
        self.source = _pack(source)
        self.v6 = len(self.source) == 16
        mixed = sorted(key for key, probe in probes.items() if (":" in probe.vip) != self.v6)
        if mixed:
            raise ValueError(f"probes of another IP version than the source {source}: {mixed}")
        span = PORTS[1] - PORTS[0] + 1
        count = min(len(probes), span)
        first = random.randint(PORTS[0], PORTS[1] - count + 1)
        began = time.monotonic()
        # An answer is known by (protocol, VIP, service port, our port): probes of
        # different services may share a source port, so a round takes any number.
        self.attempts = {key: _Attempt(probe, PORTS[0] + (first - PORTS[0] + index) % span, began)
                         for index, (key, probe) in enumerate(sorted(probes.items()))}
        self.by_answer = {(_PROTOCOL.get(a.probe.kind), a.vip, a.probe.port, a.sport): a
                          for a in self.attempts.values()}
        last = first + count - 1
        self.ports = (first, last) if last <= PORTS[1] else PORTS

    def run(self):
        """``{key: [(ok, reason), ...]}``: every attempt's outcome, in order."""
        if not self.attempts:
            return {}
        if self.v6:
            listening = _packet_socket(answer_filter6(self.source, *self.ports), ETH_P_IPV6)
        else:
            listening = _packet_socket(answer_filter(self.source, *self.ports))
        self.senders = {}  # kind -> its socket, opened at its first probe
        with listening as listener, contextlib.ExitStack() as senders:
            senders.callback(lambda: [sock.close() for sock in self.senders.values()])
            while True:
                # What came in is read before any deadline is judged: a thread that did
                # not run for a while (the minion busy with a state run) finds the
                # answers that came in time waiting in the socket, not a timeout.
                self._read(listener)
                now = time.monotonic()
                for attempt in self.attempts.values():
                    if attempt.stage is None and attempt.send_at <= now:
                        self._start(attempt)
                    elif not attempt.done and attempt.deadline is not None and now >= attempt.deadline:
                        self._give_up(attempt, now)
                pending = [a for a in self.attempts.values() if not a.done]
                if not pending:
                    break
                wake = min(a.deadline if a.stage is not None else a.send_at for a in pending)
                select.select([listener], [], [], max(0.0, wake - time.monotonic()))
        return {key: attempt.outcomes for key, attempt in self.attempts.items()}

    @staticmethod
    def open_sender(kind="ipip", v6=False):
        """The socket that carries the inner packets of ``kind``: raw IPIP or GRE, or UDP
        for GUE; ``v6``: over IPv6 (raw IPv6-in-IPv6 for ipip)."""
        family = socket.AF_INET6 if v6 else socket.AF_INET
        if kind == "gue":
            return socket.socket(family, socket.SOCK_DGRAM)
        inner = socket.IPPROTO_IPV6 if v6 else socket.IPPROTO_IPIP
        return socket.socket(family, socket.SOCK_RAW, IPPROTO_GRE if kind == "gre" else inner)

    def _send(self, attempt, inner):
        kind, port = attempt.probe.encap
        sender = self.senders.get(kind)
        if sender is None:
            sender = self.senders[kind] = self.open_sender(kind, self.v6)
        if kind == "gue":
            sender.sendto((GUE_HEADER6 if self.v6 else GUE_HEADER) + inner, (attempt.probe.backend, port))
        elif kind == "gre":
            sender.sendto((GRE_HEADER6 if self.v6 else GRE_HEADER) + inner, (attempt.probe.backend, 0))
        else:
            sender.sendto(inner, (attempt.probe.backend, 0))

    def _tcp(self, attempt, seq, ack, flags, payload=b""):
        self._send(attempt, tcp_packet(self.source, attempt.vip, attempt.sport, attempt.probe.port, seq, ack,
                                       flags, payload))

    def _start(self, attempt):
        probe = attempt.probe
        if attempt.deadline is None:
            attempt.deadline = time.monotonic() + probe.timeout
        try:
            if probe.kind in ("tcp", "http"):
                attempt.isn = random.getrandbits(32)
                self._tcp(attempt, attempt.isn, 0, SYN)
                attempt.stage = "syn"
            else:
                payload = b"lvs-pack-check\n"
                if probe.kind == "dns":
                    attempt.dns_id, payload = dnsmsg.query(*probe.query[:2])
                self._send(attempt, udp_packet(self.source, attempt.vip, attempt.sport, probe.port, payload))
                attempt.stage = "sent"
        except OSError as err:
            attempt.finish(False, f"cannot send to {probe.backend}: {err.strerror or err}", time.monotonic())

    def _give_up(self, attempt, now):
        what = {"syn": "no SYN-ACK", "request": "no HTTP answer", "sent": "no answer"}.get(attempt.stage, "no answer")
        if attempt.stage in ("syn", "request"):
            self._reset(attempt, len(attempt.request) if attempt.stage == "request" else 0)
        attempt.outcomes.append((False, f"{what} within {attempt.probe.timeout:g}s{SILENT}"))
        attempt.stage = "done"

    def _reset(self, attempt, sent=0):
        try:
            self._tcp(attempt, (attempt.isn + 1 + sent) & 0xFFFFFFFF, 0, RST)
        except OSError:
            pass  # the real server drops the half-open connection by itself

    def _read(self, listener):
        while True:
            try:
                packet = listener.recv(65535)
            except BlockingIOError:
                return
            parsed = parse(packet)
            if parsed is None:
                continue
            protocol, source, body = parsed
            if protocol in (socket.IPPROTO_ICMP, IPPROTO_ICMPV6):
                self._icmp(body)
            elif protocol in (socket.IPPROTO_TCP, socket.IPPROTO_UDP) and len(body) >= 8:
                sport, dport = struct.unpack("!HH", body[:4])
                attempt = self.by_answer.get((protocol, source, sport, dport))
                if attempt and not attempt.done:
                    (self._tcp_answer if protocol == socket.IPPROTO_TCP else self._udp_answer)(attempt, body)

    def _udp_answer(self, attempt, body):
        if attempt.stage != "sent":
            return
        if attempt.probe.kind == "dns":
            ok, reason = dnsmsg.verdict(body[8:], attempt.dns_id, *attempt.probe.query[2:])
            attempt.finish(ok, f"{reason} through the tunnel", time.monotonic())
        elif attempt.probe.kind == "udp":
            attempt.finish(True, "answered through the tunnel", time.monotonic())

    def _tcp_answer(self, attempt, body):
        if len(body) < 20 or attempt.probe.kind not in ("tcp", "http"):
            return
        seq, ack, offset, flags = struct.unpack("!IIBB", body[4:14])
        payload = body[(offset >> 4) * 4:]
        now = time.monotonic()
        if attempt.stage == "syn" and flags & RST and ack == (attempt.isn + 1) & 0xFFFFFFFF:
            attempt.finish(False, "connection refused through the tunnel", now)
        elif attempt.stage == "syn" and flags & (SYN | ACK) == SYN | ACK and ack == (attempt.isn + 1) & 0xFFFFFFFF:
            if attempt.probe.kind == "tcp":
                self._reset(attempt)
                attempt.finish(True, "connected through the tunnel", now)
                return
            attempt.request = http_request(attempt.probe.path, attempt.probe.host or attempt.probe.vip)
            attempt.answer = {}  # sequence number -> payload (retransmissions overwrite)
            self._tcp(attempt, (attempt.isn + 1) & 0xFFFFFFFF, (seq + 1) & 0xFFFFFFFF, ACK | PSH, attempt.request)
            attempt.stage = "request"
        elif attempt.stage == "request" and flags & RST:
            attempt.finish(False, "reset after the HTTP request", now)
        elif attempt.stage == "request" and (payload or flags & FIN):
            attempt.answer[seq] = payload
            self._judge(attempt, bool(flags & FIN), now)

    def _judge(self, attempt, ended, now):
        """Decide on the HTTP answer so far: at its first segment without a body regex;
        with one, once it matches, the status fails, the server ends, or 64 KiB came."""
        answer = b"".join(part for _, part in sorted(attempt.answer.items()))
        probe = attempt.probe
        try:
            reason = http_verdict(answer, probe.expect, probe.body)
        except OSError as err:
            final = probe.body is None or ended or len(answer) >= 65536 or "body does not match" not in str(err)
            if not final:
                return
            ok, reason = False, f"{err} (through the tunnel)"
        else:
            ok, reason = True, f"{reason} through the tunnel"
        self._reset(attempt, len(attempt.request))
        attempt.finish(ok, reason, now)

    def _icmp(self, body):
        """An ICMP (ICMPv6) unreachable about one of this round's UDP datagrams: down at once."""
        if len(body) >= 8 and body[0] == (1 if self.v6 else 3):
            inner = parse(body[8:])
            if inner is None or len(inner[2]) < 4:
                return
            sport, dport = struct.unpack("!HH", inner[2][:4])
            destination = body[8 + 24:8 + 40] if self.v6 else body[8 + 16:8 + 20]  # ours: to VIP:port
            attempt = self.by_answer.get((inner[0], destination, dport, sport))
            if attempt and not attempt.done and attempt.stage == "sent":
                attempt.finish(False, f"ICMP unreachable (code {body[1]}) through the tunnel", time.monotonic())


def run(source, probes):
    """Check every probe of ``{key: Probe}`` at once from ``source`` (the director's LAN
    address): ``{key: [(ok, reason), ...]}``, one outcome per attempt. Takes at most the
    longest probe's timeout.

    .. code-block:: python

        run("10.10.24.2", {"web rs1": Probe("http", "10.10.24.21", "10.10.24.88", 80, 0.5, tries=2)})
    """
    return Round(source, probes).run()
