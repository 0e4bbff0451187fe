"""Traffic through the lab: requests from ``client`` to a service's public address, and
what the director saw of them.

TCP services get HTTP requests, UDP services datagrams; each request is a new
connection (a new source port), so the director schedules every one. The director's
view comes from iptables chains of the lab's own (``LVSLAB_PROBE``) with counters for
requests to the VIP, responses from the VIP and the tunnelled packets it sent, of each
kind (IPIP: protocol 4, GUE: UDP to the service's GUE port, GRE: protocol 47; for an
IPv6 VIP ip6tables, and ip6ip6: protocol 41, counted as ipip); in TUN mode the
responses must not cross the director at all.

Run as a module inside the client's namespace, it sends the requests itself:
``python -m lvs_lab.traffic tcp|udp ADDRESS PORT COUNT [SOURCE_PORT]`` prints
``{"answers": {name: n}, "failed": n}``.
"""

import collections
import errno
import json
import re
import socket
import sys
import time
import urllib.request

from lvs_lab.system import LabError
from lvstun.address import join_hostport

PROBE_CHAIN = "LVSLAB_PROBE"


def send(protocol, address, port, count, timeout=5.0, source_port=None):
    """``count`` requests, each on a new connection; count who answered. With
    ``source_port`` (TCP) every connection leaves from that client port, one after the
    other, as a client behind NAT reusing its ports would: the director still holds the
    previous connection's entry when the next SYN comes."""
    answers, failed = collections.Counter(), 0
    for _ in range(count):
        try:
            if protocol == "udp":
                answers[ask_udp(address, port, timeout)] += 1
            elif source_port:
                answers[_ask_http_from(address, port, timeout, source_port)] += 1
            else:
                answers[ask_http(address, port, timeout)] += 1
        except OSError:
            failed += 1
    return {"answers": dict(answers), "failed": failed}


def _family(address):
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def ask_http(address, port, timeout):
    with urllib.request.urlopen(f"http://{join_hostport(address, port)}/", timeout=timeout) as resp:
        resp.read()
        return resp.headers.get("X-Served-By", "?")


