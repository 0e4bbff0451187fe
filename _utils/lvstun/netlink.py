"""Small rtnetlink helpers shared by the ``ipip`` and ``lvs_net`` modules (pyroute2).

Every function takes an open ``pyroute2.IPRoute``; errors are pyroute2's
``NetlinkError`` (the modules turn them into messages a person understands).
"""

import errno

import netaddr

MAIN_TABLE = 254
RTPROT_LVS = 76  # the routes the pack owns carry this protocol number (free in rt_protos)


def link(ipr, name):
    """The link message of interface ``name``, or None."""
    found = ipr.link_lookup(ifname=name)
    return ipr.link("get", index=found[0])[0] if found else None


def addresses(ipr, index):
    """The addresses of interface ``index`` as sorted ``address/prefix`` strings."""
    return sorted(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}" for a in ipr.get_addr(index=index))


def _address(ipr, verb, index, cidr, fine):
    from pyroute2.netlink.exceptions import NetlinkError  # noqa: PLC0415

    net = netaddr.IPNetwork(cidr)
    try:
        ipr.addr(verb, index=index, address=str(net.ip), prefixlen=net.prefixlen)
    except NetlinkError as err:
        if err.code != fine:
            raise


def add_address(ipr, index, cidr):
    """Add ``cidr`` (``10.10.24.88/32``) to interface ``index``; already there is fine."""
    _address(ipr, "add", index, cidr, errno.EEXIST)


def del_address(ipr, index, cidr):
    """Remove ``cidr`` from interface ``index``; already gone is fine."""
    _address(ipr, "del", index, cidr, errno.EADDRNOTAVAIL)


def default_gateway(ipr, table=MAIN_TABLE, family=2):
    """``(gateway, interface index)`` of the default route of ``table``, or (None, None)."""
    for route in ipr.get_routes(family=family, table=table):
        if route["dst_len"] == 0 and route.get_attr("RTA_TABLE", route["table"]) == table:
            return route.get_attr("RTA_GATEWAY"), route.get_attr("RTA_OIF")
    return None, None


def routes(ipr, table, family=2):
    """``{destination cidr: {"gateway", "oif", "advmss"}}`` of routing table ``table``."""
    out = {}
    for route in ipr.get_routes(family=family, table=table):
        if route.get_attr("RTA_TABLE", route["table"]) != table:
            continue
        dst = route.get_attr("RTA_DST") or ("0.0.0.0" if family == 2 else "::")
        metrics = route.get_attr("RTA_METRICS")
        advmss = metrics.get_attr("RTAX_ADVMSS") if metrics is not None else None
        out[f"{dst}/{route['dst_len']}"] = {"gateway": route.get_attr("RTA_GATEWAY"),
                                            "oif": route.get_attr("RTA_OIF"), "advmss": advmss}
    return out


def source_rules(ipr, table, family=2):
    """``{source cidr: priority}`` of the policy rules that look up ``table``."""
    out = {}
    for rule in ipr.get_rules(family=family):
        if rule.get_attr("FRA_TABLE", rule["table"]) == table and rule.get_attr("FRA_SRC"):
            out[f"{rule.get_attr('FRA_SRC')}/{rule['src_len']}"] = rule.get_attr("FRA_PRIORITY")
    return out


def owned_routes(ipr, table=MAIN_TABLE, family=2):
    """``{destination cidr: sorted next hops}`` of the routes the pack made (RTPROT_LVS)."""
    out = {}
    for route in ipr.get_routes(family=family, table=table):
        if route["proto"] != RTPROT_LVS:
            continue
        dst = f"{route.get_attr('RTA_DST')}/{route['dst_len']}"
        hops = [hop.get_attr("RTA_GATEWAY") for hop in route.get_attr("RTA_MULTIPATH") or []]
        out[dst] = sorted(h for h in [*hops, route.get_attr("RTA_GATEWAY")] if h)
    return out
