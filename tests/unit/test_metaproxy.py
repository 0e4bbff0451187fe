"""The metaproxy workaround refuses a Salt release it was not written for."""

import asyncio

import pytest
import salt.version

from tests.unit.checkout import load


def _metaproxy():
    return load("lvs_proxy_under_test", "_metaproxy", "lvs_proxy.py")


def test_the_release_it_was_written_for_passes():
    module = _metaproxy()
    for version in module.WRITTEN_FOR:
        module.check_salt_version(version)


def test_another_release_fails_loudly_saying_what_to_do():
    module = _metaproxy()
    with pytest.raises(RuntimeError) as err:
        module.check_salt_version("3008.5")
    assert "written for Salt 3008.4 and this is Salt 3008.5" in str(err.value)
    assert "scripts/repro-proxy-start-hang" in str(err.value)


def test_proxy_start_stops_before_touching_salt_internals_on_another_release(monkeypatch):
    module = _metaproxy()
    monkeypatch.setattr(module, "WRITTEN_FOR", ("3007.1",))  # as if this Salt were another release

    class Proxy:
        def _load_modules(self, *args, **kwargs):  # pragma: no cover (must not be reached)
            raise AssertionError("the standard metaproxy ran")

    with pytest.raises(RuntimeError, match=r"written for Salt 3007\.1"):
        asyncio.run(module.post_master_init(Proxy(), "master"))


def test_this_environment_runs_a_release_it_was_written_for():
    """The functional IOS tests run the real proxy: they need a supported Salt."""
    assert salt.version.__saltstack_version__.string in _metaproxy().WRITTEN_FOR
