"""Traffic through the lab: HTTP requests from ``client`` to a public address, and what
the director saw of them.

The director's view comes from iptables chains of the lab's own (``LVSLAB_PROBE``)
with counters for requests to the VIP, responses from the VIP and IPIP packets sent;
in TUN mode the responses must not cross the director at all.

Run as a module inside the client's namespace, it sends the requests itself:
``python -m lvs_lab.traffic URL COUNT`` prints ``{"answers": {name: n}, "failed": n}``.
"""

import collections
import json
import re
import sys
import urllib.request

from lvs_lab.lab import LabError

PROBE_CHAIN = "LVSLAB_PROBE"


def send(url, count, timeout=5.0):
    """GET ``url`` ``count`` times, each on a new connection; count who answered."""
    answers, failed = collections.Counter(), 0
    for _ in range(count):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                answers[resp.headers.get("X-Served-By", "?")] += 1
                resp.read()
        except OSError:
            failed += 1
    return {"answers": dict(answers), "failed": failed}


def probe_script(vip, protocol, port):
    """The shell script that (re)creates the director's counters.

    iptables, not nftables: the user-mode-linux kernel has no nftables for IPv4.
    """
    ipt = "iptables-legacy -t mangle"
    return "\n".join(
        [
            f"{ipt} -N {PROBE_CHAIN} 2>/dev/null || {ipt} -F {PROBE_CHAIN}",
            f"{ipt} -N {PROBE_CHAIN}_OUT 2>/dev/null || {ipt} -F {PROBE_CHAIN}_OUT",
            f"{ipt} -C PREROUTING -j {PROBE_CHAIN} 2>/dev/null || {ipt} -I PREROUTING -j {PROBE_CHAIN}",
            f"{ipt} -C POSTROUTING -j {PROBE_CHAIN}_OUT 2>/dev/null || {ipt} -I POSTROUTING -j {PROBE_CHAIN}_OUT",
            f"{ipt} -A {PROBE_CHAIN} -d {vip} -p {protocol} --dport {port} -m comment --comment requests",
            f"{ipt} -A {PROBE_CHAIN} -s {vip} -p {protocol} --sport {port} -m comment --comment responses",
            f"{ipt} -A {PROBE_CHAIN}_OUT -p 4 -m comment --comment ipip",
        ]
    )


def read_counters(save_output):
    """{comment: (packets, bytes)} from ``iptables-save -c``."""
    counters = {}
    for line in save_output.splitlines():
        match = re.match(r"\[(\d+):(\d+)\] -A " + PROBE_CHAIN + r".*--comment (\w+)", line)
        if match:
            counters[match.group(3)] = (int(match.group(1)), int(match.group(2)))
    return counters


def run(lab, site, count=30, service=None):
    """Send ``count`` requests from ``client`` to the first (or named) TCP service.

    Returns a report dict; ``report["ok"]`` says whether the TUN data path held: every
    request answered, every backend with weight > 0 answered, no response bytes
    through any director.
    """
    svc = site.services[service] if service else next(s for s in site.services.values() if s.protocol == "tcp")
    directors = [h.minion_id for h in site.directors]
    for director in directors:
        code, _, err = lab.capture(director, "sh", "-ec", probe_script(svc.vip, svc.protocol, svc.port))
        if code != 0:
            raise LabError(f"cannot install the probe counters on {director}: {err}")
    url = f"http://{svc.public}:{svc.port}/"
    code, out, err = lab.capture("client", sys.executable, "-m", "lvs_lab.traffic", url, str(count))
    if code != 0:
        raise LabError(f"the client could not send requests: {err}")
    sent = json.loads(out)
    seen = {}
    for director in directors:
        code, out, err = lab.capture(director, "iptables-legacy-save", "-c", "-t", "mangle")
        seen[director] = read_counters(out) if code == 0 else {}
    expected = sorted(b.minion_id for b in svc.backends if b.weight > 0)
    response_bytes = sum(c.get("responses", (0, 0))[1] for c in seen.values())
    requests_seen = sum(c.get("requests", (0, 0))[0] for c in seen.values())
    ok = (
        sent["failed"] == 0
        and sorted(sent["answers"]) == expected
        and response_bytes == 0
        and requests_seen > 0
    )
    return {
        "url": url,
        "count": count,
        "answers": sent["answers"],
        "failed": sent["failed"],
        "expected": expected,
        "directors": seen,
        "response_bytes_through_directors": response_bytes,
        "ok": ok,
    }


def describe(report):
    lines = [f"{report['count']} requests from client to {report['url']}: {report['failed']} failed"]
    for name in sorted(set(report["answers"]) | set(report["expected"])):
        lines.append(f"  answered by {name}: {report['answers'].get(name, 0)}")
    for director, counters in report["directors"].items():
        req = counters.get("requests", (0, 0))
        resp = counters.get("responses", (0, 0))
        ipip = counters.get("ipip", (0, 0))
        lines.append(
            f"  {director}: received {req[0]} request packets ({req[1]} bytes), sent {ipip[0]} IPIP "
            f"packets, saw {resp[0]} response packets ({resp[1]} bytes)"
        )
    lines.append(f"response bytes through the director(s): {report['response_bytes_through_directors']} "
                 f"(TUN mode: must be 0)")
    lines.append("TUN data path: " + ("OK" if report["ok"] else "NOT OK"))
    return "\n".join(lines)


if __name__ == "__main__":
    print(json.dumps(send(sys.argv[1], int(sys.argv[2]))))
