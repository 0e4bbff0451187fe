"""1:1 NAT on a Linux router, in an nftables table that the pack owns alone.

Each mapping ``public <-> vip`` becomes two rules: traffic arriving on the WAN
interface for the public address goes to the VIP (``dnat``), and traffic from the VIP
leaving by the WAN interface takes the public address (``snat``): the Linux form of
Cisco's ``ip nat inside source static VIP PUBLIC``. The whole table is replaced in one
nftables transaction, so the rules are never half-applied, and nothing outside the
table (the router's other rules) is read or touched.

nftables is driven through its JSON interface (``nft -j``): structured in and out, no
text matching.
"""

import json
import shutil

import netaddr
from salt.exceptions import CommandExecutionError, SaltInvocationError

import lvstun.address
import lvstun.command
import lvstun.drift
import lvstun.originals
from lvstun.fresh import fresh

fresh(lvstun.address)
fresh(lvstun.command)
fresh(lvstun.drift)
fresh(lvstun.originals)

__virtualname__ = "nftnat"
FAMILY = "ip"
DEFAULT_TABLE = "lvs_nat"
CHAINS = (("prerouting", "prerouting", -100), ("postrouting", "postrouting", 100))  # name, hook, priority


def __virtual__():
    if shutil.which("nft") is None:
        return False, "the nftnat module needs the nft command (package nftables)"
    return __virtualname__


NFT_TIMEOUT = 30  # seconds


def _run(args, stdin=None):
    """``nft ARGS``, whatever its exit code; a time-out is an error of the call, not a traceback."""
    return lvstun.command.run(["nft", *args], NFT_TIMEOUT, stdin)


def _nft(*args, stdin=None):
    return lvstun.command.output(["nft", *args], NFT_TIMEOUT, stdin)


def _mappings(mappings):
    out = []
    for item in mappings or []:
        try:
            public, vip = (lvstun.address.canonical(item[key], versions=(4,)) for key in ("public", "vip"))
        except (KeyError, TypeError):
            raise SaltInvocationError(f"mapping {item!r} needs 'public' and 'vip'") from None
        except ValueError:
            raise SaltInvocationError(f"mapping {item!r}: public and vip must be IPv4 addresses") from None
        out.append((public, vip))
    publics = [p for p, _ in out]
    if len(set(publics)) != len(publics):
        raise SaltInvocationError(f"a public address is mapped twice in {mappings!r}")
    return sorted(set(out), key=lambda pair: netaddr.IPAddress(pair[0]))


def _match(key, value, payload=None):
    left = {"payload": {"protocol": "ip", "field": payload}} if payload else {"meta": {"key": key}}
    return {"match": {"op": "==", "left": left, "right": value}}


def desired(mappings, wan_interface, table=DEFAULT_TABLE):
    """The table's chains and rules as nftables JSON objects (what ``nft -j`` prints).

    mappings
        ``[{public, vip}]``.
    wan_interface
        The router's WAN NIC (matched by name, literally).
    table
        The table's name (``lvs_nat``).

    CLI Example:

    .. code-block:: bash

        salt router nftnat.desired '[{public: 112.2.21.88, vip: 10.10.24.88}]' wan0
    """
    objects = [{"table": {"family": FAMILY, "name": table}}]
    for name, hook, prio in CHAINS:
        objects.append({"chain": {"family": FAMILY, "table": table, "name": name, "type": "nat", "hook": hook,
                                  "prio": prio, "policy": "accept"}})
    for public, vip in _mappings(mappings):
        comment = f"lvs 1:1 {public} <-> {vip}"
        objects.append({"rule": {"family": FAMILY, "table": table, "chain": "prerouting", "comment": comment,
                                 "expr": [_match("iifname", wan_interface), _match(None, public, "daddr"),
                                          {"dnat": {"addr": vip}}]}})
    for public, vip in _mappings(mappings):
        comment = f"lvs 1:1 {public} <-> {vip}"
        objects.append({"rule": {"family": FAMILY, "table": table, "chain": "postrouting", "comment": comment,
                                 "expr": [_match("oifname", wan_interface), _match(None, vip, "saddr"),
                                          {"snat": {"addr": public}}]}})
    return objects


def current(table=DEFAULT_TABLE):
    """The table's objects as nftables JSON (handles left out), or None when absent.

    table
        The pack's nftables table (default ``lvs_nat``).

    CLI Example:

    .. code-block:: bash

        salt router nftnat.current
    """
    proc = _run(["-j", "list", "table", FAMILY, table])
    if proc.returncode != 0:
        if "No such file or directory" in proc.stderr:
            return None
        raise CommandExecutionError(f"nft list table {FAMILY} {table} failed: {proc.stderr.strip()}")
    objects = []
    for item in json.loads(proc.stdout)["nftables"]:
        kind = next(iter(item))
        if kind == "metainfo":
            continue
        body = {k: v for k, v in item[kind].items() if k != "handle"}
        objects.append({kind: body})
    return objects


