"""Many sites from one master (``lvstun.sites``, the runner through its harness): each
minion's site comes from that minion's own pillar as the master last stored it; a site's
record, drains and pushes stay in that site; a minion two sites claim is an error naming
both; a lookup reads no pillar unless that minion's pillar was refreshed."""

import copy
import time

import pytest
from salt.exceptions import SaltInvocationError

import lvstun.healthstore
import lvstun.records
import lvstun.site
import lvstun.sites
from tests.unit import fake_sites
from tests.unit.harness import Director, Site
from tests.unit.test_health import site_tree

WEB = "tcp:10.10.24.88:80"


def renamed(tree, name, prefix):
    """``tree`` as the site ``name`` whose minion ids start with ``prefix`` (the same
    addresses, VIPs and service names: another network)."""
    tree = copy.deepcopy(tree)
    lvs = tree["lvs"]
    lvs["site"] = name
    lvs["router"]["id"] = prefix + lvs["router"]["id"]
    for key in ("directors", "realservers"):
        lvs[key] = {prefix + minion: host for minion, host in lvs[key].items()}
    for svc in lvs["services"].values():
        if "backends" in svc:
            svc["backends"] = {prefix + minion: b for minion, b in svc["backends"].items()}
    return tree


def sites_of(*trees):
    pillars = fake_sites.of_trees(*trees)
    return lvstun.sites.Index(pillars), pillars


def test_each_minion_gets_the_site_its_own_pillar_names_and_sites_may_share_addresses():
    index, _ = sites_of(renamed(site_tree(), "eu", "eu-"), renamed(site_tree(), "us", "us-"))
    eu, us = index.site_of("eu-rs1"), index.site_of("us-rs1")
    assert (eu.name, us.name) == ("eu", "us")
    assert eu.hosts["eu-rs1"].address == us.hosts["us-rs1"].address == "10.10.24.21"
    assert index.site_of("us-director").name == "us" and index.site_of("eu-router").name == "eu"
    assert index.site_of("rs1") is None and index.site_of("stranger") is None
    assert sorted(index.sites()) == ["eu", "us"]
    with pytest.raises(KeyError, match="no minion's pillar has the site 'asia'"):
        index.sites("asia")


def test_a_minion_two_sites_claim_is_an_error_naming_both_and_the_other_sites_go_on():
    eu, us = renamed(site_tree(), "eu", "eu-"), renamed(site_tree(), "us", "us-")
    us["lvs"]["realservers"]["eu-rs2"] = {"address": "10.10.24.29"}  # us claims eu's rs2 too
    asia = renamed(site_tree(), "asia", "asia-")
    index, _ = sites_of(eu, us, asia)
    for minion in ("eu-rs1", "us-rs1", "eu-rs2"):
        with pytest.raises(lvstun.site.SiteError, match=r"'eu-rs2' is claimed by the sites 'eu' and 'us'"):
            index.site_of(minion)
    assert index.site_of("asia-rs1").name == "asia"
    found = index.sites()
    assert isinstance(found["eu"], lvstun.site.SiteError) and isinstance(found["us"], lvstun.site.SiteError)
    assert isinstance(found["asia"], lvstun.site.Site)


def test_a_lookup_reads_no_pillar_until_that_minion_is_refreshed_whatever_the_number_of_sites():
    trees = [renamed(site_tree(), f"s{n}", f"s{n}-") for n in range(50)]
    index, pillars = sites_of(*trees)
    index.site_of("s0-rs1")  # the first lookup reads every minion once
    reads, listings = len(pillars.reads), pillars.listings
    assert reads == len(pillars.pillars) and listings == 1
    for n in range(50):
        assert index.site_of(f"s{n}-rs2").name == f"s{n}"
    assert (len(pillars.reads), pillars.listings) == (reads, listings)  # no read, no listing
    # A refresh of one minion with an edited tree: read once, its site follows.
    edited = copy.deepcopy(trees[7])
    edited["lvs"]["realservers"]["s7-rs2"]["weight"] = 5
    pillars.give("s7-rs2", edited, 2000.0)
    assert index.site_of("s7-rs1").hosts["s7-rs2"].weight == 1  # rs1's own entry did not move
    assert index.site_of("s7-rs2").hosts["s7-rs2"].weight == 5
    assert index.site_of("s7-rs1").hosts["s7-rs2"].weight == 5  # the site's newest tree
    assert len(pillars.reads) == reads + 1


