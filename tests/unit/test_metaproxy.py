"""The metaproxy workaround checks what it wraps in the running Salt, not a version
number (issue 25): a release with the same internals passes, one without them stops
the proxy saying what changed, one that no longer syncs at start runs the standard way."""

import asyncio
import types

import pytest

from tests.unit.checkout import load


def _metaproxy():
    return load("lvs_proxy_under_test", "_metaproxy", "lvs_proxy.py")


def test_this_salt_has_what_the_workaround_wraps_and_still_syncs_at_proxy_start():
    """Whatever Salt pip installed (3008.4 today, 3008.5 the day the index has its
    certifi): the functional IOS tests run the real proxy through this guard."""
    assert _metaproxy().check_internals() is True


def _standard_like(module, **changes):
    functions = {name: getattr(module._standard, name) for name in module.DELEGATES}
    functions.update(changes)
    return types.SimpleNamespace(**functions)


def test_a_release_whose_internals_changed_stops_saying_what_changed():
    module = _metaproxy()

    async def post_master_init(self, master, extra):  # pragma: no cover (never run)
        return None

    def handle_payload(self, payload):  # pragma: no cover
        return None

    changed = _standard_like(module, post_master_init=post_master_init, handle_payload=handle_payload,
                             tune_in=None)
    with pytest.raises(RuntimeError) as err:
        module.check_internals(changed)
    text = str(err.value)
    assert "post_master_init takes (self, master, extra), not (self, master)" in text
    assert "handle_payload is no longer a coroutine" in text and "tune_in is gone" in text
    assert "scripts/repro-proxy-start-hang" in text


def test_a_release_that_no_longer_syncs_at_start_does_not_need_the_workaround():
    module = _metaproxy()

    async def post_master_init(self, master):  # pragma: no cover (its source is read, not run)
        return master

    assert module.check_internals(_standard_like(module, post_master_init=post_master_init)) is False


def test_proxy_start_stops_before_touching_salt_internals_when_they_changed(monkeypatch):
    module = _metaproxy()
    monkeypatch.setattr(module, "DELEGATES", {**module.DELEGATES, "post_master_init": (True, ["self", "other"])})

    class Proxy:
        def _load_modules(self, *args, **kwargs):  # pragma: no cover (must not be reached)
            raise AssertionError("the standard metaproxy ran")

    with pytest.raises(RuntimeError, match=r"post_master_init takes \(self, master\), not \(self, other\)"):
        asyncio.run(module.post_master_init(Proxy(), "master"))
