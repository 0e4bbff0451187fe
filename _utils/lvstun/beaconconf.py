"""A beacon's settings and the site it works for, read one way by every beacon of the pack.

Each beacon declares its own settings as data (:class:`Setting`: default, lower bound,
integer or seconds); :func:`validate` is its ``validate()`` (Salt calls it when the
beacon is added, and the answer names the beacon and the setting), :func:`read` gives
the settings with their defaults at each call. Salt's own settings of every beacon
(``interval``, ``enabled``, ...) are accepted and left to Salt.

The site: a beacon goes by the site the last highstate applied (``lvs_site.tree
applied=True``), never by the minion's in-memory pillar, which Salt does not refresh
after a highstate; :func:`applied_site` gives it parsed, or None while it is invalid
(a beacon then keeps what it did last).
"""

import math
from typing import NamedTuple

from salt.exceptions import SaltInvocationError

import lvstun.site

SALT_SETTINGS = frozenset({"interval", "disable_during_state_run", "enabled", "run_once"})


class Setting(NamedTuple):
    default: float
    above: float = 0  # a value must be greater than this
    integer: bool = False

    def problem(self, value):
        kind = "a whole number" if self.integer else "a number of seconds"
        if isinstance(value, bool) or not isinstance(value, int if self.integer else (int, float)) \
                or not math.isfinite(value) or value <= self.above:
            return f"{value!r} must be {kind} above {self.above:g}"
        return None


def as_dict(config):
    """A beacon's configuration as one dict (Salt gives a list of one-key dicts), or
    None when it is neither."""
    if isinstance(config, list):
        merged = {}
        for item in config:
            if not isinstance(item, dict):
                return None
            merged.update(item)
        return merged
    return dict(config) if isinstance(config, dict) else None


def validate(name, config, settings):
    """``(True, "valid")`` or ``(False, why)``, naming the beacon and the setting."""
    conf = as_dict(config)
    known = sorted(set(settings) | {"interval"})
    if conf is None:
        return False, f"{name}: the configuration is a list of settings ({', '.join(known)})"
    unknown = set(conf) - set(settings) - SALT_SETTINGS
    if unknown:
        return False, f"{name}: unknown setting(s) {sorted(unknown)} (known: {', '.join(known)})"
    for key, setting in settings.items():
        problem = setting.problem(conf[key]) if key in conf else None
        if problem:
            return False, f"{name}: {key} {problem}"
    return True, "valid"


def read(config, settings):
    """The beacon's settings at a call: each declared one, its default where unset."""
    conf = as_dict(config or {}) or {}
    return {key: conf.get(key, setting.default) for key, setting in settings.items()}


def applied_site(salt):
    """The site the last highstate applied, parsed (``salt``: the beacon's ``__salt__``),
    or None while it is invalid."""
    try:
        return lvstun.site.parse({lvstun.site.PILLAR_KEY: salt["lvs_site.tree"](applied=True)})
    except lvstun.site.SiteError:
        return None


def applied_role(salt):
    """What this minion holds for its role by the site the last highstate applied
    (``lvs_site.config applied=True``), or None while that site is invalid."""
    try:
        return salt["lvs_site.config"](applied=True)
    except SaltInvocationError:  # an invalid site
        return None