def _text(obj):
    """One line per chain or rule, as ``nft list`` would show it (for changes)."""
    if "table" in obj:
        return f"table {obj['table']['family']} {obj['table']['name']}"
    if "chain" in obj:
        chain = obj["chain"]
        return f"chain {chain['name']} {{ type {chain.get('type')} hook {chain.get('hook')} priority " \
               f"{chain.get('prio')}; policy {chain.get('policy')}; }}"
    rule = obj.get("rule", {})
    words = []
    for expr in rule.get("expr", []):
        if "match" in expr:
            left = expr["match"]["left"]
            name = left["meta"]["key"] if "meta" in left else \
                f"{left.get('payload', {}).get('protocol')} {left.get('payload', {}).get('field')}"
            words.append(f"{name} {expr['match']['right']}")
        elif "dnat" in expr or "snat" in expr:
            kind = "dnat" if "dnat" in expr else "snat"
            words.append(f"{kind} to {expr[kind].get('addr')}")
        else:
            words.append(json.dumps(expr, sort_keys=True))
    return f"{rule.get('chain')}: {' '.join(words)}"


def check(mappings, wan_interface, table=DEFAULT_TABLE):
    """The difference between the table and the wanted mappings: ``[]`` when equal, else
    one ``nft-table`` drift record (:mod:`lvstun.drift`) whose ``want`` lists the lines
    coming and ``have`` the lines going (None when the table does not exist).

    mappings, wan_interface, table
        As :func:`desired` takes them.

    CLI Example:

    .. code-block:: bash

        salt router nftnat.check '[{public: 112.2.21.88, vip: 10.10.24.88}]' wan0
    """
    want = desired(mappings, wan_interface, table)
    have = current(table)
    if have == want:
        return []
    table_name = f"{FAMILY} {table}"
    if have is None:
        return [lvstun.drift.make("nft-table", table_name, [_text(o) for o in want], None)]
    old, new = [_text(o) for o in have], [_text(o) for o in want]
    gone = [line for line in old if line not in new]
    added = [line for line in new if line not in old]
    if not gone and not added:  # same lines, another order or an attribute the text omits
        gone, added = old, new
    return [lvstun.drift.make("nft-table", table_name, added, gone)]


def apply(mappings, wan_interface, table=DEFAULT_TABLE):
    """Replace the table with the wanted mappings in one transaction; return the
    difference it repaired (as :func:`check`).

    mappings, wan_interface, table
        As :func:`desired` takes them.

    CLI Example:

    .. code-block:: bash

        salt router nftnat.apply '[{public: 112.2.21.88, vip: 10.10.24.88}]' wan0
    """
    drifts = check(mappings, wan_interface, table)
    if not drifts:
        return []
    lvstun.originals.store(__opts__, lvstun.originals.note_item(lvstun.originals.load(__opts__),
                                                                  "nft_tables", f"{FAMILY} {table}"))
    ident = {"family": FAMILY, "name": table}
    batch = [{"add": {"table": ident}}, {"delete": {"table": ident}}]
    batch += [{"add": obj} for obj in desired(mappings, wan_interface, table)]
    _nft("-j", "-f", "-", stdin=json.dumps({"nftables": batch}))
    return drifts


def delete(table=DEFAULT_TABLE):
    """Remove the pack's table (and only it); True when it was there.

    table
        The pack's nftables table (default ``lvs_nat``).

    CLI Example:

    .. code-block:: bash

        salt router nftnat.delete
    """
    if current(table) is None:
        return False
    _nft("delete", "table", FAMILY, table)
    lvstun.originals.store(__opts__, lvstun.originals.forget(lvstun.originals.load(__opts__),
                                                               "nft_tables", f"{FAMILY} {table}"))
    return True


def check_absent(table=DEFAULT_TABLE):
    """The pack's table as a drift to remove (``[]`` when it is not there).

    table
        The pack's nftables table (default ``lvs_nat``).

    CLI Example:

    .. code-block:: bash

        salt router nftnat.check_absent
    """
    try:
        have = current(table)
    except CommandExecutionError:
        recorded = lvstun.originals.load(__opts__)["nft_tables"]
        if f"{FAMILY} {table}" in recorded:
            raise
        return []  # nftables does not work here (a kernel without it): the pack made no table
    return [] if have is None else [lvstun.drift.make("nft-table", f"{FAMILY} {table}", None, [_text(o) for o in have])]


def absent(table=DEFAULT_TABLE):
    """Remove the pack's table; return what was removed (as :func:`check_absent`).

    table
        The pack's nftables table (default ``lvs_nat``).

    CLI Example:

    .. code-block:: bash

        salt router nftnat.absent
    """
    drifts = check_absent(table)
    if drifts:
        delete(table)
    return drifts