def test_a_pillar_stored_within_the_last_seconds_is_read_again():
    tree = site_tree()
    index, pillars = sites_of(tree)
    now = time.time()
    pillars.give("rs1", tree, int(now))
    index.site_of("rs1")
    edited = copy.deepcopy(tree)
    edited["lvs"]["realservers"]["rs2"]["weight"] = 4
    pillars.give("rs1", edited, int(now))  # refreshed again within the same second: same stamp
    assert index.site_of("rs1").hosts["rs2"].weight == 4


def test_a_bad_site_name_is_an_error_of_that_minion():
    tree = site_tree()
    tree["lvs"]["site"] = "eu west"
    index, _ = sites_of(tree)
    with pytest.raises(lvstun.site.SiteError, match=r"lvs:site: 'eu west' is no site name"):
        index.site_of("rs1")


def test_without_any_site_name_the_site_is_default():
    tree = site_tree()
    del tree["lvs"]["site"]
    assert lvstun.site.parse(tree).name == "default"


@pytest.fixture(name="two")
def fixture_two(tmp_path, monkeypatch):
    """The harness's seed site plus the site ``us`` (the same addresses, ids ``us-*``),
    one runner for both, each site's director answering with its own modules."""
    site = Site(tmp_path, monkeypatch)
    us = renamed(site.tree, "us", "us-")
    (tmp_path / "us-director").mkdir()
    site.directors["us-director"] = Director("us-director", tmp_path / "us-director", us)
    site.directors["us-director"].highstate()
    for minion in [us["lvs"]["router"]["id"], *us["lvs"]["directors"], *us["lvs"]["realservers"]]:
        site.pillars.give(minion, us, 1000.0)
    healthy = {"services": {"web": {"healthy": True}}, "at": time.time(), "age": 0.5}
    site.reports = {minion: copy.deepcopy(healthy) for minion in ("rs1", "rs2", "us-rs1", "us-rs2")}
    return site


def test_a_drain_in_one_site_changes_no_table_nor_record_of_the_other(two):
    assert two.runner.drain("us-rs2")["site"] == "us"
    assert two.directors["us-director"].kernel[WEB]["10.10.24.22:80"] == 0
    assert two.directors["director"].kernel[WEB]["10.10.24.22:80"] == 1  # seed's rs2: the same address
    assert ("lvs_health.apply", ["us-director"]) in two.sent
    assert ("lvs_health.apply", ["director"]) not in two.sent
    us = lvstun.records.HEALTH.named("us")
    assert list(lvstun.records.load(two.runner.__opts__, us)["maintenance"]) == ["us-rs2"]
    assert two.current()["maintenance"] == {}
    with pytest.raises(SaltInvocationError, match="'us-rs1' is of the site 'us', not 'seed'"):
        two.runner.drain("us-rs1", site="seed")


def test_a_report_changes_only_the_reporting_minions_own_site(two):
    two.reports["us-rs1"]["services"]["web"]["healthy"] = False
    # A report naming seed's real server, sent by us-rs1: it speaks for its own backends only.
    two.reports["us-rs1"]["services"]["rs1"] = {"healthy": False}
    assert two.runner.health("us-rs1")["site"] == "us"
    assert two.directors["us-director"].kernel[WEB]["10.10.24.21:80"] == 0
    assert two.directors["director"].kernel[WEB]["10.10.24.21:80"] == 1
    assert two.current().get("health", {}) == {}
    assert two.runner.health("rs1", site="us") == {"ignored": "'rs1' is not a real server of 'us'"}


