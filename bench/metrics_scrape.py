"""Benchmark: one scrape of a director's exporter at 1,000 services x 10 backends, against
node_exporter's IPVS collector (the exporter an operator would reach for) in the same run.

Runs inside a lab kernel that has ip_vs (it replaces that kernel's IPVS table):

.. code-block:: bash

    LVS_LAB_MEM=1024M lvs-lab up
    lvs-lab exec director -- $PWD/.venv/bin/python $PWD/bench/metrics_scrape.py

A site of SERVICES services over DESTS real servers is parsed (``lvstun.site``), its
table loaded with ``ipvsadm-restore`` and its view (``lvstun.metrics.view``) written
where the exporter reads it. Then ``lvstun.exporter`` and Debian's
``prometheus-node-exporter`` with only its ``ipvs`` collector are started side by side
and scraped in turns, RUNS times each (after one warm-up scrape each), asking for gzip as
Prometheus does: prints the median scrape time of each, their ratio, the samples and
bytes per scrape, and each process's peak and final resident memory. The director's own
exporter (which the lab's Prometheus scrapes every second) is paused meanwhile.

A UML kernel makes every system call and every new page expensive. ``--record FILE``
also saves the kernel's netlink replies of one table read; ``--replay FILE``, run on
the host, times the exporter's own work on them (decoding and the text) without a
kernel, where the CPU is the host's::

    .venv/bin/python bench/metrics_scrape.py --replay /tmp/replies.pickle
"""

import argparse
import gzip
import json
import os
import pickle
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "_utils"))

import lvstun.exporter  # noqa: E402
import lvstun.metrics  # noqa: E402
import lvstun.roles  # noqa: E402
import lvstun.site  # noqa: E402

NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
PACK_PORT, NODE_PORT = 19847, 19100


def site(services, dests):
    realservers = {f"rs{j + 1}": {"address": f"10.10.24.{21 + j}"} for j in range(dests)}
    return lvstun.site.parse({"lvs": {
        "lan": {"subnet": "10.0.0.0/8", "gateway": "10.0.0.1"},
        "router": {"id": "router", "wan_address": "112.2.21.88/24"},
        "directors": {"director": {"address": "10.10.24.2"}},
        "realservers": realservers,
        "services": {f"svc{i}": {"vip": f"10.{200 + i // 62500}.{i // 250 % 250}.{i % 250 + 1}", "port": 80,
                                 "scheduler": "wrr", "check": {"type": "tcp"}} for i in range(services)},
    }})


def restore_text(the_site):
    lines = []
    for spec, svc in lvstun.roles.ipvs_services(the_site).items():
        vip = spec.split(":", 1)[1]
        lines.append(f"-A -t {vip} -s {svc['scheduler']}")
        lines += [f"-a -t {vip} -r {dest} -i -w {d['weight']}" for dest, d in svc["destinations"].items()]
    return "\n".join(lines) + "\n"


def memory(pid):
    """(peak, now) resident memory of ``pid`` in MiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        fields = dict(line.split(":", 1) for line in fh)
    return tuple(int(fields[key].split()[0]) / 1024 for key in ("VmHWM", "VmRSS"))


def cpu_seconds(pid):
    """(user, system) CPU seconds ``pid`` has used (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks


def scrape(port):
    """One scrape as Prometheus makes it (``Accept-Encoding: gzip``), read by a client
    that does nothing else (it shares the director's CPU with the exporters):
    (seconds, the answer as sent)."""
    began = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(b"GET /metrics HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n")
        parts = []
        while data := sock.recv(1 << 20):
            parts.append(data)
    return time.perf_counter() - began, b"".join(parts)


def text(answer):
    """The exposition text of an answer (its body, gunzipped when it came packed)."""
    head, _, body = answer.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.") or b" 200 " not in head.split(b"\r\n", 1)[0]:
        sys.exit(f"a scrape failed: {head[:200]!r}")
    return gzip.decompress(body) if b"content-encoding: gzip" in head.lower() else body


def samples(body):
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))


def pause_other_exporters(own):
    """Stop (SIGSTOP) the director's own exporter, which the lab's Prometheus scrapes
    every second: it would take the CPU from the two measured. Returns their pids."""
    paused = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                args = fh.read().split(b"\0")
        except OSError:
            continue
        if b"lvstun.exporter" in args and int(pid) not in own:
            os.kill(int(pid), signal.SIGSTOP)
            paused.append(int(pid))
    return paused


def wait_answer(port, proc, what):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited ({proc.returncode})")
        try:
            text(scrape(port)[1])
            return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"{what} did not answer within 60 s")


def record(path):
    """Save the raw replies of one read of the table (services, then each one's dests)."""
    import lvstun.genl as genl  # noqa: PLC0415
    from lvstun.ipvsclient import Client  # noqa: PLC0415

    with Client() as client:
        services = client.dump("get_service")
        dests = [client.dump("get_dest", genl.service_key(genl.service_record(p))) for p in services]
    with open(path, "wb") as fh:
        pickle.dump({"services": services, "dests": dests}, fh)


