"""Salt loader entry point: ``salt.loader = lvs = lvs_salt.loader:get_dirs``."""

import os

_HERE = os.path.dirname(os.path.abspath(__file__))

# Salt's loader kind -> the subpackage that holds the pack's modules of that kind
# (installed as lvs_salt/<name>; in a checkout or an editable install, ../_<name>).
_KINDS = {"modules": "modules", "states": "states", "beacons": "beacons", "runners": "runners",
          "proxy": "proxy", "metaproxy": "metaproxy", "pillar": "pillar", "output": "output"}


def _folder(name):
    for path in (os.path.join(_HERE, name), os.path.join(os.path.dirname(_HERE), f"_{name}")):
        if os.path.isdir(path):
            return path
    return None


def get_dirs():
    """Return the pack's module folders, keyed by Salt loader kind."""
    found = {kind: _folder(name) for kind, name in _KINDS.items()}
    return {kind: [path] for kind, path in found.items() if path}
