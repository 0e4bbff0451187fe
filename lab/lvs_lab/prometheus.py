"""The lab's Prometheus server: Debian's ``prometheus``, run by ``lvs-lab up`` in the
lab's switch namespace on the management network (``172.31.254.1:9090``), scraping every
director's exporter there every second and evaluating the pack's alert rules
(``prometheus/lvs.rules.yml``). Its files live in the lab's state folder; ``down``
stops it with every other lab process.

The directors serve their metrics on the management network because the lab's pillar
overlay says so (``lvs:metrics:listen``, ``lab/lvs_lab/lab.py``); a site's own default is
its LAN.
"""

import json
import os
import subprocess
import time
import urllib.parse

import yaml

from lvs_lab import plan

BINARY = "/usr/bin/prometheus"
PORT = 9090
JOB = "lvs-directors"  # the job name the alert rules expect for the directors' targets
RULES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "prometheus",
                     "lvs.rules.yml")  # the checkout: lab/lvs_lab/..


def config(targets, rules=RULES, interval="1s"):
    """Prometheus' configuration: one job scraping ``targets`` (``host:port``)."""
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [rules],
        "scrape_configs": [{"job_name": JOB, "scrape_timeout": interval,
                            "static_configs": [{"targets": sorted(targets)}]}],
    }


class Prometheus:
    """The lab's server: started, asked, waited on."""

    def __init__(self, folder, address=plan.MASTER_ADDRESS, port=PORT):
        self.folder, self.address, self.port = folder, address, port

    @property
    def url(self):
        return f"http://{self.address}:{self.port}"

    def start(self, targets):
        """Write the configuration and start the server in the switch namespace; return
        once it is ready. Raise RuntimeError (with its log's end) when it is not."""
        os.makedirs(os.path.join(self.folder, "data"), exist_ok=True)
        conf = os.path.join(self.folder, "prometheus.yml")
        with open(conf, "w", encoding="utf-8") as fh:
            yaml.safe_dump(config(targets), fh)
        log = os.path.join(self.folder, "prometheus.log")
        with open(log, "ab") as out:
            subprocess.Popen(
                ["ip", "netns", "exec", plan.SWITCH_NS, BINARY, f"--config.file={conf}",
                 f"--storage.tsdb.path={self.folder}/data", f"--web.listen-address={self.address}:{self.port}",
                 "--storage.tsdb.retention.time=1d", "--log.level=warn"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with self._open("/-/ready", timeout=1) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        with open(log, encoding="utf-8", errors="replace") as fh:
            tail = fh.read()[-800:]
        raise RuntimeError(f"the lab's Prometheus did not become ready in 60 s; {log} ends:\n{tail}")

    def _open(self, path, timeout=10):
        # The server listens inside the switch namespace: ask it from there.
        return _NetnsAnswer(self.url + path, timeout)

    def query(self, promql):
        """The instant vector of ``promql``: ``[(labels, value)]``."""
        with self._open("/api/v1/query?" + urllib.parse.urlencode({"query": promql})) as answer:
            body = json.loads(answer.read())
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus refused {promql!r}: {body}")
        return [(item["metric"], float(item["value"][1])) for item in body["data"]["result"]]

    def alerts(self):
        """The alerts Prometheus has pending or firing: ``[{"labels", "state"}]``."""
        with self._open("/api/v1/alerts") as answer:
            return json.loads(answer.read())["data"]["alerts"]

    def wait(self, promql, predicate, timeout, what=None):
        """Wait until ``predicate(query(promql))`` holds; return the result, or raise
        TimeoutError with the last one."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if predicate(result):
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what or promql}: not so after {timeout} s; last: {result}")
            time.sleep(0.5)


class _NetnsAnswer:
    """An HTTP GET made from inside the switch namespace (curl there), as a context
    manager with ``status`` and ``read()``: this process stays in its own namespace."""

    def __init__(self, url, timeout):
        proc = subprocess.run(
            ["ip", "netns", "exec", plan.SWITCH_NS, "curl", "-sS", "-g", "--max-time", str(timeout),
             "-w", "\n%{http_code}", url], capture_output=True, timeout=timeout + 10, check=False)
        if proc.returncode != 0:
            raise OSError(f"curl {url}: {proc.stderr.decode(errors='replace').strip()}")
        body, _, code = proc.stdout.rpartition(b"\n")
        self.status, self._body = int(code), body

    def read(self):
        return self._body

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
