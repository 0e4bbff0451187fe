"""The reactor's gate (``lvstun.gate``, ``_modules/lvs_reactor.py``): which beacon events
start a runner job. A flood starts at most one queued job per real server, strangers
none, and a job queued for a minion carries the news of the events dropped meanwhile."""

import time

import pytest

import lvstun.gate
import lvstun.site
import lvstun.sites
from tests.unit import fake_sites
from tests.unit.checkout import load
from tests.unit.test_health import site_tree

OPTS = {"id": "master", "__role": "master"}


def seed_site_gate(monkeypatch, opts=OPTS):
    """The gate with a fresh state and the seed site in every one of its minions'
    pillars: ``(site, pillars)`` (``tests.unit.fake_sites``: reads and compilations
    counted; shared with the runner's flood tests)."""
    tree = site_tree()
    pillars = fake_sites.of_trees(tree)
    monkeypatch.setattr(lvstun.gate, "_JOBS", {})
    fake_sites.install(monkeypatch, pillars, opts)
    return lvstun.site.parse(tree), pillars


@pytest.fixture(name="pillars")
def fixture_pillars(monkeypatch):
    """The seed site's minions' pillars, through the gate."""
    return seed_site_gate(monkeypatch)[1]


@pytest.mark.parametrize(("tag", "job"), [
    ("salt/beacon/rs1/lvs_backend/", ("health", "rs1")),
    ("salt/beacon/rs1/lvs_backend", ("health", "rs1")),
    ("salt/beacon/director/lvs_hosts/", ("hosts", "director")),
    ("salt/beacon/rs1/inotify//etc", (None, None)),
    ("salt/beacon//lvs_backend/", (None, None)),
    ("salt/job/123/ret/rs1", (None, None)),
    ("salt/beacon/rs1", (None, None)),
])
def test_only_the_packs_beacon_tags_call_for_a_job(tag, job):
    assert lvstun.gate.job_for(tag) == job


def test_a_flood_starts_one_job_per_real_server_and_none_for_strangers(pillars):
    admitted = [lvstun.gate.job_for(tag) for n in range(500)
                for tag in (f"salt/beacon/stranger{n}/lvs_backend/", "salt/beacon/rs1/lvs_backend/",
                            "salt/beacon/rs2/lvs_hosts/", "salt/beacon/director/lvs_hosts/")
                if lvstun.gate.admit(OPTS, *lvstun.gate.job_for(tag))]
    # rs2 is no director: its lvs_hosts events start nothing; the director's, one poll
    assert admitted == [("health", "rs1"), ("hosts", "director")]
    # strangers: one listing of the minions and one compilation at most per TTL
    assert pillars.listings == 1 and len(pillars.compiles) <= 1


def test_events_for_a_queued_or_running_job_make_no_new_job_but_one_more_round(pillars):
    key = ("health", "rs1")
    assert lvstun.gate.admit(OPTS, "health", "rs1") == key
    assert not lvstun.gate.admit(OPTS, "health", "rs1")  # the queued job will ask rs1 afresh
    assert lvstun.gate.admit(OPTS, "health", "rs2")  # another minion is not held up
    assert lvstun.gate.start(key)
    assert not lvstun.gate.again(key)  # nothing came while it ran: done
    assert lvstun.gate.admit(OPTS, "health", "rs1")  # so the next event starts a job
    assert lvstun.gate.start(key)
    assert not lvstun.gate.admit(OPTS, "health", "rs1")  # news while it runs ...
    assert not lvstun.gate.start(key)  # (or a second job by hand) ...
    assert lvstun.gate.again(key)  # ... make it run one more round
    assert not lvstun.gate.again(key)
    assert list(lvstun.gate._JOBS) == [("health", "rs2")]  # rs1 free again; rs2 queued


def test_a_job_that_never_started_stops_blocking_after_stale_job(pillars):
    now = time.monotonic()
    assert lvstun.gate.admit(OPTS, "health", "rs1", now=now)
    assert not lvstun.gate.admit(OPTS, "health", "rs1", now=now + lvstun.gate.STALE_JOB - 1)
    assert lvstun.gate.admit(OPTS, "health", "rs1", now=now + lvstun.gate.STALE_JOB + 1)


def test_an_unknown_name_reads_the_minions_again_after_the_ttl(pillars):
    assert not lvstun.gate.admit(OPTS, "health", "rs9")
    assert not lvstun.gate.admit(OPTS, "health", "rs10")
    assert pillars.listings == 1  # within the TTL: no second listing
    lvstun.sites.index(OPTS)._scanned_at -= lvstun.sites.TTL + 1
    pillars.give("rs10", pillars.pillars["rs1"], 2000.0)  # a new minion, with a site that lacks it
    assert not lvstun.gate.admit(OPTS, "health", "rs10")
    assert pillars.listings == 2


def test_the_reactor_module_renders_the_runner_call_or_nothing(pillars):
    module = load("lvs_reactor_gate", "_modules", "lvs_reactor.py")
    module.__opts__ = OPTS
    assert module.__virtual__() == "lvs_reactor"
    assert module.job("salt/beacon/rs1/lvs_backend/") == {"fun": "lvs.health", "minion": "rs1"}
    assert module.job("salt/beacon/rs1/lvs_backend/") == {}
    assert module.job("salt/beacon/director/lvs_hosts/") == {"fun": "lvs.hosts", "minion": "director"}
    assert module.job("salt/beacon/nobody/lvs_backend/") == {}
    module.__opts__ = {"__role": "minion"}
    assert module.__virtual__()[0] is False


def test_an_invalid_site_drops_the_event_with_an_error(monkeypatch, caplog):
    tree = site_tree()
    del tree["lvs"]["lan"]
    monkeypatch.setattr(lvstun.gate, "_JOBS", {})
    fake_sites.install(monkeypatch, fake_sites.of_trees(tree), OPTS)
    module = load("lvs_reactor_gate_invalid", "_modules", "lvs_reactor.py")
    module.__opts__ = OPTS
    assert module.job("salt/beacon/rs1/lvs_backend/") == {}
    assert "pillar is invalid" in caplog.text and "lvs:lan" in caplog.text