def replay(path, runs, services, dests):
    """Time the decoding and the text of recorded replies, as the exporter does them."""
    import lvstun.genl as genl  # noqa: PLC0415

    with open(path, "rb") as fh:
        replies = pickle.load(fh)
    view = lvstun.metrics.view(site(services, dests))
    times = {"decode": [], "text": []}
    text = lvstun.metrics.Text()
    for _ in range(runs):
        began = time.perf_counter()
        services = [genl.service_record(p, stats=False) for p in replies["services"]]
        table = [(svc, genl.dest_counters(raw, svc["af"])) for svc, raw in zip(services, replies["dests"], strict=True)]
        decoded = time.perf_counter()
        size = sum(len(chunk.encode()) for chunk in text.chunks(table, view))
        times["decode"].append(decoded - began)
        times["text"].append(time.perf_counter() - decoded)
    print(f"replayed {len(table)} services' replies {runs} times on this machine's CPU, no kernel (the first "
          f"builds the text's templates): decoding "
          f"median {statistics.median(times['decode']):.3f} s, text median {statistics.median(times['text']):.3f} s "
          f"({size / 1e6:.1f} MB)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--dests", type=int, default=10)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--record", help="also save the kernel's replies of one table read here")
    parser.add_argument("--replay", help="time the exporter's work on saved replies (no kernel needed)")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--without", help="machinery switched off in the exporter (bench/machinery.py): "
                                          "uring,layouts")
    args = parser.parse_args()
    if args.replay:
        replay(args.replay, args.runs, args.services, args.dests)
        return
    if not os.path.exists(NODE_EXPORTER):
        sys.exit(f"{NODE_EXPORTER} is missing (Debian's prometheus-node-exporter: scripts/bootstrap installs it)")
    the_site = site(args.services, args.dests)
    subprocess.run(["ipvsadm", "-C"], check=True)
    subprocess.run(["ipvsadm-restore"], input=restore_text(the_site).encode(), check=True)
    if args.record:
        record(args.record)
    folder = tempfile.mkdtemp(prefix="lvs-metrics-bench-")
    view = os.path.join(folder, "view.json")
    with open(view, "w", encoding="utf-8") as fh:
        json.dump(lvstun.metrics.view(the_site), fh)
    without = [name for name in (args.without or "").split(",") if name]
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "_utils"))
    start = ([sys.executable, os.path.join(REPO, "bench", "machinery.py"), "--without", ",".join(without), "-m"]
             if without else [sys.executable, "-m"])
    procs = {
        "pack": subprocess.Popen([*start, "lvstun.exporter", "--address=127.0.0.1",
                                  f"--port={PACK_PORT}", f"--view={view}"], env=env),
        "node": subprocess.Popen([NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{NODE_PORT}",
                                  "--collector.disable-defaults", "--collector.ipvs"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    }
    ports = {"pack": PACK_PORT, "node": NODE_PORT}
    paused = pause_other_exporters({proc.pid for proc in procs.values()})
    try:
        for name, proc in procs.items():
            wait_answer(ports[name], proc, name)
        times, answers = {name: [] for name in procs}, {}
        for _ in range(args.runs):
            for name in procs:  # in turns: both see the same machine
                took, answers[name] = scrape(ports[name])
                times[name].append(took)
        bodies = {name: text(answer) for name, answer in answers.items()}
        entries = args.services * args.dests
        print(f"{args.services} services x {args.dests} backends ({entries} destinations), "
              f"{args.runs} scrapes each, in turns, after one warm-up scrape each, gzip asked for"
              + (f"; the director's own exporter paused (pids {paused})" if paused else ""))
        figures = {"kernel": os.uname().release, "destinations": entries, "runs": times, "without": args.without or ""}
        for name, label in (("pack", "lvstun.exporter"), ("node", "node_exporter --collector.ipvs")):
            peak, now = memory(procs[name].pid)
            figures[name] = {"median": statistics.median(times[name]), "samples": samples(bodies[name]),
                             "bytes": len(bodies[name]), "sent": len(answers[name]), "peak_mib": peak,
                             "cpu": cpu_seconds(procs[name].pid)}
            print(f"  {label:32} median {statistics.median(times[name]):.3f} s (min {min(times[name]):.3f}, "
                  f"max {max(times[name]):.3f}); {samples(bodies[name])} samples, {len(bodies[name]) / 1e6:.1f} MB "
                  f"({len(answers[name]) / 1e6:.2f} MB sent); "
                  f"memory peak {peak:.1f} MiB, now {now:.1f} MiB")
        ratio = statistics.median(times["pack"]) / statistics.median(times["node"])
        per_sample = ratio * samples(bodies["node"]) / samples(bodies["pack"])
        print(f"  ratio pack/node_exporter: {ratio:.2f}x per scrape, {per_sample:.2f}x per sample")
        for name in procs:
            user, system = figures[name]["cpu"]
            print(f"  CPU of {name} over its {args.runs + 1} scrapes and start: user {user:.2f} s, "
                  f"system {system:.2f} s")
        if args.json:
            with open(args.json, "w", encoding="utf-8") as fh:
                json.dump({**figures, "ratio": ratio}, fh)
    finally:
        for pid in paused:
            os.kill(pid, signal.SIGCONT)
        for proc in procs.values():
            proc.terminate()
            proc.wait(10)
        subprocess.run(["ipvsadm", "-C"], check=True)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
