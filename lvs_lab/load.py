"""Load for the failover tests and benchmarks, sent from the lab's client namespace.

``python -m lvs_lab.load steady SECONDS INTERVAL TARGET...`` sends a new request to
every target (``tcp:ADDRESS:PORT`` an HTTP GET, ``udp:ADDRESS:PORT`` a datagram) every
INTERVAL seconds for SECONDS, each on a new connection (a new flow for the router to
hash) with a 1 s timeout, and prints ``[[start, end, ok, target], ...]`` (wall-clock
times, so the caller can line them up with a kill).

``python -m lvs_lab.load long COUNT SECONDS ADDRESS PORT`` opens COUNT downloads of
``/slow/SECONDS`` at once (each from its own client port, so they spread over the
directors) and prints, per download, the bytes it got of the bytes promised, who served
it and its error, if any: a connection that survived a failover got every byte.
"""

import json
import socket
import sys
import threading
import time

from lvs_lab import traffic

TIMEOUT = 1.0


def _one(target):
    protocol, address, port = target.split(":")
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
    while tick < end:
        for target in targets:
            thread = threading.Thread(target=run, args=(target,))
            thread.start()
            threads.append(thread)
        tick += interval
        time.sleep(max(0.0, tick - time.monotonic()))
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


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "steady" and len(argv) >= 4:
        print(json.dumps(steady(float(argv[1]), float(argv[2]), argv[3:])))
    elif argv and argv[0] == "long" and len(argv) == 5:
        print(json.dumps(long_lived(int(argv[1]), float(argv[2]), argv[3], int(argv[4]))))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
