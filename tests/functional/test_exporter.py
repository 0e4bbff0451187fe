"""The exporter process (``python -m lvstun.exporter``) on this host, whose kernel has no
ip_vs: it answers a scrape with the site's services reported missing and the director
not up, its own process metrics, and re-reads the view when Salt replaces it."""

import gzip
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

import lvstun.exporter
import lvstun.metrics
import lvstun.site

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _site_view(**web):
    with open(os.path.join(REPO, "pillar", "lvs", "seed.sls"), encoding="utf-8") as fh:
        tree = yaml.safe_load(fh)
    tree["lvs"]["services"]["web"].update(web)
    return lvstun.metrics.view(lvstun.site.parse(tree))


@pytest.fixture(name="exporter")
def fixture_exporter(tmp_path):
    port, view = _free_port(), tmp_path / "view.json"
    view.write_text(json.dumps(_site_view()))
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "_utils"))
    proc = subprocess.Popen([sys.executable, "-m", "lvstun.exporter", "--address=127.0.0.1", f"--port={port}",
                             f"--view={view}"], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "slow"
            time.sleep(0.1)
    yield port, view
    proc.terminate()
    assert proc.wait(10) == 0  # SIGTERM ends it cleanly


def _scrape(port, encoding=None):
    """The samples of one scrape (``encoding``: the Accept-Encoding header sent)."""
    headers = {"Accept-Encoding": encoding} if encoding else {}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        body = answer.read()
        packed = answer.headers.get("Content-Encoding") == "gzip"
    assert packed == lvstun.exporter.accepts_gzip(encoding or "")
    text = (gzip.decompress(body) if packed else body).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_a_scrape_without_ip_vs_says_so_and_reads_a_new_view(exporter):
    port, view = exporter
    found = _scrape(port)
    assert found[("lvs_director_up", (("site", "seed"),))] == 0
    assert found[("lvs_service_present", (("service", "web"), ("site", "seed"), ("vip", "10.10.24.88")))] == 0
    assert found[("process_resident_memory_bytes", ())] > 0
    assert ("lvs_exporter_scrape_duration_seconds", ()) in found
    view.write_text(json.dumps(_site_view(port=8080)))  # Salt stores a new view
    found = _scrape(port)
    assert found[("lvs_service_info", (("port", "8080"), ("protocol", "tcp"), ("scheduler", "rr"),
                                       ("service", "web"), ("site", "seed"), ("vip", "10.10.24.88")))] == 1
    # Packed when the scraper takes gzip (Prometheus does), the same samples.
    numbers = {key: value for key, value in found.items() if key[0].startswith("lvs_") and "duration" not in key[0]}
    for encoding in ("gzip", "deflate, gzip;q=0.5", "gzip;q=0, identity"):
        again = _scrape(port, encoding)
        assert {key: again[key] for key in numbers} == numbers
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=10)
