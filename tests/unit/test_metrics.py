"""The directors' metrics (``lvstun.metrics``): the site's view and the exposition text,
read back with prometheus_client's own parser; the ``lvs:metrics`` pillar."""

import os

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

import lvstun.genl as genl
import lvstun.metrics as metrics
import lvstun.roles
import lvstun.site

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WEB = "tcp:10.10.24.88:80"


def seed(**extra):
    with open(os.path.join(REPO, "pillar", "lvs", "seed.sls"), encoding="utf-8") as fh:
        tree = yaml.safe_load(fh)["lvs"]
    tree["realservers"]["rs4"] = {"address": "10.10.24.24"}
    tree["services"]["web"].update(sorry="rs4", floor=2, backends={"rs1": {"weight": 2}, "rs2": {}, "rs3": {}})
    tree.update(extra)
    return tree


def dest(address, weight, active=0, forward="tunnel", **stats):
    return {"address": address, "port": 80, "weight": weight, "active": active, "inactive": 1, "forward": forward,
            "stats": {"conns": 0, "inpkts": 0, "outpkts": 0, "inbytes": 0, "outbytes": 0, "cps": 0, **stats}}


def table(*dests, address="10.10.24.88"):
    return [{"af": 4, "protocol": "tcp", "address": address, "port": 80, "fwmark": None, "scheduler": "rr",
             "destinations": list(dests)}]


