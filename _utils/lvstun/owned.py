"""Ownership records: what a state of the pack created, so that it removes only that.

One JSON file per record under the minion's cache (``<cachedir>/lvs/<name>.json``): it
outlives a restart like the minion's other cached data, and a lost record only makes the
pack forget to clean up, never remove what is not its own.
"""

import json
import os


def path(opts, name):
    return os.path.join(opts["cachedir"], "lvs", f"{name.replace('/', '_')}.json")


def load(opts, name, default=None):
    """The record ``name``, or ``default`` when there is none."""
    try:
        with open(path(opts, name), encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return default


def store(opts, name, data):
    """Write the record ``name`` (atomically: a crash leaves the old or the new one)."""
    target = path(opts, name)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(f"{target}.tmp", "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    os.replace(f"{target}.tmp", target)
