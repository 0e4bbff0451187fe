"""Drift: one difference between what a host holds and what its role wants.

Every ``check`` of the pack returns a list of drift records, plain data::

    {"kind": "address", "object": "tunl0", "want": "10.10.24.88/32", "have": None}

``want`` or ``have`` None means absent. Beacons read the fields (an ``address`` drift
names the address it is about); states show each drift as one change, named by
:func:`name`, with ``{"old": have, "new": want}`` (:func:`as_changes`).
"""

# kind: how a drift of that kind is named in a state's changes.
NAMES = {
    "link": "{object}",                    # a device: want/have "present"/"absent"
    "up": "{object} up",                   # a device's state: True/False
    "mtu": "{object} mtu",                 # a device's MTU
    "address": "{object} address {value}",  # an address (CIDR) on a device
    "gue-port": "GUE port {object}",       # a foo-over-UDP receive port: want/have "gue" or None
    "gue-port6": "IPv6 GUE port {object}",  # the same for IPv6
    "sysctl": "{object}",                  # a sysctl by name: integers
    "default-route": "default route",      # object "main": want/have "via GATEWAY"
    "default-route6": "IPv6 default route",  # the same for IPv6
    "route": "route {object}",             # a route the pack owns, by destination: "via ..."
    "table-route": "table {object}",       # object "TABLE route DST": "via ... advmss N"
    "rule": "rule {object}",               # object "from VIP lookup TABLE": "priority N"
    "nft-table": "nftables table {object}",  # object "FAMILY NAME": lists of rule lines
    "ios-line": "{object}",                # an IOS configuration line: "present"/"absent"
    "ios-saved": "{object}",               # "startup-config": saved or not
    "director-group": "{object}",          # a router's director group object (lvstun.dirgroup)
    "ipvs-sync": "sync daemon {object}",   # object "master"/"backup": "eth0 syncid 1"
    "exporter": "exporter {object}",       # object "process": want/have "ADDRESS:PORT" or None
    "metrics-view": "metrics view {object}",  # object: a spec, or "spec -> dest": lvstun.metrics.view_changes
    "check-failed": "{object} failed",     # a check that could not run: have = the error
}


def make(kind, obj, want, have):
    """A drift record; ``kind`` one of :data:`NAMES`."""
    if kind not in NAMES:
        raise ValueError(f"unknown drift kind {kind!r}")
    return {"kind": kind, "object": obj, "want": want, "have": have}


def name(record):
    """The drift's name in a state's changes (``tunl0 address 10.10.24.88/32``)."""
    value = record["want"] if record["want"] is not None else record["have"]
    return NAMES[record["kind"]].format(object=record["object"], value=value)


def as_changes(records):
    """``{name: {"old": have, "new": want}}``: the drifts as a state's changes."""
    return {name(r): {"old": r["have"], "new": r["want"]} for r in records}


def addresses(record):
    """The IP addresses (without prefix) an ``address`` drift is about; empty for others."""
    if record["kind"] != "address":
        return set()
    return {str(v).split("/")[0] for v in (record["want"], record["have"]) if v is not None}