def samples(text, site="seed"):
    """``{(metric name, frozenset of labels): value}`` as Prometheus' own parser reads the
    text; every series carries the label ``site`` (the view's site, or none without a
    view), left out of the keys."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = dict(sample.labels)
            assert labels.pop("site", None) == site, sample
            out[(sample.name, frozenset(labels.items()))] = sample.value
    return out


def value(found, name, **labels):
    return found[(name, frozenset(labels.items()))]


RECORD = {"health": {"rs2": {"services": {"web": False}, "host": True}},
          "maintenance": {"rs3": {"services": ["*"], "reason": "kernel"}}}


def test_the_view_names_every_backend_with_its_pillar_weight_health_and_drain():
    site = lvstun.site.parse(seed())
    view = metrics.view(site, RECORD)["services"][WEB]
    assert (view["service"], view["vip"], view["floor"]) == ("web", "10.10.24.88", 2)
    assert view["backends"] == {
        "10.10.24.21:80": {"backend": "rs1", "weight": 2, "sorry": False, "healthy": True, "drained": False},
        "10.10.24.22:80": {"backend": "rs2", "weight": 1, "sorry": False, "healthy": False, "drained": False},
        "10.10.24.23:80": {"backend": "rs3", "weight": 1, "sorry": False, "healthy": True, "drained": True},
        "10.10.24.24:80": {"backend": "rs4", "weight": 0, "sorry": True, "healthy": True, "drained": False},
    }


def test_the_text_carries_the_kernels_numbers_under_the_sites_names():
    site = lvstun.site.parse(seed())
    kernel = table(dest("10.10.24.21", 2, active=5, conns=40, inpkts=300, inbytes=9000, cps=3),
                   dest("10.10.24.22", 2), dest("10.10.24.23", 0), dest("10.10.24.24", 0))
    found = samples(metrics.render(kernel, metrics.view(site, RECORD)))
    rs1 = {"service": "web", "vip": "10.10.24.88", "backend": "rs1"}
    assert value(found, "lvs_backend_connections_active", **rs1) == 5
    assert value(found, "lvs_backend_connections_total", **rs1) == 40
    assert value(found, "lvs_backend_packets_in_total", **rs1) == 300
    assert value(found, "lvs_backend_bytes_in_total", **rs1) == 9000
    # Not exported: the kernel's rate estimate (rate() of the total says it), and the
    # replies' counters of a tunnel (replies go from the backend to the client).
    assert not {name for name, _ in found} & {"lvs_backend_connections_per_second", "lvs_backend_packets_out_total",
                                               "lvs_backend_bytes_out_total"}
    rs2 = {**rs1, "backend": "rs2"}
    # Live weight from the kernel (a director that has not heard of the drain yet), the
    # rest from the site: rs2 is down in the record.
    assert (value(found, "lvs_backend_weight", **rs2), value(found, "lvs_backend_weight_configured", **rs2),
            value(found, "lvs_backend_healthy", **rs2)) == (2, 1, 0)
    assert value(found, "lvs_backend_drained", **{**rs1, "backend": "rs3"}) == 1
    web = {"service": "web", "vip": "10.10.24.88"}
    assert value(found, "lvs_service_info", **web, port="80", protocol="tcp", scheduler="rr") == 1
    assert value(found, "lvs_service_backends", **web) == 3  # the sorry server apart
    assert value(found, "lvs_service_backends_healthy", **web) == 2  # rs1 and the drained rs3
    assert value(found, "lvs_service_backends_serving", **web) == 2  # rs1 and rs2 run weights > 0
    assert value(found, "lvs_service_floor", **web) == 2
    assert value(found, "lvs_service_present", **web) == 1
    assert value(found, "lvs_director_up") == 1 and value(found, "lvs_director_services") == 1


def test_replies_counters_are_exported_only_where_replies_pass_through_the_director():
    site = lvstun.site.parse(seed())
    kernel = table(dest("10.10.24.31", 1, forward="masq", outpkts=7, outbytes=700),
                   dest("10.10.24.32", 1, forward="route", outpkts=0), dest("10.10.24.33", 1, outpkts=0),
                   address="10.10.24.77")
    found = samples(metrics.render(kernel, metrics.view(site)))
    masq = {"service": "tcp:10.10.24.77:80", "vip": "10.10.24.77", "backend": "10.10.24.31:80"}
    assert (value(found, "lvs_backend_packets_out_total", **masq),
            value(found, "lvs_backend_bytes_out_total", **masq)) == (7, 700)
    assert {dict(labels)["backend"] for name, labels in found if name == "lvs_backend_packets_out_total"} \
        == {"10.10.24.31:80"}
    assert {dict(labels)["backend"] for name, labels in found if name == "lvs_backend_packets_in_total"} \
        == {"10.10.24.31:80", "10.10.24.32:80", "10.10.24.33:80"}


def test_what_the_site_does_not_name_is_exported_under_its_spec_and_address():
    site = lvstun.site.parse(seed())
    kernel = table(dest("10.10.24.99", 1, active=1), address="10.10.24.77")
    found = samples(metrics.render(kernel, metrics.view(site)))
    foreign = {"service": "tcp:10.10.24.77:80", "vip": "10.10.24.77", "backend": "10.10.24.99:80"}
    assert value(found, "lvs_backend_connections_active", **foreign) == 1
    assert ("lvs_backend_healthy", frozenset(foreign.items())) not in found  # no site intent to show
    # The site's own service is missing from the kernel: it is reported as such.
    assert value(found, "lvs_service_present", service="web", vip="10.10.24.88") == 0
    assert value(found, "lvs_service_present", service="tcp:10.10.24.77:80", vip="10.10.24.77") == 1


def test_an_unreadable_table_says_the_director_is_not_up():
    found = samples(metrics.render(None, {}), site=None)  # (no view: no site either)
    assert value(found, "lvs_director_up") == 0 and value(found, "lvs_director_services") == 0


def test_label_values_are_escaped():
    site = lvstun.site.parse(seed())
    view = metrics.view(site)
    view["services"][WEB]["service"] = 'we"b\\1\nx'
    found = samples(metrics.render(table(dest("10.10.24.21", 1)), view))
    assert value(found, "lvs_service_present", service='we"b\\1\nx', vip="10.10.24.88") == 1


def test_the_kept_templates_follow_the_table_and_the_view_between_scrapes():
    """A Text that keeps its templates between scrapes writes what a new one writes,
    as the kernel's numbers, its destinations and the view change (and the same
    samples as render's records)."""
    site = lvstun.site.parse(seed())
    view = metrics.view(site, RECORD)
    kernel = table(dest("10.10.24.21", 2, active=5, conns=40), dest("10.10.24.22", 2), dest("10.10.24.23", 0))
    text = metrics.Text()

    def scrape(records, site_view):
        counters = None if records is None else [
            (svc, [genl.counters(d) for d in svc["destinations"]]) for svc in records]
        kept = "".join(text.chunks(counters, site_view))
        assert kept == "".join(metrics.Text().chunks(counters, site_view))
        assert samples(kept) == samples(metrics.render(records, site_view))
        return samples(kept)

    rs1 = {"service": "web", "vip": "10.10.24.88", "backend": "rs1"}
    web = {"service": "web", "vip": "10.10.24.88"}
    assert value(scrape(kernel, view), "lvs_backend_connections_active", **rs1) == 5
    kernel[0]["destinations"][0].update(active=9, weight=0)  # numbers only: the same templates
    found = scrape(kernel, view)
    assert value(found, "lvs_backend_connections_active", **rs1) == 9
    assert value(found, "lvs_backend_weight", **rs1) == 0
    assert value(found, "lvs_service_backends_serving", **web) == 1  # rs2 alone now
    kernel[0]["destinations"].append(dest("10.10.24.24", 0, active=3))  # a destination more: new templates
    found = scrape(kernel, view)
    assert value(found, "lvs_backend_connections_active", **{**rs1, "backend": "rs4"}) == 3
    renamed = metrics.view(site)  # another view (no health record): rs2 healthy again
    renamed["services"][WEB]["service"] = "w%eb"  # a % in a label, inside a template
    found = scrape(kernel, renamed)
    assert value(found, "lvs_backend_healthy", service="w%eb", vip="10.10.24.88", backend="rs2") == 1
    assert value(found, "lvs_backend_connections_active", service="w%eb", vip="10.10.24.88", backend="rs1") == 9
    found = scrape(None, renamed)  # the kernel's table unreadable
    assert value(found, "lvs_director_up") == 0
    assert value(found, "lvs_service_present", service="w%eb", vip="10.10.24.88") == 0


