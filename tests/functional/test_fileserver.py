"""The classic way: the checkout as a real salt-master's file roots; saltutil.sync_all
pushes the pack to a real salt-minion, whose highstate then runs the pack's states."""

import os

import pytest

from tests.functional import masters

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module", name="master")
def fixture_master(salt_factories):
    factory = salt_factories.salt_master_daemon("lvs-fs-master",
                                                overrides=masters.overrides(os.path.join(REPO, "pillar")))
    with factory.started():
        yield factory


# A minion outside the site: its highstate validates the site and changes nothing on
# this machine (the role states run in the lab, on kernels the lab built).
MINION = "bystander"


@pytest.fixture(scope="module", name="director")
def fixture_director(master):
    factory = master.salt_minion_daemon(MINION)
    with factory.started():
        yield factory


def test_sync_all_pushes_the_pack_from_the_checkout(master, director):
    ret = master.salt_cli(timeout=180).run("saltutil.sync_all", minion_tgt=MINION)
    assert ret.returncode == 0, ret
    synced = ret.data
    assert "modules.lvs_site" in synced["modules"]
    assert "states.lvs_site" in synced["states"]
    assert "utils.lvstun.site" in synced["utils"]
    # Nothing outside the Salt folders travels (the ignore list holds).
    listed = master.salt_cli(timeout=180).run("cp.list_master", minion_tgt=MINION).data
    assert "lvs/init.sls" in listed and "_modules/lvs_site.py" in listed
    assert not [path for path in listed if path.startswith((".venv/", ".git/", "tests/", "lab/", "bench/"))]


def test_synced_module_reads_the_role_from_pillar(master, director):
    cli = master.salt_cli(timeout=180)
    ret = cli.run("lvs_site.role", minion_tgt=MINION)
    assert ret.returncode == 0 and ret.data is None
    ret = cli.run("lvs_site.role", "rs2", minion_tgt=MINION)
    assert ret.returncode == 0 and ret.data == "realserver"


def test_highstate_runs_the_pack(master, director):
    ret = master.salt_cli(timeout=180).run("state.apply", minion_tgt=MINION)
    assert ret.returncode == 0, ret
    states = {state["__id__"]: state for state in ret.data.values()}
    assert sorted(states) == ["lvs-minion-startup-highstate", "lvs-site-valid"]
    assert all(state["result"] is True for state in states.values())
    conf = os.path.join(os.path.dirname(director.config_file), "minion.d", "lvs-pack.conf")
    with open(conf, encoding="utf-8") as fh:
        assert "startup_states: highstate" in fh.read()
