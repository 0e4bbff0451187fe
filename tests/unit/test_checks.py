"""The health checks' settings (``lvs:services:*:check``, ``lvs:health``): validation by
pillar path, what they become, and the pure parts of the checks (DNS messages, HTTP
verdicts); alpha, hold and heartbeat as the beacon and the runner use them. The checks
against real services: tests/functional/test_pathcheck_kernel.py."""

import socket
import struct

import pytest

import lvstun.dnsmsg as dnsmsg
import lvstun.healthrecord
import lvstun.probe as probe
import lvstun.roles
import lvstun.site
from tests.unit.checkout import load
from tests.unit.test_health import site_tree


def web_check(**check):
    return lvstun.site.parse(site_tree(check=check)).services["web"].check


@pytest.mark.parametrize("check, problem", [
    ({"expect": "ok"}, "lvs:services:web:check:expect: 'ok' must be an HTTP status (100-599), a range"),
    ({"expect": [200, "x"]}, "lvs:services:web:check:expect: [200, 'x'] must be an HTTP status"),
    ({"expect": "399-200"}, "lvs:services:web:check:expect: '399-200' must be an HTTP status"),
    ({"body": "(["}, "lvs:services:web:check:body: '([' is not a regular expression"),
    ({"host": "bad host"}, "lvs:services:web:check:host: 'bad host' is not a host name"),
    ({"type": "https", "verify": "yes"}, "lvs:services:web:check:verify: 'yes' must be true or false"),
    ({"type": "https", "ca": "certs/ca.pem"}, "lvs:services:web:check:ca: 'certs/ca.pem' must be an absolute path"),
    ({"ca": "/etc/ssl/ca.pem"}, "lvs:services:web:check:ca: a CA bundle is for https checks, not http"),
    ({"type": "dns"}, "lvs:services:web:check:query: a dns check needs a name to ask for"),
    ({"type": "dns", "query": "a.example", "query_type": "AXFR"}, "lvs:services:web:check:query_type: 'AXFR' is "
                                                                    "not one of A, NS"),
    ({"type": "dns", "query": "a.example", "rcode": "OK"}, "lvs:services:web:check:rcode: 'OK' is not one of"),
    ({"type": "dns", "query": "a.example", "answer": "10.1.2"}, "lvs:services:web:check:answer: '10.1.2' is not"),
    ({"type": "script"}, "lvs:services:web:check:command: a script check needs a command"),
    ({"type": "script", "command": "/bin/check web"}, "lvs:services:web:check:command: '/bin/check web' must be a "
                                                      "list"),
    ({"type": "script", "command": ["check", "web"]}, "lvs:services:web:check:command: ['check', 'web'] must be"),
    ({"alpha": "no"}, "lvs:services:web:check:alpha: 'no' must be true or false"),
    ({"hold": -1}, "lvs:services:web:check:hold: -1 must be an integer from 0 to 3600"),
    ({"type": "udp"}, "lvs:services:web:check:type: a udp check cannot test a tcp service"),
    ({"dynamic": True}, "lvs:services:web:check:dynamic: weights from the exit status come from script checks"),
])
def test_bad_check_settings_are_refused_by_their_path(check, problem):
    with pytest.raises(lvstun.site.SiteError) as err:
        web_check(**check)
    assert any(e.startswith(problem) for e in err.value.errors), err.value.errors


@pytest.mark.parametrize("health, problem", [
    ({"hold": "10s"}, "lvs:health:hold: '10s' must be an integer from 0 to 3600"),
    ({"heartbeat": 0}, "lvs:health:heartbeat: 0 must be an integer from 1 to 3600"),
    ({"hearbeat": 5}, "lvs:health:hearbeat: unknown setting (did you mean heartbeat?)"),
    ({"path_interval": 0.01}, "lvs:health:path_interval: 0.01 must be a number of seconds from 0.1 to 3600"),
    ({"path_interval": "1s"}, "lvs:health:path_interval: '1s' must be a number of seconds"),
])
def test_bad_site_health_settings_are_refused_by_their_path(health, problem):
    tree = site_tree()
    tree["lvs"]["health"] = health
    with pytest.raises(lvstun.site.SiteError) as err:
        lvstun.site.parse(tree)
    assert any(e.startswith(problem) for e in err.value.errors), err.value.errors