@pytest.mark.parametrize(("listen", "where"), [
    ("lan", {"address": "10.10.24.2", "subnet": None}),
    ("172.31.254.0/24", {"address": None, "subnet": "172.31.254.0/24"}),
])
def test_the_director_role_gets_the_exporter_where_the_pillar_says(listen, where):
    site = lvstun.site.parse(seed(metrics={"listen": listen, "port": 9100}))
    got = lvstun.roles.director(site, "director")["metrics"]
    assert {k: got[k] for k in ("port", "address", "subnet")} == {"port": 9100, **where}
    assert set(got["view"]["services"]) == {WEB}


def test_port_null_turns_the_exporter_off():
    site = lvstun.site.parse(seed(metrics={"port": None}))
    assert lvstun.roles.director(site, "director")["metrics"] is None


@pytest.mark.parametrize(("metrics_tree", "error"), [
    ({"port": 0}, "lvs:metrics:port: 0 must be an integer from 1 to 65535"),
    ({"listen": "eth0"}, "lvs:metrics:listen: 'eth0' must be lan or a subnet"),
    ({"listen": "172.31.254.7/24"}, "lvs:metrics:listen: '172.31.254.7/24' must be lan or"),
    # Every address of the director, the VIPs the router maps to public addresses among them.
    ({"listen": "any"}, "lvs:metrics:listen: any would bind every address of the directors, their VIPs too"),
    ({"lisen": "any"}, "lvs:metrics:lisen: unknown setting (did you mean listen?)"),
])
def test_bad_metrics_settings_are_named_by_pillar_path(metrics_tree, error):
    with pytest.raises(lvstun.site.SiteError) as err:
        lvstun.site.parse(seed(metrics=metrics_tree))
    assert any(e.startswith(error) for e in err.value.errors), err.value.errors


