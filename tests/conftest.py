"""Test layers by folder: tests/unit (pure logic), tests/functional (real Salt on this
host), tests/lab (real kernels: the lab). Run the fast layers with ``-m "not lab"``."""

import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The shared code of the Salt modules, importable as Salt's loader would see it.
sys.path.insert(0, os.path.join(REPO, "_utils"))

LAYERS = ("unit", "functional", "lab")


def pytest_collection_modifyitems(items):
    for item in items:
        parts = os.path.relpath(str(item.fspath), os.path.join(REPO, "tests")).split(os.sep)
        if parts[0] in LAYERS:
            item.add_marker(getattr(pytest.mark, parts[0]))
