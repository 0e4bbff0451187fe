"""The checkout for the unit tests: its Salt modules imported from their files (their
pure parts; Salt's dunders are set by the test where a function needs them), its
example sites, and a site's errors."""

import importlib.util
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load(name, *path):
    """The module at ``REPO/path``, imported under ``name``."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, *path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def example_site(name):
    """The pillar tree of the example site ``pillar/lvs/NAME.sls`` (plain YAML)."""
    import yaml  # noqa: PLC0415

    with open(os.path.join(REPO, "pillar", "lvs", f"{name}.sls"), encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def site_errors(tree):
    """Every error ``lvstun.site.parse`` finds in the pillar ``tree`` (it must find one)."""
    import pytest  # noqa: PLC0415

    import lvstun.site  # noqa: PLC0415

    with pytest.raises(lvstun.site.SiteError) as err:
        lvstun.site.parse(tree)
    return err.value.errors
