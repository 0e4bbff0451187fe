"""Many sites from one real salt-master (docs/sites.md): a pillar top file that targets
the minions only (two sites, the same addresses, the master's own id in no target), real
minions of both; ``salt-run lvs.*`` finds each minion's site from that minion's own
pillar as the master stored it, keeps a record per site, shows each site apart, and
refuses a minion two sites claim, naming both. (Their kernels' part: the lab.)"""

import json
import os
import time

import pytest
import yaml

import lvs_salt.master
from tests.functional import masters
from tests.unit.test_health import site_tree
from tests.unit.test_sites import renamed

EU, US = renamed(site_tree(), "eu", "eu-"), renamed(site_tree(), "us", "us-")


def _write(pillar_dir, name, tree):
    (pillar_dir / f"{name}.sls").write_text(yaml.safe_dump(tree))


@pytest.fixture(scope="module", name="pillar_dir")
def fixture_pillar_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sites-pillar")
    (folder / "top.sls").write_text(yaml.safe_dump({"base": {"eu-*": ["eu"], "us-*": ["us"]}}))
    _write(folder, "eu", EU)
    _write(folder, "us", US)
    return folder


@pytest.fixture(scope="module", name="master")
def fixture_master(salt_factories, pillar_dir):
    factory = salt_factories.salt_master_daemon("lvs-sites-master",
                                                overrides=masters.overrides(pillar_dir, **lvs_salt.master.config()))
    with factory.started():
        yield factory


@pytest.fixture(scope="module", name="minions")
def fixture_minions(master):
    eu, us = master.salt_minion_daemon("eu-rs1"), master.salt_minion_daemon("us-rs1")
    with eu.started(), us.started():
        yield eu, us


def _run(master, *args):
    """``(returncode, data, text)`` of ``salt-run ARGS --out=json``; the directors are no
    minions here, so Salt's client prints "No minions matched" before the JSON: skipped."""
    ret = master.salt_run_cli(timeout=120).run(*args, "--out=json")
    data = ret.data
    if data is None and "\n{" in ret.stdout:
        data = json.loads(ret.stdout[ret.stdout.index("\n{") + 1:])
    return ret.returncode, data, ret.stdout + ret.stderr


def _record(master, site):
    path = os.path.join(master.config["cachedir"], "lvs", f"site.{site}.health.json")
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def test_the_runner_knows_both_sites_from_their_minions_pillars_alone(master, minions):
    code, data, text = _run(master, "lvs.status")
    assert code == 0 and sorted(data) == ["eu", "us"], text
    assert sorted(data["eu"]["directors"]) == ["eu-director"]
    assert sorted(data["us"]["services"]["web"]["backends"]) == ["us-rs1", "us-rs2", "us-rs3", "us-rs4"]
    assert sorted(_run(master, "lvs.status", "site=us")[1]) == ["us"]


def test_a_drain_goes_into_its_own_sites_record_only(master, minions):
    code, data, text = _run(master, "lvs.drain", "eu-rs2", "reason=disk")
    assert code == 0 and data["site"] == "eu", text
    assert list(_record(master, "eu")["maintenance"]) == ["eu-rs2"]
    assert _record(master, "us").get("maintenance", {}) == {}
    assert "'eu-rs2' is of the site 'eu', not 'us'" in _run(master, "lvs.drain", "eu-rs2", "site=us")[2]
    assert _run(master, "lvs.undrain", "eu-rs2")[1]["still_drained"] == []
    # A real server is asked in its own site (it has no beacon report here: no answer).
    assert _run(master, "lvs.health", "us-rs1")[1] == {"minion": "us-rs1", "site": "us", "answered": False}


def test_a_rolling_takes_its_hosts_by_glob_or_grain_from_the_masters_matcher_one_site_at_a_time(master, minions):
    def plan(*args):
        code, data, text = _run(master, "lvs.rolling", *args, "action=upgrade", "test=True")
        assert code == 0, text
        return {site: result["plan"]["batches"] for site, result in data.items()}

    assert plan("targets=eu-rs*") == {"eu": [["eu-rs1"]]}  # the minions the master knows: eu-rs1 of eu-rs*
    assert plan("targets=id:us-rs1", "tgt_type=grain") == {"us": [["us-rs1"]]}
    assert plan("targets=*-rs1", "site=us") == {"us": [["us-rs1"]]}
    assert "names hosts of the sites eu, us: give site=" in _run(master, "lvs.rolling", "targets=*-rs1",
                                                                "action=upgrade", "test=True")[2]


def test_a_minion_two_sites_claim_stops_both_with_an_error_naming_them(master, minions, pillar_dir):
    claiming = renamed(site_tree(), "us", "us-")
    claiming["lvs"]["realservers"]["eu-rs2"] = {"address": "10.10.24.29"}
    _write(pillar_dir, "us", claiming)
    try:
        assert master.salt_cli(timeout=120).run("saltutil.refresh_pillar", "wait=True", minion_tgt="us-rs1").data
        deadline = time.monotonic() + 30
        while "error" not in (data := _run(master, "lvs.status")[1]).get("us", {}):
            assert time.monotonic() < deadline, data
            time.sleep(1)
        for site in ("eu", "us"):
            assert "'eu-rs2' is claimed by the sites 'eu' and 'us'" in data[site]["error"], data
        assert "claimed by the sites 'eu' and 'us'" in _run(master, "lvs.drain", "eu-rs1")[2]
    finally:
        _write(pillar_dir, "us", US)
        master.salt_cli(timeout=120).run("saltutil.refresh_pillar", "wait=True", minion_tgt="us-rs1")