def test_statuses_hold_and_defaults_as_the_checks_use_them():
    assert web_check()["expect"] == [[200, 200]] and web_check()["hold"] == 10 and web_check()["alpha"] is False
    assert web_check(expect=[200, "300-399"])["expect"] == [[200, 200], [300, 399]]
    assert web_check(expect="200-299", hold=0)["hold"] == 0
    tree = site_tree()
    tree["lvs"]["health"] = {"hold": 30, "heartbeat": 5}
    site = lvstun.site.parse(tree)
    assert site.services["web"].check["hold"] == 30  # the site's hold, unless the check says otherwise
    assert lvstun.roles.realserver(site, "rs1")["heartbeat"] == 5
    dns = lvstun.site.parse(site_tree(protocol="udp", port=53, check={"type": "dns", "query": "www.example"}))
    assert dns.services["web"].check["query_type"] == "A" and dns.services["web"].check["rcode"] == "NOERROR"


@pytest.mark.parametrize("status, expect, ok", [
    (200, [[200, 200]], True), (204, [[200, 299]], True), (302, [[200, 299]], False), (404, [[200, 200], [404, 404]],
                                                                                       True), (200, 200, True),
])
def test_status_sets_and_ranges(status, expect, ok):
    assert probe.status_ok(status, expect) is ok


def test_http_verdicts_on_status_and_body():
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nstatus: ok\n"
    assert probe.http_verdict(answer, [[200, 299]], r"status: ok") == "HTTP 200"
    with pytest.raises(OSError, match="body does not match"):
        probe.http_verdict(answer, [[200, 299]], r"Content-Type")  # the headers are not the body
    with pytest.raises(OSError, match="HTTP 200, expected 301-302, 404"):
        probe.http_verdict(answer, [[301, 302], [404, 404]])
    with pytest.raises(OSError, match="not an HTTP answer"):
        probe.http_verdict(b"SSH-2.0-OpenSSH\r\n", [[200, 200]])


def _answer(query, rcode=0, records=()):
    """A server's answer to ``query`` with A records (the name compressed to the question)."""
    ident = struct.unpack("!H", query[:2])[0]
    head = struct.pack("!HHHHHH", ident, 0x8180 | rcode, 1, len(records), 0, 0)
    body = b"".join(struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(a) for a in records)
    return head + query[12:] + body


def test_dns_queries_and_the_verdict_on_their_answers():
    ident, query = dnsmsg.query("www.example.", "AAAA")
    assert query[12:] == b"\x03www\x07example\x00" + struct.pack("!HH", 28, 1)
    assert struct.unpack("!HHH", query[:6]) == (ident, 0x0100, 1)  # recursion desired, one question
    ident, query = dnsmsg.query("www.example")
    assert dnsmsg.verdict(_answer(query, records=["10.0.0.5"]), ident) == (True, "DNS NOERROR")
    assert dnsmsg.verdict(_answer(query, records=["10.0.0.4", "10.0.0.5"]), ident, answer="10.0.0.5") == \
        (True, "DNS NOERROR with 10.0.0.5")
    assert dnsmsg.verdict(_answer(query, records=["10.0.0.4"]), ident, answer="10.0.0.5")[0] is False
    assert dnsmsg.verdict(_answer(query, rcode=3), ident) == (False, "DNS NXDOMAIN, expected NOERROR")
    assert dnsmsg.verdict(_answer(query, rcode=3), ident, "NXDOMAIN") == (True, "DNS NXDOMAIN")
    assert dnsmsg.verdict(_answer(query), ident ^ 1) == (False, "not the answer to the query")
    assert dnsmsg.verdict(query, ident) == (False, "not the answer to the query")  # no QR bit: a query
    assert dnsmsg.verdict(_answer(query, records=["10.0.0.5"])[:-3], ident, answer="10.0.0.5")[0] is False
    assert dnsmsg.verdict(b"\0" * 5, ident) == (False, "DNS answer too short")


def test_alpha_starts_a_backend_down_until_rise_checks_pass():
    beacon = load("lvs_backend_alpha", "_beacons", "lvs_backend.py")
    ok = {"web": (True, "HTTP 200")}
    for alpha, first in ((False, True), (True, False)):
        cfg = {"checks": {"web": {"vip": "10.10.24.88", "rise": 2, "fall": 2, "alpha": alpha}}}
        state = {}
        assert beacon.round_(cfg, state, 0, 10, [], ok)["services"]["web"]["healthy"] is first
        event = beacon.round_(cfg, state, 1, 10, [], ok)
        assert (event is None) if not alpha else event["services"]["web"]["healthy"] is True


