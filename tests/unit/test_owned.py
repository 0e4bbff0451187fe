"""Records in the cache (lvstun.owned): written atomically, and a damaged one does not
make the runner, the ext_pillar or a state raise."""

import json
import logging
import os

import lvstun.owned as owned


def _opts(tmp_path):
    return {"cachedir": str(tmp_path)}


def test_store_and_load_keep_the_previous_version(tmp_path):
    opts = _opts(tmp_path)
    owned.store(opts, "health", {"maintenance": {"rs2": "upgrade"}})
    owned.store(opts, "health", {"maintenance": {}})
    assert owned.load(opts, "health") == {"maintenance": {}}
    with open(owned.path(opts, "health") + ".prev", encoding="utf-8") as fh:
        assert json.load(fh) == {"maintenance": {"rs2": "upgrade"}}
    assert sorted(os.listdir(tmp_path / "lvs")) == ["health.json", "health.json.prev"]  # no temporary left


def test_a_damaged_record_falls_back_to_its_previous_version(tmp_path, caplog):
    opts = _opts(tmp_path)
    owned.store(opts, "health", {"maintenance": {"rs2": "upgrade"}})
    owned.store(opts, "health", {"maintenance": {"rs2": "upgrade"}, "health": {}})
    for damage in ("", '{"maintenance": {"rs2"'):
        with open(owned.path(opts, "health"), "w", encoding="utf-8") as fh:
            fh.write(damage)
        with caplog.at_level(logging.ERROR):
            assert owned.load(opts, "health", {}) == {"maintenance": {"rs2": "upgrade"}}
        assert "is damaged" in caplog.text and "using its previous version" in caplog.text


def test_a_damaged_record_without_a_previous_one_reads_as_the_default(tmp_path, caplog):
    opts = _opts(tmp_path)
    os.makedirs(tmp_path / "lvs")
    with open(owned.path(opts, "health"), "wb") as fh:
        fh.write(b"\xff\xfe not json")
    with caplog.at_level(logging.ERROR):
        assert owned.load(opts, "health", {"empty": True}) == {"empty": True}
    assert "no readable previous version" in caplog.text
    assert owned.load(opts, "absent", []) == []
