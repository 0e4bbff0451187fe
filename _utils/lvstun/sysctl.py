"""Kernel settings under /proc/sys, read and written directly (no sysctl process).

Values here are runtime values of the current network namespace; the pack makes them
survive a reboot by re-applying its states at minion start (``salt/lvs/minion.sls``).
"""

import os

from . import drift


class SysctlError(OSError):
    """A setting could not be written; the message names it."""


# Settings per interface: the interface's name, which may hold dots (a VLAN: eth0.100),
# sits between these prefixes and the setting's last component.
PER_INTERFACE = (("net", "ipv4", "conf"), ("net", "ipv6", "conf"), ("net", "ipv4", "neigh"), ("net", "ipv6", "neigh"))


def path(name):
    """``net.ipv4.conf.all.arp_ignore`` -> ``/proc/sys/net/ipv4/conf/all/arp_ignore``;
    ``net.ipv4.conf.eth0.100.rp_filter`` -> ``.../conf/eth0.100/rp_filter``."""
    parts = name.split(".")
    if tuple(parts[:3]) in PER_INTERFACE and len(parts) > 5:
        parts = [*parts[:3], ".".join(parts[3:-1]), parts[-1]]
    return os.path.join("/proc/sys", *parts)


def normal(value):
    """A setting's value as the pack compares it: an integer, or a list of integers for
    a setting of several (``net.ipv4.vs.sync_threshold``: ``[3, 0]``)."""
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value] if len(value) != 1 else int(value[0])
    if isinstance(value, str) and len(value.split()) > 1:
        return [int(v) for v in value.split()]
    return int(value)


def read(name):
    """The value of ``name`` (:func:`normal`), or None when the setting does not exist."""
    try:
        with open(path(name), encoding="ascii") as fh:
            return normal(fh.read().split())
    except (OSError, ValueError, IndexError):
        return None


def write(name, value):
    value = normal(value)
    try:
        with open(path(name), "w", encoding="ascii") as fh:
            fh.write(" ".join(map(str, value)) if isinstance(value, list) else str(value))
    except OSError as err:
        raise SysctlError(f"cannot set {name}={value}: {err.strerror}") from err


def drifts(wanted, skip=()):
    """A ``sysctl`` drift record (:mod:`lvstun.drift`) for every setting that differs.

    Settings whose name contains one of ``skip`` (say ``.tunl0.`` before the device
    exists) are left out.
    """
    out = []
    for name, value in wanted.items():
        if any(part in name for part in skip):
            continue
        current = read(name)
        if current != normal(value):
            out.append(drift.make("sysctl", name, normal(value), current))
    return out


def apply(wanted):
    """Write every setting of ``wanted`` that differs; return the names written."""
    written = []
    for name, value in wanted.items():
        if read(name) != normal(value):
            write(name, value)
            written.append(name)
    return written
