"""The site the last highstate applied (``lvs_site.remember``): recorded by a valid
site's check outside test mode, read by what runs outside a highstate
(``lvs_site.tree applied=True``), the minion's own pillar before any."""

import copy

from tests.unit.checkout import load
from tests.unit.test_health import site_tree


def _module(tmp_path, pillar):
    module = load("lvs_site_module", "_modules", "lvs_site.py")
    module.__opts__ = {"cachedir": str(tmp_path), "id": "director"}
    module.__pillar__ = pillar
    return module


def test_the_applied_site_is_the_one_remembered_not_the_minions_pillar_edited_since(tmp_path):
    applied = site_tree()
    module = _module(tmp_path, applied)
    assert module.tree(applied=True) == applied["lvs"]  # nothing remembered yet: the pillar
    module.remember()
    edited = copy.deepcopy(applied)
    edited["lvs"]["realservers"]["rs1"]["weight"] = 5
    module.__pillar__ = edited
    assert module.tree(applied=True) == applied["lvs"]
    assert module.tree() == edited["lvs"]
    assert module._site(applied=True).hosts["rs1"].weight == 1
    module.remember()
    assert module.tree(applied=True) == edited["lvs"]


def test_a_valid_site_is_remembered_by_its_check_but_not_in_test_mode(tmp_path):
    state = load("lvs_site_state", "_states", "lvs_site.py")
    calls = []
    state.__salt__ = {"lvs_site.validate": lambda: [], "lvs_site.remember": lambda: calls.append("remember")}
    state.__opts__ = {"test": True}
    assert state.valid()["result"] is True and calls == []
    state.__opts__ = {"test": False}
    assert state.valid() == {"name": "lvs", "changes": {}, "result": True, "comment": "the site's pillar is valid"}
    assert calls == ["remember"]
    state.__salt__["lvs_site.validate"] = lambda: ["lvs:lan:subnet: not a network"]
    assert state.valid()["result"] is False and calls == ["remember"]  # an invalid site is never the applied one