def test_the_runner_holds_each_service_for_its_own_hold():
    tree = site_tree(check={"hold": 30})
    tree["lvs"]["services"]["api"] = {"vip": "10.10.24.89", "port": 8080, "check": {"hold": 0}}
    site = lvstun.site.parse(tree)
    record = {"health": {}, "maintenance": {}}
    lvstun.healthrecord.apply_verdict(site, record, 1000, "rs1", services={"web": False, "api": False})
    lvstun.healthrecord.apply_verdict(site, record, 1001, "rs1", services={"web": True, "api": True})
    assert record["health"]["rs1"]["held"] == ["web"]  # api (hold 0) is back at once
    lvstun.healthrecord.apply_verdict(site, record, 1030, "rs1", services={"web": True, "api": True})
    assert record["health"]["rs1"]["held"] == [] and record["health"]["rs1"]["services"]["web"] is True


def test_a_dynamic_scripts_weight_goes_from_the_beacon_through_the_runner_to_the_weights():
    beacon = load("lvs_backend_dynamic", "_beacons", "lvs_backend.py")
    cfg = {"checks": {"web": {"vip": "10.10.24.88", "rise": 2, "fall": 2, "dynamic": True}}}
    state = {}
    assert beacon.round_(cfg, state, 0, 10, [], {"web": probe.Outcome(True, "exited 9", 7)})["services"] == {
        "web": {"healthy": True, "reason": "exited 9", "weight": 7}}
    assert beacon.round_(cfg, state, 1, 10, [], {"web": probe.Outcome(True, "exited 9", 7)}) is None
    event = beacon.round_(cfg, state, 2, 10, [], {"web": probe.Outcome(True, "exited 4", 2)})
    assert event["changed"] == ["web"] and event["services"]["web"]["weight"] == 2  # a new weight: reported
    # The runner keeps a weight only for a dynamic check, an integer in IPVS's range.
    runner = load("lvs_runner_dynamic", "_runners", "lvs.py")
    tree = site_tree(check={"type": "script", "command": ["/usr/local/bin/check"], "dynamic": True},
                     backends={"rs1": {"weight": 5}, "rs2": {"weight": 5}})
    site = lvstun.site.parse(tree)
    for said, kept in ((2, {"web": 2}), (70000, {}), (True, {}), ("3", {}), (-1, {})):
        answer = {"services": {"web": {"healthy": True, "weight": said}}, "age": 0}
        runner.__opts__ = {"conf_file": "/dev/null"}
        runner._client = lambda answer=answer: type("C", (), {"cmd": lambda *a, **k: {"rs1": answer}})()
        assert runner._report("rs1", site)[0]["weights"] == kept, said
    record = {"health": {"rs1": {"services": {"web": True}, "weights": {"web": 2}}}}
    assert health_weights(site, record) == {"rs1": 2, "rs2": 5}
    record["health"]["rs1"]["services"]["web"] = False
    assert health_weights(site, record) == {"rs1": 0, "rs2": 5}


def health_weights(site, record):
    import lvstun.health  # noqa: PLC0415

    return lvstun.health.live_weights(site.services["web"], record)


def test_an_alpha_backend_returns_at_its_first_rise_without_the_hold():
    site = lvstun.site.parse(site_tree(check={"alpha": True}))
    record = {"health": {}, "maintenance": {}}
    lvstun.healthrecord.apply_verdict(site, record, 1000, "rs1", services={"web": False},
                                      alpha={"web"})  # not passed yet
    lvstun.healthrecord.apply_verdict(site, record, 1002, "rs1", services={"web": True})
    assert record["health"]["rs1"]["services"]["web"] is True and record["health"]["rs1"]["held"] == []
    # a real failure: held as ever
    lvstun.healthrecord.apply_verdict(site, record, 1010, "rs1", services={"web": False})
    lvstun.healthrecord.apply_verdict(site, record, 1012, "rs1", services={"web": True})
    assert record["health"]["rs1"]["held"] == ["web"]
