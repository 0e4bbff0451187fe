"""What a host held before the pack changed it, so that a host leaving the site gets
back exactly that (``salt/lvs/clean.sls``) and nothing else is touched.

One record per host (``host-originals`` in the minion's cache, ``lvstun.records``),
filled from the drifts the pack repairs, before it repairs them; a value is recorded
once, the first time the pack changes it::

    {"sysctls": {name: value before (None: the setting did not exist)},
     "addresses": {interface: [address/prefix the pack added]},
     "links": {device: {"exists": bool, "up": bool, "mtu": int}},
     "default_route": "via GATEWAY" or None,      # only when the pack changed it
     "default_route6": "via GATEWAY" or None,     # the same for IPv6
     "mss_tables": [routing table of the MSS clamp],
     "nft_tables": ["FAMILY NAME"],
     "fou_ports": [GUE receive port the pack opened],
     "fou_ports6": [the same, IPv6]}

Plain functions over that dict (:func:`load` and :func:`store` read and write it).
"""

from . import records

PARTS = ("sysctls", "addresses", "links", "default_route", "default_route6", "mss_tables", "nft_tables",
         "fou_ports", "fou_ports6")
# The part that keeps a default route's value before, by its drift kind (IPv4, IPv6).
DEFAULT_ROUTE_PARTS = {"default-route": "default_route", "default-route6": "default_route6"}


def load(opts):
    """This host's record (``lvstun.records.HOST_ORIGINALS``, shape-checked), every part present."""
    return normal(records.load(opts, records.HOST_ORIGINALS))


def store(opts, record):
    records.store(opts, records.HOST_ORIGINALS, record)


def empty():
    return {"sysctls": {}, "addresses": {}, "links": {}, "mss_tables": [], "nft_tables": [], "fou_ports": [],
            "fou_ports6": []}


def normal(record):
    """``record`` with every part present (a missing or older record reads as empty)."""
    out = empty()
    for part, value in (record or {}).items():
        if part in PARTS:
            out[part] = value
    return out


def note_drifts(record, drifts):
    """Record the originals that repairing ``drifts`` (:mod:`lvstun.drift`) will change:
    sysctls' values, addresses added, the default route. Returns the new record."""
    record = normal(record)
    for d in drifts:
        if d["kind"] == "sysctl":
            record["sysctls"].setdefault(d["object"], d["have"])
        elif d["kind"] == "address" and d["want"] is not None and d["have"] is None:
            added = record["addresses"].setdefault(d["object"], [])
            if d["want"] not in added:
                added.append(d["want"])
        elif d["kind"] in DEFAULT_ROUTE_PARTS and DEFAULT_ROUTE_PARTS[d["kind"]] not in record:
            record[DEFAULT_ROUTE_PARTS[d["kind"]]] = d["have"]
    return record


def note_link(record, device, exists, up, mtu):
    """Record a device's state before the pack first set it up (or created it)."""
    record = normal(record)
    record["links"].setdefault(device, {"exists": bool(exists), "up": bool(up), "mtu": mtu})
    return record


def forget(record, part, item):
    """``record`` without ``item`` in a list part (``mss_tables``, ``nft_tables``, ``fou_ports``)."""
    record = normal(record)
    record[part] = [kept for kept in record[part] if kept != item]
    return record


def note_item(record, part, item):
    """Add ``item`` to a list part (``mss_tables``, ``nft_tables``, ``fou_ports``)."""
    record = normal(record)
    if item not in record[part]:
        record[part] = [*record[part], item]
    return record
