"""The director's Prometheus exporter: a small HTTP server, one process, started by the
director's role (``lvs_exporter.running``) and again by its startup highstate after a
reboot.

Each scrape of ``/metrics`` reads the kernel's IPVS table with its counters (generic
netlink, ``lvstun.ipvsclient.Client.read_counters``), the site's view that Salt keeps
beside it (a JSON file, re-read only when it changed) and writes the text
(``lvstun.metrics.Text``, its labels kept between scrapes), followed by
``prometheus_client``'s process metrics (memory, CPU, open files) of this process and the
scrape's own duration; gzip-packed for a scraper that takes it (Prometheus does).

Run by hand::

    python -m lvstun.exporter --address 10.10.24.2 --port 9847 --view /var/cache/salt/minion/lvs/metrics-view.json
"""

import argparse
import http.server
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import zlib

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest

from . import metrics
from .address import join_hostport
from .ipvsclient import Client, IPVSError

log = logging.getLogger("lvstun.exporter")

GZIP_LEVEL = 1  # the text is repetitive: level 1 packs 5 MB into 0.2 MB at a fifth of level 6's cost
# zlib's memory level: a hash table of 4 KiB instead of 64 KiB (level 8, the default) packs
# 1,000 services x 10 backends' text 11 % faster on this machine's CPU (7.2 -> 6.4 ms) and
# 35 % faster on Debian's stock kernel under QEMU (608 -> 392 ms), into 7 % more bytes.
GZIP_MEMORY = 4
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # the text format lvstun.metrics writes

class Exporter:
    """What one scrape answers; safe to call from several threads (one netlink
    socket, used under a lock)."""

    def __init__(self, view_path):
        self.view_path = view_path
        self._view, self._view_key = {}, None
        self._client = None
        self._lock = threading.Lock()
        self._text = metrics.Text()
        self.registry = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self.registry)

    def view(self):
        """The site's view (``lvstun.metrics.view``); empty when Salt has not stored one."""
        try:
            stat = os.stat(self.view_path)
        except FileNotFoundError:
            return {}
        key = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if key != self._view_key:
            try:
                with open(self.view_path, encoding="utf-8") as fh:
                    self._view = json.load(fh)
            except (OSError, ValueError) as err:
                log.error("lvs exporter: cannot read the view %s: %s", self.view_path, err)
            self._view_key = key
        return self._view

    def table(self):
        """The kernel's table with counters, or None when it cannot be read (no ip_vs)."""
        try:
            if self._client is None:
                self._client = Client()
            return self._client.read_counters()
        except (OSError, IPVSError) as err:
            log.warning("lvs exporter: cannot read the IPVS table: %s", err)
            if self._client is not None:
                self._client.close()
            self._client = None
            return None

    def scrape(self):
        """The answer to a scrape, as byte chunks (one metric family each); a part kept
        from scrape to scrape comes as a :class:`Packed` chunk (its gzip member kept too)."""
        start = time.perf_counter()
        with self._lock:
            for chunk in self._text.chunks(self.table(), self.view()):
                if isinstance(chunk, metrics.Kept):
                    if chunk.packed is None:
                        data = chunk.encode()
                        chunk.packed = Packed(data)
                        chunk.packed.member = gzip_member(data)
                    yield chunk.packed
                else:
                    yield chunk.encode()
            yield generate_latest(self.registry)
        took = time.perf_counter() - start
        yield ("# HELP lvs_exporter_scrape_duration_seconds Time this scrape took.\n"
               "# TYPE lvs_exporter_scrape_duration_seconds gauge\n"
               f"lvs_exporter_scrape_duration_seconds {took:.6f}\n").encode()


class Packed(bytes):
    """A chunk with its own gzip member (``member``): a gzip answer carries it as it is,
    between the members of the rest (gzip readers, Prometheus' among them, read a
    stream of members as one)."""

    member = b""


def packer():
    """A gzip packer as the exporter packs its answers."""
    return zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31, GZIP_MEMORY)  # 31: gzip framing


def gzip_member(data):
    one = packer()
    return one.compress(data) + one.flush()


def accepts_gzip(header):
    """Whether an ``Accept-Encoding`` header takes gzip (Prometheus' scrapes do)."""
    for part in header.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            quality = params.strip().partition("=")[2] if params.strip().lower().startswith("q=") else "1"
            try:
                return float(quality) > 0
            except ValueError:
                return False
    return False


def _handler(exporter):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.split("?", 1)[0] == "/metrics":
                # Sent as it is made, without a length: HTTP/1.0, the end is the close.
                gzip = accepts_gzip(self.headers.get("Accept-Encoding", ""))
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                if gzip:
                    self.send_header("Content-Encoding", "gzip")
                self.end_headers()
                packing = packer() if gzip else None
                for chunk in exporter.scrape():
                    if packing and isinstance(chunk, Packed):  # a kept part: its member, between the others
                        self.wfile.write(packing.flush() + chunk.member)
                        packing = packer()
                    else:
                        self.wfile.write(packing.compress(chunk) if packing else chunk)
                if packing:
                    self.wfile.write(packing.flush())
                return
            body, code = (b"LVS director exporter: /metrics\n", 200) if self.path == "/" else (b"not found\n", 404)
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *args):  # no line per scrape
            pass

    return Handler


class _Server6(http.server.ThreadingHTTPServer):
    """The exporter on an IPv6 address (a director of an IPv6 site, or on ``::``)."""

    address_family = socket.AF_INET6


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m lvstun.exporter", description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", required=True, help="the address to listen on")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--view", required=True, help="the site's view, as Salt stores it")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    server_class = _Server6 if ":" in args.address else http.server.ThreadingHTTPServer
    server = server_class((args.address, args.port), _handler(Exporter(args.view)))
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    log.info("lvs exporter: listening on %s", join_hostport(args.address, args.port))
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
