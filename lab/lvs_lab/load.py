"""Load for the failover tests and benchmarks, sent from the lab's client namespace.

``python -m lvs_lab.load steady SECONDS INTERVAL TARGET...`` sends a new request to
every target (``tcp:ADDRESS:PORT`` an HTTP GET, ``udp:ADDRESS:PORT`` a datagram) every
INTERVAL seconds for SECONDS (or until a SIGTERM: :meth:`Running.stop`), each on a new
connection (a new flow for the router to hash) with a 1 s timeout, and prints ``[[start,
end, ok, target], ...]`` (wall-clock times, so the caller can line them up with a kill).

``python -m lvs_lab.load long COUNT SECONDS ADDRESS PORT`` opens COUNT downloads of
``/slow/SECONDS`` at once (each from its own client port, so they spread over the
directors) and prints, per download, the bytes it got of the bytes promised, who served
it and its error, if any: a connection that survived a failover got every byte.
"""

import json
import signal
import socket
import subprocess
import sys
import threading
import time

from lvs_lab import traffic

TIMEOUT = 1.0
_STOP = threading.Event()  # set by SIGTERM: a steady load ends early (its results printed)


def _one(target):
    protocol, rest = target.split(":", 1)
    address, port = rest.rsplit(":", 1)  # an IPv6 address has colons of its own
    if protocol == "udp":
        traffic.ask_udp(address, int(port), TIMEOUT)
    else:
        traffic.ask_http(address, int(port), TIMEOUT)


def steady(seconds, interval, targets):
    """Requests at a steady pace, each in its own thread (a slow answer delays none)."""
    results, lock, threads = [], threading.Lock(), []

    def run(target):
        start = time.time()
        try:
            _one(target)
            ok = True
        except OSError:
            ok = False
        with lock:
            results.append([start, time.time(), ok, target])

    end = time.monotonic() + seconds
    tick = time.monotonic()
    while tick < end and not _STOP.is_set():
        for target in targets:
            thread = threading.Thread(target=run, args=(target,))
            thread.start()
            threads.append(thread)
        tick += interval
        _STOP.wait(max(0.0, tick - time.monotonic()))
    for thread in threads:
        thread.join()
    return sorted(results)


def _download(address, port, seconds, out):
    got, served, error = 0, None, None
    try:
        with socket.create_connection((address, port), timeout=10) as sock:
            sock.sendall(f"GET /slow/{seconds} HTTP/1.0\r\nHost: {address}\r\n\r\n".encode())
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    raise OSError("closed before the headers")
                data += chunk
            head, body = data.split(b"\r\n\r\n", 1)
            headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:] if ": " in line)
            promised, served, got = int(headers["Content-Length"]), headers.get("X-Served-By"), len(body)
            while got < promised:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                got += len(chunk)
    except (OSError, KeyError, ValueError) as err:
        error = str(err) or type(err).__name__
        promised = locals().get("promised")
    out.append({"got": got, "promised": promised, "served_by": served, "error": error,
                "ok": error is None and promised is not None and got == promised})


def long_lived(count, seconds, address, port):
    out, threads = [], []
    for _ in range(count):
        thread = threading.Thread(target=_download, args=(address, port, seconds, out))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    return out


class Running:
    """This module running in the client namespace of the lab's site ``key`` (None: its
    first); :meth:`result` is its JSON."""

    def __init__(self, lab, *args, key=None):
        client = lab.client_of(lab.hosts[lab.site(key).router.minion_id]) if key else lab.hosts["client"]
        self.proc = subprocess.Popen(["ip", "netns", "exec", client.netns, sys.executable, "-m",
                                      "lvs_lab.load", *map(str, args)], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)

    def stop(self):
        """End a steady load now (what it sent so far is its result)."""
        self.proc.send_signal(signal.SIGTERM)

    def result(self, timeout=300):
        out, err = self.proc.communicate(timeout=timeout)
        if self.proc.returncode != 0:
            raise RuntimeError(f"lvs_lab.load failed: {err}")
        return json.loads(out)


def start_steady(lab, seconds, interval=0.05, key=None):
    """Steady requests to every service of the lab's site ``key`` (its public addresses)."""
    targets = [f"{svc.protocol}:{svc.public}:{svc.port}" for svc in lab.site(key).services.values()]
    return Running(lab, "steady", seconds, interval, *targets, key=key)


def start_downloads(lab, count, seconds, service="web", key=None):
    svc = lab.site(key).services[service]
    return Running(lab, "long", count, seconds, svc.public, svc.port, key=key)


def outage(results, at):
    """``(failed, ended, started)`` of a steady load's results around an event at ``at``:
    the failed requests that ended after it, how long after it the last one ended, and
    how long after it the last one started: the time until no new request fails (0.0
    when none failed)."""
    late = [r for r in results if not r[2] and r[1] >= at]
    return (len(late), max((r[1] - at for r in late), default=0.0),
            max((max(r[0] - at, 0.0) for r in late), default=0.0))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGTERM, lambda *_: _STOP.set())
    if argv and argv[0] == "steady" and len(argv) >= 4:
        print(json.dumps(steady(float(argv[1]), float(argv[2]), argv[3:])))
    elif argv and argv[0] == "long" and len(argv) == 5:
        print(json.dumps(long_lived(int(argv[1]), float(argv[2]), argv[3], int(argv[4]))))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
