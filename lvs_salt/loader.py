"""Salt loader entry point: ``salt.loader = lvs = lvs_salt.loader:get_dirs``."""

import os

_HERE = os.path.dirname(os.path.abspath(__file__))

# Salt's loader kind -> the installed folder that holds the pack's modules of that kind.
_KINDS = {"modules": "modules", "states": "states", "beacons": "beacons", "runners": "runners"}


def get_dirs():
    """Return the pack's module folders, keyed by Salt loader kind."""
    return {
        kind: [os.path.join(_HERE, folder)]
        for kind, folder in _KINDS.items()
        if os.path.isdir(os.path.join(_HERE, folder))
    }
