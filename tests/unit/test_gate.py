"""The reactor's gate (``lvstun.gate``, ``_modules/lvs_reactor.py``): which beacon events
start a runner job. A flood starts at most one queued job per real server, strangers
none, and a job queued for a minion carries the news of the events dropped meanwhile."""

import time

import pytest

import lvstun.gate
import lvstun.site
from tests.unit.checkout import load
from tests.unit.test_health import site_tree

OPTS = {"id": "master", "__role": "master"}


def seed_site_gate(monkeypatch):
    """The gate with a fresh state and the seed site as the pillar: ``(site, compile
    times)`` (shared with the runner's flood tests)."""
    site, compiled = lvstun.site.parse(site_tree()), []

    def compile_site(opts):
        compiled.append(time.monotonic())
        lvstun.gate._SITE.update(site=site, at=time.monotonic())
        return site

    monkeypatch.setattr(lvstun.gate, "_SITE", {})
    monkeypatch.setattr(lvstun.gate, "_JOBS", {})
    monkeypatch.setattr(lvstun.gate, "compile_site", compile_site)
    return site, compiled


@pytest.fixture(name="compiled")
def fixture_compiled(monkeypatch):
    """The compile times of the seed site, through the gate."""
    return seed_site_gate(monkeypatch)[1]


@pytest.mark.parametrize(("tag", "job"), [
    ("salt/beacon/rs1/lvs_backend/", ("health", "rs1")),
    ("salt/beacon/rs1/lvs_backend", ("health", "rs1")),
    ("salt/beacon/director/lvs_hosts/", ("hosts", None)),
    ("salt/beacon/rs1/inotify//etc", (None, None)),
    ("salt/beacon//lvs_backend/", (None, None)),
    ("salt/job/123/ret/rs1", (None, None)),
    ("salt/beacon/rs1", (None, None)),
])
def test_only_the_packs_beacon_tags_call_for_a_job(tag, job):
    assert lvstun.gate.job_for(tag) == job


def test_a_flood_starts_one_job_per_real_server_and_none_for_strangers(compiled):
    admitted = [lvstun.gate.job_for(tag) for n in range(500)
                for tag in (f"salt/beacon/stranger{n}/lvs_backend/", "salt/beacon/rs1/lvs_backend/",
                            "salt/beacon/rs2/lvs_hosts/")
                if lvstun.gate.admit(OPTS, *lvstun.gate.job_for(tag))]
    assert admitted == [("health", "rs1"), ("hosts", None)]
    assert len(compiled) == 1  # strangers compile the pillar at most once per SITE_TTL


def test_events_for_a_queued_or_running_job_make_no_new_job_but_one_more_round(compiled):
    assert lvstun.gate.admit(OPTS, "health", "rs1")
    assert not lvstun.gate.admit(OPTS, "health", "rs1")  # the queued job will ask rs1 afresh
    assert lvstun.gate.admit(OPTS, "health", "rs2")  # another minion is not held up
    assert lvstun.gate.start("health", "rs1")
    assert not lvstun.gate.again("health", "rs1")  # nothing came while it ran: done
    assert lvstun.gate.admit(OPTS, "health", "rs1")  # so the next event starts a job
    assert lvstun.gate.start("health", "rs1")
    assert not lvstun.gate.admit(OPTS, "health", "rs1")  # news while it runs ...
    assert not lvstun.gate.start("health", "rs1")  # (or a second job by hand) ...
    assert lvstun.gate.again("health", "rs1")  # ... make it run one more round
    assert not lvstun.gate.again("health", "rs1")
    assert list(lvstun.gate._JOBS) == [("health", "rs2")]  # rs1 free again; rs2 queued


def test_a_job_that_never_started_stops_blocking_after_stale_job(compiled):
    now = time.monotonic()
    assert lvstun.gate.admit(OPTS, "health", "rs1", now=now)
    assert not lvstun.gate.admit(OPTS, "health", "rs1", now=now + lvstun.gate.STALE_JOB - 1)
    assert lvstun.gate.admit(OPTS, "health", "rs1", now=now + lvstun.gate.STALE_JOB + 1)


def test_an_unknown_name_compiles_the_site_again_after_site_ttl(compiled, monkeypatch):
    assert not lvstun.gate.admit(OPTS, "health", "rs9")
    lvstun.gate._SITE["at"] -= lvstun.gate.SITE_TTL + 1
    assert not lvstun.gate.admit(OPTS, "health", "rs9")
    assert len(compiled) == 2


def test_the_reactor_module_renders_the_runner_call_or_nothing(compiled):
    module = load("lvs_reactor_gate", "_modules", "lvs_reactor.py")
    module.__opts__ = OPTS
    assert module.__virtual__() == "lvs_reactor"
    assert module.job("salt/beacon/rs1/lvs_backend/") == {"fun": "lvs.health", "minion": "rs1"}
    assert module.job("salt/beacon/rs1/lvs_backend/") == {}
    assert module.job("salt/beacon/director/lvs_hosts/") == {"fun": "lvs.hosts"}
    assert module.job("salt/beacon/nobody/lvs_backend/") == {}
    module.__opts__ = {"__role": "minion"}
    assert module.__virtual__()[0] is False


def test_an_invalid_site_drops_the_event_with_an_error(monkeypatch, caplog):
    def broken(opts):
        raise lvstun.site.SiteError(["lvs:lan: missing"])

    monkeypatch.setattr(lvstun.gate, "_SITE", {})
    monkeypatch.setattr(lvstun.gate, "_JOBS", {})
    monkeypatch.setattr(lvstun.gate, "compile_site", broken)
    module = load("lvs_reactor_gate_invalid", "_modules", "lvs_reactor.py")
    module.__opts__ = OPTS
    assert module.job("salt/beacon/rs1/lvs_backend/") == {}
    assert "pillar is invalid" in caplog.text
