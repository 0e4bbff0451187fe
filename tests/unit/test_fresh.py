"""lvspack_fresh: a shared module whose file was replaced (saltutil.sync) is re-imported."""

import importlib
import os
import sys
import time

import lvspack_fresh


def test_changed_file_is_reimported_unchanged_is_not(tmp_path, monkeypatch):
    source = tmp_path / "lvspack_probe.py"
    source.write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("lvspack_probe", None)
    module = lvspack_fresh.fresh(importlib.import_module("lvspack_probe"))
    assert module.VALUE == 1
    assert lvspack_fresh.fresh(module) is module and module.VALUE == 1
    source.write_text("VALUE = 2\n")
    later = time.time() + 5
    os.utime(source, (later, later))
    module = lvspack_fresh.fresh(module)
    assert module.VALUE == 2
    sys.modules.pop("lvspack_probe", None)
