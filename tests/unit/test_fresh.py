"""lvstun.fresh: a shared module whose file was replaced (saltutil.sync) is re-imported."""

import importlib
import os
import sys
import time

import lvstun.fresh


def _package(tmp_path, monkeypatch, files):
    package = tmp_path / "freshprobe"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name, text in files.items():
        (package / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in list(sys.modules):
        if name.startswith("freshprobe"):
            del sys.modules[name]
    return package


def _touch_later(path, text):
    path.write_text(text)
    later = time.time() + 5
    os.utime(path, (later, later))


def test_changed_file_is_reimported_unchanged_is_not(tmp_path, monkeypatch):
    package = _package(tmp_path, monkeypatch, {"probe.py": "VALUE = 1\n"})
    module = lvstun.fresh.fresh(importlib.import_module("freshprobe.probe"))
    assert module.VALUE == 1
    module.MARK = "kept"
    assert lvstun.fresh.fresh(module) is module and module.MARK == "kept"  # not re-imported
    _touch_later(package / "probe.py", "VALUE = 2\n")
    assert lvstun.fresh.fresh(module).VALUE == 2


def test_a_module_is_reimported_when_a_sibling_it_imports_changed(tmp_path, monkeypatch):
    package = _package(tmp_path, monkeypatch, {
        "base.py": "VALUE = 1\n",
        "user.py": "from . import base\nfrom .base import VALUE\n\ndef value():\n    return VALUE\n",
    })
    user = lvstun.fresh.fresh(importlib.import_module("freshprobe.user"))
    assert user.value() == 1 and lvstun.fresh.fresh(user) is user
    _touch_later(package / "base.py", "VALUE = 2\n")
    assert lvstun.fresh.fresh(user).value() == 2  # the from-import binding is new too


def test_modules_that_import_each_other_do_not_loop(tmp_path, monkeypatch):
    _package(tmp_path, monkeypatch, {"a.py": "from . import b\n", "b.py": "from . import a\n"})
    module = importlib.import_module("freshprobe.a")
    assert lvstun.fresh.fresh(module) is module


def test_every_call_in_the_pack_passes_one_module_as_the_fresh_of_an_older_release_takes_it():
    # A minion upgraded in place loads the new loader modules with the fresh() it imported
    # at its start (fresh cannot refresh itself): a call of another shape would fail there.
    import ast  # noqa: PLC0415
    import glob  # noqa: PLC0415

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    calls = 0
    for path in glob.glob(os.path.join(repo, "_*", "**", "*.py"), recursive=True):
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "fresh":
                calls += 1
                assert len(node.args) == 1 and not node.keywords, f"{path}:{node.lineno}"
    assert calls > 20
