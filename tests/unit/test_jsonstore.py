"""Records in the cache (lvstun.jsonstore): written atomically, and a damaged one does not
make the runner, the ext_pillar or a state raise."""

import json
import logging
import os

import lvstun.jsonstore as jsonstore


def _opts(tmp_path):
    return {"cachedir": str(tmp_path)}


def test_store_and_load_keep_the_previous_version(tmp_path):
    opts = _opts(tmp_path)
    jsonstore.store(opts, "health", {"maintenance": {"rs2": "upgrade"}})
    jsonstore.store(opts, "health", {"maintenance": {}})
    assert jsonstore.load(opts, "health") == {"maintenance": {}}
    with open(jsonstore.path(opts, "health") + ".prev", encoding="utf-8") as fh:
        assert json.load(fh) == {"maintenance": {"rs2": "upgrade"}}
    assert sorted(os.listdir(tmp_path / "lvs")) == ["health.json", "health.json.prev"]  # no temporary left


def test_a_damaged_record_falls_back_to_its_previous_version(tmp_path, caplog):
    opts = _opts(tmp_path)
    jsonstore.store(opts, "health", {"maintenance": {"rs2": "upgrade"}})
    jsonstore.store(opts, "health", {"maintenance": {"rs2": "upgrade"}, "health": {}})
    for damage in ("", '{"maintenance": {"rs2"'):
        with open(jsonstore.path(opts, "health"), "w", encoding="utf-8") as fh:
            fh.write(damage)
        with caplog.at_level(logging.ERROR):
            assert jsonstore.load(opts, "health", {}) == {"maintenance": {"rs2": "upgrade"}}
        assert "is damaged" in caplog.text and "using its previous version" in caplog.text


def test_a_damaged_record_without_a_previous_one_reads_as_the_default(tmp_path, caplog):
    opts = _opts(tmp_path)
    os.makedirs(tmp_path / "lvs")
    with open(jsonstore.path(opts, "health"), "wb") as fh:
        fh.write(b"\xff\xfe not json")
    with caplog.at_level(logging.ERROR):
        assert jsonstore.load(opts, "health", {"empty": True}) == {"empty": True}
    assert "no readable previous version" in caplog.text
    assert jsonstore.load(opts, "absent", []) == []


def test_the_lock_makes_a_second_holder_wait_across_threads_and_processes(tmp_path):
    import multiprocessing  # noqa: PLC0415
    import threading  # noqa: PLC0415
    import time  # noqa: PLC0415

    opts, order = _opts(tmp_path), []
    def wait_then_note():
        with jsonstore.locked(opts, "group"):
            order.append("thread")

    with jsonstore.locked(opts, "group"):
        waiter = threading.Thread(target=wait_then_note)
        waiter.start()
        time.sleep(0.2)
        order.append("holder")
    waiter.join(5)
    assert order == ["holder", "thread"]

    ctx = multiprocessing.get_context("fork")
    with jsonstore.locked(opts, "site"):
        proc = ctx.Process(target=_hold_briefly, args=(opts,))
        proc.start()
        proc.join(1.0)
        assert proc.is_alive()  # waiting for this holder (this thread's lock not inherited held)
    proc.join(5)
    assert proc.exitcode == 0


def _hold_briefly(opts):
    with jsonstore.locked(opts, "site", timeout=10):
        pass


def test_the_lock_gives_up_after_its_timeout(tmp_path):
    import pytest  # noqa: PLC0415

    opts = _opts(tmp_path)
    with jsonstore.locked(opts, "group"), pytest.raises(TimeoutError, match="held for over"), \
            jsonstore.locked(opts, "group", timeout=0.1):
        pass
