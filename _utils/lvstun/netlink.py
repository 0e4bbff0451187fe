"""Small rtnetlink helpers shared by the ``ipip`` and ``lvs_net`` modules (pyroute2).

Every function takes an open ``pyroute2.IPRoute``; errors are pyroute2's
``NetlinkError`` (the modules turn them into messages a person understands).
"""

import errno
import os
import socket

import netaddr

from .address import FAMILIES as BY_VERSION

MAIN_TABLE = 254
RTPROT_LVS = 76  # the routes the pack owns carry this protocol number (free in rt_protos)
IFA_F_NODAD = 0x02  # an IPv6 address usable at once, without duplicate address detection
FAMILIES = tuple(BY_VERSION.values())  # AF_INET, AF_INET6


def families():
    """The address families this kernel has: IPv4, and IPv6 unless it was booted without
    (``ipv6.disable=1``: an IPv6 dump then fails, where there is nothing to find)."""
    return FAMILIES if os.path.exists("/proc/net/if_inet6") else FAMILIES[:1]


def family_of(address):
    """The address family (AF_INET, AF_INET6) of an address or ``address/prefix``."""
    return socket.AF_INET6 if ":" in str(address) else socket.AF_INET


def default_destination(family):
    """The default route's destination in ``family``: ``0.0.0.0/0`` or ``::/0``."""
    return "::/0" if family == socket.AF_INET6 else "0.0.0.0/0"


def link(ipr, name):
    """The link message of interface ``name``, or None."""
    found = ipr.link_lookup(ifname=name)
    return ipr.link("get", index=found[0])[0] if found else None


def addresses(ipr, index):
    """The addresses of interface ``index`` as sorted ``address/prefix`` strings."""
    return sorted(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}" for a in ipr.get_addr(index=index))


def _address(ipr, verb, index, cidr, fine, **extra):
    from pyroute2.netlink.exceptions import NetlinkError  # noqa: PLC0415

    net = netaddr.IPNetwork(cidr)
    try:
        ipr.addr(verb, index=index, address=str(net.ip), prefixlen=net.prefixlen, **extra)
    except NetlinkError as err:
        if err.code != fine:
            raise


def add_address(ipr, index, cidr, vip=False):
    """Add ``cidr`` (``10.10.24.88/32``) to interface ``index``; already there is fine.

    ``vip``: an IPv6 VIP is added usable at once (no second of duplicate address
    detection: it must answer the moment it is added, as keepalived's do) and
    deprecated (preferred lifetime 0): it still takes and answers connections, but the
    host never picks it as the source of its own packets (RFC 6724 rule 3). Else a
    director picks its VIP, a /128 on its LAN NIC, as the outer source of the requests
    it tunnels, and each real server, which holds the VIP too, drops them as its own."""
    extra = {}
    if vip and family_of(cidr) == socket.AF_INET6:
        extra = {"flags": IFA_F_NODAD, "preferred_lft": 0}
    _address(ipr, "add", index, cidr, errno.EEXIST, **extra)


def del_address(ipr, index, cidr):
    """Remove ``cidr`` from interface ``index``; already gone is fine."""
    _address(ipr, "del", index, cidr, errno.EADDRNOTAVAIL)


def default_gateway(ipr, table=MAIN_TABLE, family=socket.AF_INET):
    """``(gateway, interface index)`` of the default route of ``table``, or (None, None)."""
    for route in ipr.get_routes(family=family, table=table):
        if route["dst_len"] == 0 and route.get_attr("RTA_TABLE", route["table"]) == table:
            return route.get_attr("RTA_GATEWAY"), route.get_attr("RTA_OIF")
    return None, None


def routes(ipr, table, family=socket.AF_INET):
    """``{destination cidr: {"gateway", "oif", "advmss"}}`` of routing table ``table``."""
    out = {}
    for route in ipr.get_routes(family=family, table=table):
        if route.get_attr("RTA_TABLE", route["table"]) != table:
            continue
        dst = route.get_attr("RTA_DST") or ("::" if family == socket.AF_INET6 else "0.0.0.0")
        metrics = route.get_attr("RTA_METRICS")
        advmss = metrics.get_attr("RTAX_ADVMSS") if metrics is not None else None
        out[f"{dst}/{route['dst_len']}"] = {"gateway": route.get_attr("RTA_GATEWAY"),
                                            "oif": route.get_attr("RTA_OIF"), "advmss": advmss}
    return out


def source_rules(ipr, table, family=socket.AF_INET):
    """``{source cidr: priority}`` of the policy rules that look up ``table``."""
    out = {}
    for rule in ipr.get_rules(family=family):
        if rule.get_attr("FRA_TABLE", rule["table"]) == table and rule.get_attr("FRA_SRC"):
            out[f"{rule.get_attr('FRA_SRC')}/{rule['src_len']}"] = rule.get_attr("FRA_PRIORITY")
    return out


def owned_routes(ipr, table=MAIN_TABLE, family=socket.AF_INET):
    """``{destination cidr: sorted next hops}`` of the routes the pack made (RTPROT_LVS)."""
    out = {}
    for route in ipr.get_routes(family=family, table=table):
        if route["proto"] != RTPROT_LVS:
            continue
        dst = f"{route.get_attr('RTA_DST')}/{route['dst_len']}"
        hops = [hop.get_attr("RTA_GATEWAY") for hop in route.get_attr("RTA_MULTIPATH") or []]
        out[dst] = sorted(h for h in [*hops, route.get_attr("RTA_GATEWAY")] if h)
    return out
