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


def test_a_module_is_reimported_when_a_shared_module_it_imports_changed(tmp_path, monkeypatch):
    (tmp_path / "lvspack_base.py").write_text("VALUE = 1\n")
    (tmp_path / "lvspack_user.py").write_text("import lvspack_base\n\ndef value():\n    return lvspack_base.VALUE\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("lvspack_base", "lvspack_user"):
        sys.modules.pop(name, None)
    user = lvspack_fresh.fresh(importlib.import_module("lvspack_user"))
    assert user.value() == 1 and lvspack_fresh.fresh(user) is user
    (tmp_path / "lvspack_base.py").write_text("VALUE = 2\n")
    later = time.time() + 5
    os.utime(tmp_path / "lvspack_base.py", (later, later))
    user = lvspack_fresh.fresh(user)
    assert user.value() == 2
    for name in ("lvspack_base", "lvspack_user"):
        sys.modules.pop(name, None)
