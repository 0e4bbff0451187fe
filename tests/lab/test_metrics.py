"""The directors' metrics, through the lab's real Prometheus server (Debian's package, on
the management network): every director scraped, counters moving with the traffic the
lab sends, health and drains following the real servers, the alert rules evaluated; and
``salt-run lvs.status`` printed as tables by default."""

import os
import subprocess

from lvs_lab import health as hh
from lvs_lab import plan, traffic
from lvs_lab.system import BIN

WEB = 'site="seed",service="web"'


def _by_backend(prom, metric):
    return {labels["backend"]: value for labels, value in prom.query(f"{metric}{{{WEB}}}")}


def test_prometheus_scrapes_every_director_on_the_management_network_only(healthy):
    lab, prom = healthy, healthy.prometheus
    directors = [h for h in lab.hosts.values() if h.role == "director"]
    found = prom.wait("lvs_director_up == 1", lambda r: len(r) == len(directors), 30, "every director scraped")
    assert {labels["instance"] for labels, _ in found} == {f"{h.mgmt_ip}:9847" for h in directors}
    assert {labels["instance"] for labels, _ in prom.query('up{job="lvs-directors"} == 1')} == \
        {f"{h.mgmt_ip}:9847" for h in directors}
    # Not on the LAN (and so not on the VIP either): the site's pillar says the management network.
    director = lab.site().directors[0]
    code, _, _ = lab.capture("rs1", "curl", "-s", "-m", "3", f"http://{director.address}:9847/metrics")
    assert code != 0
    assert prom.query(f'lvs_service_present{{{WEB},vip="10.10.24.88"}}')[0][1] == 1
    assert prom.query(f'lvs_service_info{{{WEB},port="80",protocol="tcp",scheduler="rr"}}')[0][1] == 1


def test_the_counters_move_with_the_traffic_the_lab_sends(healthy):
    lab, prom = healthy, healthy.prometheus
    prom.wait(f"lvs_backend_connections_total{{{WEB}}}", lambda r: len(r) == 3, 30, "three backends")
    before = {metric: _by_backend(prom, metric) for metric in
              ("lvs_backend_connections_total", "lvs_backend_packets_in_total", "lvs_backend_bytes_in_total")}
    report = traffic.run(lab, lab.site(), count=30, service="web")
    assert report["ok"], traffic.describe(report)

    def grown(result):
        now = {labels["backend"]: value for labels, value in result}
        return len(now) == 3 and sum(now.values()) >= sum(before["lvs_backend_connections_total"].values()) + 30

    prom.wait(f"lvs_backend_connections_total{{{WEB}}}", grown, 20, "30 more connections")
    for metric, old in before.items():
        new = _by_backend(prom, metric)
        # rr over three backends of weight 1: each got its share of the 30 requests.
        assert all(new[backend] - old[backend] >= 5 for backend in ("rs1", "rs2", "rs3")), (metric, old, new)


def test_health_and_drains_follow_the_real_servers_and_the_alert_rules_see_them(healthy):
    lab, prom = healthy, healthy.prometheus
    rs2 = f'{WEB},backend="rs2"'
    hh.block_service(lab, "rs2")
    prom.wait(f"lvs_backend_healthy{{{rs2}}} == 0", bool, hh.TIMEOUT + 5, "rs2 unhealthy in Prometheus")
    # The weight follows within a scrape (the view and the weight arrive in one call).
    prom.wait(f"lvs_backend_weight{{{rs2}}} == 0", bool, 5, "rs2 at weight 0 in Prometheus")
    assert prom.query(f"lvs_backend_weight_configured{{{rs2}}}")[0][1] == 1
    assert prom.query(f"lvs_service_backends_healthy{{{WEB}}}")[0][1] == 2

    def backend_down_alerts():
        return [(a["labels"]["backend"], a["state"]) for a in prom.alerts()
                if a["labels"].get("alertname") == "LVSBackendDown"]

    hh.wait_for(lambda: backend_down_alerts() in ([("rs2", "pending")], [("rs2", "firing")]), 10)
    hh.block_service(lab, "rs2", blocked=False)
    prom.wait(f"lvs_backend_healthy{{{rs2}}} == 1", bool, hh.RESTORE + 5, "rs2 healthy again")

    assert lab.salt_run("lvs.drain", "rs1")["drained"] == "rs1"
    prom.wait(f'lvs_backend_drained{{{WEB},backend="rs1"}} == 1', bool, 10, "rs1 drained in Prometheus")
    assert prom.query(f'lvs_backend_healthy{{{WEB},backend="rs1"}}')[0][1] == 1  # drained is not down
    lab.salt_run("lvs.undrain", "rs1")
    prom.wait(f'lvs_backend_drained{{{WEB},backend="rs1"}} == 0', bool, 10, "rs1 back in Prometheus")


def test_the_status_prints_tables_by_default(healthy):
    lab = healthy
    proc = subprocess.run(["ip", "netns", "exec", plan.SWITCH_NS, os.path.join(BIN, "salt-run"), "-c",
                           lab.master_conf_dir, "lvs.status"], capture_output=True, text=True, timeout=120, check=False)
    lines = proc.stdout.splitlines()
    assert lines[0] == "Site seed", proc.stdout + proc.stderr
    lines = lines[1:]
    assert lines[:2] == ["Directors", lines[1]] and lines[1].split() == \
        ["Name", "State", "ActiveConn", "InActConn", "InPkts", "InBytes"], proc.stdout + proc.stderr
    assert lines[2].split()[:2] == ["director", "up"]
    assert "TCP  10.10.24.88:80  web" in lines
    rows = {line.split()[0]: line.split() for line in lines if line.startswith("  rs")}
    assert {name: row[1:5] for name, row in rows.items()} == {
        f"rs{i}": [f"10.10.24.2{i}:80", "1", "up", "-"] for i in (1, 2, 3)}