def test_a_view_change_is_reported_per_service_and_per_backend():
    site = lvstun.site.parse(seed())
    old = metrics.view(site)
    tree = seed()
    tree["services"]["web"]["backends"]["rs1"] = {"weight": 4}
    tree["services"]["web"]["scheduler"] = "wrr"
    new = metrics.view(lvstun.site.parse(tree))
    changes = {name: (want, have) for name, want, have in metrics.view_changes(old, new)}
    assert set(changes) == {WEB, f"{WEB} -> 10.10.24.21:80"}
    assert changes[WEB][1]["scheduler"] == "rr" and changes[WEB][0]["scheduler"] == "wrr"
    rs1 = changes[f"{WEB} -> 10.10.24.21:80"]
    assert (rs1[1]["weight"], rs1[0]["weight"]) == (2, 4)
    assert metrics.view_changes(new, new) == []
    gone = metrics.view_changes(new, {})
    assert gone[0] == (WEB, None, {k: v for k, v in new["services"][WEB].items() if k != "backends"})
    assert len(gone) == 1 + 4  # the service and its four backends (the sorry server too)


def test_an_exporter_running_older_code_is_restarted(tmp_path):
    """After the pack's code changed (an upgrade, a sync), the running exporter is a
    drift of its own: the next highstate restarts it on the new code."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from tests.unit.checkout import load  # noqa: PLC0415

    module = load("lvs_exporter_module", "_modules", "lvs_exporter.py")
    module.__opts__ = {"cachedir": str(tmp_path)}
    # A process that looks like the exporter on port 19847 (its command line is what status reads).
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "-m", "lvstun.exporter",
                             "--port=19847"])
    try:
        module.lvstun.records.store(module.__opts__, module.lvstun.records.EXPORTER_PROCESS,
                             {"pid": proc.pid, "address": "127.0.0.1", "port": 19847, "code": "0123456789abcdef"})
        (found,) = module.check(19847, address="127.0.0.1")
        assert (found["kind"], found["object"], found["want"], found["have"]) == (
            "exporter", "code", module.code(), "0123456789abcdef")
        module.lvstun.records.store(module.__opts__, module.lvstun.records.EXPORTER_PROCESS,
                             {"pid": proc.pid, "address": "127.0.0.1", "port": 19847, "code": module.code()})
        assert module.check(19847, address="127.0.0.1") == []
    finally:
        proc.kill()
        proc.wait()


def test_the_runners_view_is_kept_only_where_an_exporter_runs(tmp_path):
    from tests.unit.checkout import load  # noqa: PLC0415

    module = load("lvs_exporter_module", "_modules", "lvs_exporter.py")
    module.__opts__ = {"cachedir": str(tmp_path)}
    view = metrics.view(lvstun.site.parse(seed()))
    # A site without metrics (lvs:metrics:port null): the runner's push stores nothing,
    # so lvs_exporter.absent stays without changes.
    assert module.set_view(view, if_exporter=True) is False and module.view() == {}
    assert module.check_absent() == []
    module.lvstun.records.store(module.__opts__, module.lvstun.records.EXPORTER_PROCESS,
                                {"pid": None, "address": "10.10.24.2", "port": 9847})
    assert module.set_view(view, if_exporter=True) is True and module.view() == view
    assert module.set_view(view, if_exporter=True) is False  # unchanged


@pytest.mark.parametrize(("header", "takes"), [
    ("gzip", True), ("deflate, gzip;q=0.5", True), ("GZIP", True), ("*", True), ("", False), ("identity", False),
    ("gzip;q=0", False), ("gzip; q=0.0, identity", False), ("gzip;q=x", False), ("x-gzip", False),
])
def test_the_exporter_packs_only_for_scrapers_that_take_gzip(header, takes):
    import lvstun.exporter  # noqa: PLC0415 (prometheus_client)

    assert lvstun.exporter.accepts_gzip(header) is takes
