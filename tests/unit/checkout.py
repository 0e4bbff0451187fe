"""The checkout's Salt modules, imported from their files for the unit tests (their pure
parts; Salt's dunders are set by the test where a function needs them)."""

import importlib.util
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load(name, *path):
    """The module at ``REPO/path``, imported under ``name``."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, *path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