def test_the_status_shows_every_site_apart_and_one_by_name(two):
    data = two.runner.status()["data"]
    assert sorted(data) == ["seed", "us"]
    assert sorted(data["us"]["directors"]) == ["us-director"] and sorted(data["seed"]["directors"]) == ["director"]
    assert sorted(data["us"]["services"]["web"]["backends"]) == ["us-rs1", "us-rs2", "us-rs3", "us-rs4"]
    assert sorted(two.runner.status(site="us")["data"]) == ["us"]
    with pytest.raises(SaltInvocationError, match="no minion's pillar has the site 'asia'"):
        two.runner.status(site="asia")


def test_a_hosts_poll_asks_only_the_directors_of_the_directors_own_site(two):
    result = two.runner.hosts("us-director")
    assert result["site"] == "us" and result["answered"] == ["us-director"]
    assert [targets for fun, targets in two.sent if fun == "lvs_health.reachability"] == [["us-director"]]
    assert sorted(two.runner.hosts()) == ["seed", "us"]  # by hand, without a minion: every site
    with pytest.raises(SaltInvocationError, match="'us-rs1' is not a director"):
        two.runner.hosts("us-rs1")


def test_a_master_upgraded_from_one_record_gives_each_site_its_own_minions_part(two):
    legacy = {"epoch": "e1", "seq": 41, "health": {"rs3": {"services": {"web": False}, "host": True},
                                                  "us-rs3": {"services": {"web": True}, "host": True}},
              "maintenance": {"rs2": {"services": ["*"], "reason": "upgrade"},
                              "us-rs1": {"services": ["*"], "reason": "disk"}}}
    lvstun.records.store(two.runner.__opts__, lvstun.records.LEGACY_HEALTH, legacy)
    seed = two.current()
    assert list(seed["maintenance"]) == ["rs2"] and list(seed["health"]) == ["rs3"]
    assert (seed["epoch"], seed["seq"]) == ("e1", 42)  # the same lineage: the directors' copies confirm
    assert "taken from the master's record of before sites" in seed["recoveries"][-1]["what"]
    us = lvstun.healthstore.current(two.runner.__opts__, lvstun.sites.index(two.runner.__opts__).site_of("us-rs1"))
    assert list(us["maintenance"]) == ["us-rs1"] and list(us["health"]) == ["us-rs3"]
    two.runner.undrain("rs2")  # then each site's own record goes on (the old one is not read again)
    assert two.current()["maintenance"] == {} and list(two.current()["health"]) == ["rs3"]


def test_the_masters_cache_is_read_as_salt_stores_it(tmp_path):
    import salt.cache  # noqa: PLC0415
    import salt.config  # noqa: PLC0415

    opts = dict(salt.config.DEFAULT_MASTER_OPTS, cachedir=str(tmp_path), pki_dir=str(tmp_path / "pki"))
    salt.cache.factory(opts).store("pillar", "eu-rs1", renamed(site_tree(), "eu", "eu-"))
    pillars = lvstun.sites.MinionPillars(opts)
    assert pillars.minions() == ["eu-rs1"] and pillars.stamp("eu-rs1") >= int(time.time()) - 5
    assert pillars.pillar("eu-rs1")["lvs"]["site"] == "eu" and pillars.stamp("nobody") is None
    assert pillars.compiled("eu-rs1") is None  # the cache is on: nothing compiled
    assert lvstun.sites.Index(pillars).site_of("eu-rs1").name == "eu"


def test_a_minion_with_no_pillar_of_its_own_belongs_to_the_site_that_names_it():
    eu, us = renamed(site_tree(), "eu", "eu-"), renamed(site_tree(), "us", "us-")
    pillars = fake_sites.of_trees(eu, us)
    del pillars.pillars["eu-rs2"], pillars.stamps["eu-rs2"]  # never started: no pillar stored
    pillars.give("us-rs3", {"other": 1}, 1000.0)  # a top file that forgot it
    index = lvstun.sites.Index(pillars)
    assert index.site_of("eu-rs2").name == "eu" and index.site_of("us-rs3").name == "us"
    assert index.site_of("eu-rs9") is None