def _ask_http_from(address, port, timeout, source_port):
    """One HTTP/1.0 request from ``source_port``. The server closes first, so the client
    keeps no TIME_WAIT; only its last ACK may still be on the way (the port is busy for
    that moment: wait for it)."""
    with socket.socket(_family(address), socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.settimeout(timeout)
        sock.bind(("", source_port))
        deadline = time.monotonic() + 1
        while True:
            try:
                sock.connect((address, port))
                break
            except OSError as err:
                if err.errno != errno.EADDRNOTAVAIL or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        sock.sendall(f"GET / HTTP/1.0\r\nHost: {join_hostport(address, port)}\r\n\r\n".encode())
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head = reply.split(b"\r\n\r\n", 1)[0].decode(errors="replace")
    if not head.startswith("HTTP/1.") or " 200 " not in head.split("\r\n", 1)[0]:
        raise OSError(f"unexpected answer: {head[:80]!r}")
    served = re.search(r"^X-Served-By: *(\S+)", head, re.MULTILINE | re.IGNORECASE)
    return served.group(1) if served else "?"


def ask_udp(address, port, timeout):
    with socket.socket(_family(address), socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.connect((address, port))  # answers from any other address are not ours
        sock.send(b"who?")
        text = sock.recv(2048).decode(errors="replace").strip()
    return text.removeprefix("served by ")


def probe_script(vip, protocol, port, director, gue_port=None):
    """The shell script that (re)creates the counters of the director whose LAN address
    is ``director``. Answers from the VIP to the director itself are its own path
    checks' (docs/health.md), not responses to clients: they are not counted. The
    tunnelled packets are counted by kind (``gue_port``: the service's, when it has one).

    iptables, not nftables: the user-mode-linux kernel has no nftables for IPv4 (nor
    IPv6); for an IPv6 VIP ip6tables, its tunnels (ip6ip6) protocol 41.
    """
    v6 = ":" in vip
    ipt = f"{'ip6tables' if v6 else 'iptables'}-legacy -t mangle"
    return "\n".join(
        [
            f"{ipt} -N {PROBE_CHAIN} 2>/dev/null || {ipt} -F {PROBE_CHAIN}",
            f"{ipt} -N {PROBE_CHAIN}_OUT 2>/dev/null || {ipt} -F {PROBE_CHAIN}_OUT",
            f"{ipt} -C PREROUTING -j {PROBE_CHAIN} 2>/dev/null || {ipt} -I PREROUTING -j {PROBE_CHAIN}",
            f"{ipt} -C POSTROUTING -j {PROBE_CHAIN}_OUT 2>/dev/null || {ipt} -I POSTROUTING -j {PROBE_CHAIN}_OUT",
            f"{ipt} -A {PROBE_CHAIN} -d {vip} -p {protocol} --dport {port} -m comment --comment requests",
            f"{ipt} -A {PROBE_CHAIN} -s {vip} ! -d {director} -p {protocol} --sport {port} "
            "-m comment --comment responses",
            f"{ipt} -A {PROBE_CHAIN}_OUT -p {41 if v6 else 4} -m comment --comment ipip",
            f"{ipt} -A {PROBE_CHAIN}_OUT -p 47 -m comment --comment gre",
        ] + ([f"{ipt} -A {PROBE_CHAIN}_OUT -p udp --dport {gue_port} -m comment --comment gue"] if gue_port else [])
    )


def read_counters(save_output):
    """{comment: (packets, bytes)} from ``iptables-save -c``."""
    counters = {}
    for line in save_output.splitlines():
        match = re.match(r"\[(\d+):(\d+)\] -A " + PROBE_CHAIN + r".*--comment (\w+)", line)
        if match:
            counters[match.group(3)] = (int(match.group(1)), int(match.group(2)))
    return counters


# How ``count`` new connections from one client must spread over a service's backends,
# by scheduler: the lab's verdict follows the scheduler, not the weights alone.
EQUAL, WEIGHTED, ONE, ANY = "equal", "weighted", "one", "any"
RULES = {
    EQUAL: "rr: equal shares among the backends of weight > 0 (rr ignores other weights)",
    WEIGHTED: "wrr: shares in proportion to the weights",
    ONE: "one client lands on one backend of weight > 0 ({why})",
    ANY: "{scheduler}: every answer from a backend of weight > 0 (shares depend on load, not on weights alone)",
}
# Hashing schedulers: the client's address picks the backend (sh, mh: unless the flag
# that adds its port is set; dh: the destination, always the same VIP here).
HASHING = {"sh": "sh-port", "mh": "mh-port", "dh": None}


def share_rule(service):
    """(rule, description): which spread of answers ``service``'s scheduler promises."""
    if service.persistent:
        return ONE, RULES[ONE].format(why=f"persistence, {service.persistent} s")
    if service.scheduler in HASHING and HASHING[service.scheduler] not in service.flags:
        return ONE, RULES[ONE].format(why=f"{service.scheduler} hashes the client's address")
    if service.scheduler == "rr":
        return EQUAL, RULES[EQUAL]
    if service.scheduler == "wrr":
        return WEIGHTED, RULES[WEIGHTED]
    return ANY, RULES[ANY].format(scheduler=service.scheduler)


def expected_shares(rule, backends, count):
    """{minion id: requests expected} under an EQUAL or WEIGHTED rule, else None."""
    live = {b.minion_id: b.weight for b in backends if b.weight > 0}
    if rule == EQUAL:
        return {mid: count / len(live) for mid in live} if live else {}
    if rule == WEIGHTED:
        total = sum(live.values())
        return {mid: count * weight / total for mid, weight in live.items()} if total else {}
    return None


def shares_hold(rule, answers, backends, count):
    """Whether the answers follow the rule: nobody of weight 0 (or unknown) answers, and
    the counts are within 10% of the count (at least 1) of the expected shares (EQUAL,
    WEIGHTED), or all come from one backend (ONE)."""
    live = {b.minion_id for b in backends if b.weight > 0}
    if not set(answers) <= live or sum(answers.values()) == 0:
        return False
    if rule == ONE:
        return len(answers) == 1
    expected = expected_shares(rule, backends, count)
    if expected is None:
        return True
    slack = max(1.0, 0.1 * count)
    return all(abs(answers.get(mid, 0) - want) <= slack for mid, want in expected.items())


def run(lab, site, count=30, service=None):
    """Send ``count`` requests from the site's client to the first (or named) service.

    Returns a report dict; ``report["ok"]`` says whether the TUN data path held: every
    request answered, the answers shared out as the weights say, no response bytes
    through any director.
    """
    svc = site.services[service] if service else next(iter(site.services.values()))
    if svc.protocol not in ("tcp", "udp"):
        raise LabError(f"the lab sends only TCP and UDP requests, not {svc.protocol}")
    directors = [h.minion_id for h in site.directors]
    for director in directors:
        gue_port = svc.encap.port if svc.encap.kind == "gue" else None
        code, _, err = lab.capture(director, "sh", "-ec", probe_script(svc.vip, svc.protocol, svc.port,
                                                                       site.hosts[director].address, gue_port))
        if code != 0:
            raise LabError(f"cannot install the probe counters on {director}: {err}")
    client = lab.client_of(lab.hosts[site.router.minion_id]).name
    code, out, err = lab.capture(client, sys.executable, "-m", "lvs_lab.traffic", svc.protocol, svc.public,
                                 str(svc.port), str(count))
    if code != 0:
        raise LabError(f"the client could not send requests: {err}")
    sent = json.loads(out)
    seen, live = {}, {}
    by_address = {b.address: b.minion_id for b in svc.backends}
    for director in directors:
        save = "ip6tables-legacy-save" if ":" in svc.vip else "iptables-legacy-save"
        code, out, err = lab.capture(director, save, "-c", "-t", "mangle")
        seen[director] = read_counters(out) if code == 0 else {}
        live[director] = {by_address.get(address, address): weight
                          for (service, address), weight in sorted(lab.director_weights(director).items())
                          if service == join_hostport(svc.vip, svc.port)}
    rule, rule_text = share_rule(svc)
    expected = expected_shares(rule, svc.backends, count)
    response_bytes = sum(c.get("responses", (0, 0))[1] for c in seen.values())
    requests_seen = sum(c.get("requests", (0, 0))[0] for c in seen.values())
    ok = sent["failed"] == 0 and shares_hold(rule, sent["answers"], svc.backends, count) and response_bytes == 0 \
        and requests_seen > 0
    return {
        "service": svc.name,
        "target": f"{svc.protocol} {join_hostport(svc.public, svc.port)}",
        "encap": svc.encap.kind,  # the counter of the directors' tunnelled packets that must grow
        "count": count,
        "answers": sent["answers"],
        "failed": sent["failed"],
        "scheduler": svc.scheduler,
        "rule": rule,
        "rule_text": rule_text,
        "expected": expected,
        "weights": {b.minion_id: b.weight for b in svc.backends},
        "directors": seen,
        "live_weights": live,  # {director: {backend: weight}} in its IPVS table after the requests
        "response_bytes_through_directors": response_bytes,
        "ok": ok,
    }


def describe(report):
    lines = [f"{report['count']} requests from client to {report['target']} (service {report['service']}): "
             f"{report['failed']} failed"]
    lines.append(f"  rule: {report['rule_text']}")
    for name in sorted(set(report["answers"]) | set(report["weights"])):
        expected = f", expected {report['expected'].get(name, 0):g}" if report["expected"] is not None else ""
        lines.append(f"  answered by {name}: {report['answers'].get(name, 0)} (weight {report['weights'].get(name)}"
                     f"{expected})")
    for director, counters in report["directors"].items():
        req = counters.get("requests", (0, 0))
        resp = counters.get("responses", (0, 0))
        sent = ", ".join(f"{counters.get(kind, (0, 0))[0]} {kind.upper()}" for kind in ("ipip", "gue", "gre")
                         if kind in counters)
        lines.append(
            f"  {director}: received {req[0]} request packets ({req[1]} bytes), sent tunnelled packets: {sent} "
            f"(its path checks' included), saw {resp[0]} response packets ({resp[1]} bytes)"
        )
    for director, weights in report.get("live_weights", {}).items():
        lines.append(f"  {director}'s weights after the requests: "
                     + ", ".join(f"{name} {weight}" for name, weight in weights.items()))
    lines.append(f"response bytes through the director(s): {report['response_bytes_through_directors']} "
                 f"(TUN mode: must be 0)")
    lines.append("TUN data path: " + ("OK" if report["ok"] else "NOT OK"))
    return "\n".join(lines)


if __name__ == "__main__":
    print(json.dumps(send(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]),
                          source_port=int(sys.argv[5]) if len(sys.argv) > 5 else None)))
