"""A host's IP setup for its role in the site: LAN and VIP addresses, the default
gateway, sysctls, the VIP source routes that clamp the TCP MSS on real servers, and
the router's ECMP routes to several directors.

Netlink through pyroute2, sysctls through /proc/sys; no ``ip`` or ``sysctl`` process.
Addresses are added, never removed (a host may hold others), but for the VIPs of a
director (``vips``): every /32 of the site's LAN on its LAN NIC is a VIP, and one that
is no longer in the pillar is removed once no IPVS service and no connection uses it.
IPv4 and IPv6 alike: an IPv6 gateway is the IPv6 default route, IPv6 VIPs are /128
(usable at once and deprecated: never a source the host picks, ``lvstun.netlink``), and
the VIP source routes of IPv6 VIPs are IPv6 rules and routes.

Why the VIP source routes: the director forwards each request inside an ipip header
(20 bytes). A client that sends full-size segments (MSS 1460 on a 1500-byte path)
needs the director to fragment or to send ICMP "fragmentation needed"; where ICMP is
filtered, large requests stall. A real server answers the client's SYN from the VIP,
so a policy rule ``from VIP lookup TABLE`` with routes carrying ``advmss`` makes it
advertise an MSS that fits in one tunnelled packet (1440 on a 1500-byte LAN). Only
the VIP's traffic is affected.
"""

import lvstun.address
import lvstun.drift
import lvstun.netlink
import lvstun.originals
import lvstun.sysctl
import lvstun.tun
from lvstun.fresh import fresh

try:
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    HAS_PYROUTE2 = True
except ImportError:  # pragma: no cover
    HAS_PYROUTE2 = False

import socket

import netaddr
from salt.exceptions import CommandExecutionError, SaltInvocationError

fresh(lvstun.address)
fresh(lvstun.drift)
fresh(lvstun.netlink)
fresh(lvstun.originals)
fresh(lvstun.sysctl)
fresh(lvstun.tun)
__virtualname__ = "lvs_net"
RULE_PRIORITY = 1042  # before the main table (32766)
RT_SCOPE_NOWHERE = 255  # in a route deletion: match a route of any scope (as ip route del does)


def __virtual__():
    if not HAS_PYROUTE2:
        return False, "the lvs_net module needs pyroute2"
    return __virtualname__


def _cidr(text, what):
    try:
        return str(lvstun.address.network(text))
    except ValueError as err:
        raise SaltInvocationError(f"{what}: {err}") from None


def _ip(text, what):
    try:
        return lvstun.address.canonical(text)
    except ValueError:
        raise SaltInvocationError(f"{what}: {text!r} is not an IP address") from None


def _vip_route_plan(vip_routes):
    """Validated VIP route settings: wanted rules and routes of the table, and their
    address family (the subnet's: its VIPs and gateway are of the same)."""
    spec = dict(vip_routes)
    table = int(spec["table"])
    advmss = int(spec["advmss"])
    subnet = netaddr.IPNetwork(_cidr(spec["subnet"], "vip_routes:subnet"))
    family = lvstun.netlink.family_of(subnet)
    vips = [_ip(v, "vip_routes:vips") for v in spec.get("vips") or []]
    gateway = _ip(spec["gateway"], "vip_routes:gateway") if spec.get("gateway") else None
    if any(lvstun.netlink.family_of(a) != family for a in [*vips, *([gateway] if gateway else [])]):
        raise SaltInvocationError(f"vip_routes: the VIPs and gateway must be of the subnet's family ({subnet.cidr}): "
                                  f"{vips}, {gateway}")
    vips = [lvstun.address.host_cidr(v) for v in vips]
    routes = {str(subnet.cidr): None}
    if gateway:
        routes[lvstun.netlink.default_destination(family)] = gateway
    return table, advmss, vips, routes, spec["interface"], family


def _link(ipr, name):
    """Interface ``name``'s link message; an error naming it when the host has none."""
    found = lvstun.netlink.link(ipr, name)
    if found is None:
        raise CommandExecutionError(f"interface {name} does not exist on this host")
    return found


def _index(ipr, name):
    return _link(ipr, name)["index"]


def interface(name):
    """Describe interface ``name``: ``{exists, up, mtu, addresses}``.

    name
        The interface (``eth0``, ``tunl0``).

    CLI Example:

    .. code-block:: bash

        salt director lvs_net.interface eth0
    """
    with IPRoute() as ipr:
        found = lvstun.netlink.link(ipr, name)
        if found is None:
            return {"exists": False, "up": False, "mtu": None, "addresses": []}
        return {"exists": True, "up": bool(found["flags"] & 1), "mtu": found.get_attr("IFLA_MTU"),
                "addresses": lvstun.netlink.addresses(ipr, found["index"])}


def _vip_drifts(ipr, vips):
    """The director's VIPs: added when missing; stale ones (a /32 of the LAN that the
    pack added and that is no longer a VIP) removed once idle, nothing else."""
    ifname = vips["interface"]
    found = _link(ipr, ifname)
    wanted = {_cidr(c, "vips:addresses") for c in vips.get("addresses") or []}
    have = set(lvstun.netlink.addresses(ipr, found["index"]))
    subnet = netaddr.IPNetwork(_cidr(vips["subnet"], "vips:subnet"))
    drifts = [lvstun.drift.make("address", ifname, c, None) for c in sorted(wanted - have)]
    in_use = lvstun.tun.addresses_in_use()
    if "ipvs.list" in __salt__:
        in_use |= {svc["address"] for svc in __salt__["ipvs.list"](stats=False) if svc.get("address")}
    added = lvstun.originals.load(__opts__)["addresses"].get(ifname, [])
    for cidr in lvstun.tun.stale_vips(have, wanted, added, in_use):
        if netaddr.IPNetwork(cidr).ip in subnet:
            drifts.append(lvstun.drift.make("address", ifname, None, cidr))
    return drifts


def _route_drifts(ipr, routes):
    """Routes the pack owns (protocol RTPROT_LVS): exactly ``routes``."""
    have = lvstun.netlink.owned_routes(ipr)
    drifts = []
    for dst, spec in (routes or {}).items():
        want = sorted(_ip(g, f"routes:{dst}:via") for g in spec["via"])
        dst = _cidr(dst, "routes")
        if have.get(dst) != want:
            drifts.append(lvstun.drift.make("route", dst, f"via {', '.join(want)}",
                                     have.get(dst) and f"via {', '.join(have[dst])}"))
    for stale in sorted(set(have) - {_cidr(d, "routes") for d in routes or {}}):
        drifts.append(lvstun.drift.make("route", stale, None, f"via {', '.join(have[stale])}"))
    return drifts


def _apply_routes(ipr, routes):
    for dst, spec in (routes or {}).items():
        index = _index(ipr, spec["interface"])
        hops = sorted(_ip(g, f"routes:{dst}:via") for g in spec["via"])
        if len(hops) == 1:
            ipr.route("replace", dst=_cidr(dst, "routes"), gateway=hops[0], oif=index, proto=lvstun.netlink.RTPROT_LVS)
        else:
            ipr.route("replace", dst=_cidr(dst, "routes"), proto=lvstun.netlink.RTPROT_LVS,
                      multipath=[{"gateway": hop, "oif": index} for hop in hops])
    for stale in set(lvstun.netlink.owned_routes(ipr)) - {_cidr(d, "routes") for d in routes or {}}:
        ipr.route("del", dst=stale, proto=lvstun.netlink.RTPROT_LVS)


def check(addresses=None, gateway=None, sysctls=None, vip_routes=None, vips=None, routes=None):
    """Every difference between this host and the wanted setup: a list of drift records
    (``kind``, ``object``, ``want``, ``have``; :mod:`lvstun.drift`), empty when none.
    Each concern is checked only when given.

    addresses
        ``{interface: [address/prefix, ...]}``: addresses the interfaces hold.
    gateway
        The default route's next hop (IPv4 or IPv6: that family's default route).
    sysctls
        ``{name: value}`` (``net.ipv4.ip_forward: 1``).
    vip_routes
        ``{vips, table, advmss, gateway, interface, subnet}``: a real server's replies
        from its VIPs routed by a table of their own, with the tunnel's MSS.
    vips
        ``{interface, addresses, subnet}``: a director's VIPs on its LAN interface.
    routes
        ``{destination: {via: [next hops], interface}}`` (ECMP when several): the routes
        the pack owns (others are left alone).

    CLI Example:

    .. code-block:: bash

        salt rs1 lvs_net.check addresses='{eth0: [10.10.24.21/24]}' gateway=10.10.24.1
    """
    wanted = _given(addresses=addresses, gateway=gateway, vip_routes=vip_routes, vips=vips, routes=routes)
    with IPRoute() as ipr:
        drifts = [d for name, spec in wanted.items() for d in CONCERNS[name][0](ipr, spec)]
    return drifts + lvstun.sysctl.drifts(sysctls or {})


def _given(**concerns):
    """The concerns a caller gives, in the order they are checked and repaired (routes
    ``{}`` is given: no owned route at all)."""
    return {name: spec for name, spec in concerns.items() if (spec is not None if name == "routes" else spec)}


def _address_drifts(ipr, addresses):
    drifts = []
    for ifname, wanted in addresses.items():
        found = _link(ipr, ifname)
        have = set(lvstun.netlink.addresses(ipr, found["index"]))
        if not found["flags"] & 1:
            drifts.append(lvstun.drift.make("up", ifname, True, False))
        for cidr in wanted:
            cidr = _cidr(cidr, f"addresses:{ifname}")
            if cidr not in have:
                drifts.append(lvstun.drift.make("address", ifname, cidr, None))
    return drifts


def _repair_addresses(ipr, addresses):
    for ifname, wanted in addresses.items():
        index = _index(ipr, ifname)
        ipr.link("set", index=index, state="up")
        for cidr in wanted:
            lvstun.netlink.add_address(ipr, index, _cidr(cidr, f"addresses:{ifname}"))


# The default route of each family: its drift kind, and the part of the host's record
# (lvstun.originals) that keeps what it was.
DEFAULT_ROUTE = {socket.AF_INET: "default-route", socket.AF_INET6: "default-route6"}


def _gateway_drifts(ipr, gateway):
    gateway = _ip(gateway, "gateway")
    family = lvstun.netlink.family_of(gateway)
    have, _ = lvstun.netlink.default_gateway(ipr, family=family)
    return [] if have == gateway else [lvstun.drift.make(DEFAULT_ROUTE[family], "main", f"via {gateway}",
                                                         have and f"via {have}")]


def _repair_gateway(ipr, gateway):
    if _gateway_drifts(ipr, gateway):
        gateway = _ip(gateway, "gateway")
        family = lvstun.netlink.family_of(gateway)
        ipr.route("replace", family=family, dst=lvstun.netlink.default_destination(family), gateway=gateway)


def _repair_vips(ipr, vips):
    index = _index(ipr, vips["interface"])
    for change in _vip_drifts(ipr, vips):
        if change["want"]:
            lvstun.netlink.add_address(ipr, index, change["want"], vip=True)
        else:
            lvstun.netlink.del_address(ipr, index, change["have"])


def _vip_route_drifts(ipr, table, advmss, vips, routes, ifname, family):
    drifts = []
    index = _index(ipr, ifname)
    have_rules = lvstun.netlink.source_rules(ipr, table, family)
    for vip in vips:
        if vip not in have_rules:
            drifts.append(lvstun.drift.make("rule", f"from {vip} lookup {table}", f"priority {RULE_PRIORITY}", None))
    for stale in sorted(set(have_rules) - set(vips)):
        drifts.append(lvstun.drift.make("rule", f"from {stale} lookup {table}", None, f"priority {have_rules[stale]}"))
    have_routes = lvstun.netlink.routes(ipr, table, family)
    for dst, via in routes.items():
        want = {"gateway": via, "oif": index, "advmss": advmss}
        have = have_routes.get(dst)
        if have != want:
            drifts.append(lvstun.drift.make("table-route", f"{table} route {dst}", _route_text(want, ifname),
                                     _route_text(have, ifname)))
    for stale in sorted(set(have_routes) - set(routes)):
        drifts.append(lvstun.drift.make("table-route", f"{table} route {stale}", None,
                                 _route_text(have_routes[stale], ifname)))
    return drifts


def _route_text(route, ifname):
    if route is None:
        return None
    via = f"via {route['gateway']} " if route["gateway"] else ""
    return f"{via}dev {ifname if route['oif'] else '?'} advmss {route['advmss']}"


def apply(addresses=None, gateway=None, sysctls=None, vip_routes=None, vips=None, routes=None):
    """Make the host match (see :func:`check`); return the differences it repaired.

    addresses, gateway, sysctls, vip_routes, vips, routes
        As :func:`check` takes them: each concern given is repaired, the others are left
        alone.

    CLI Example:

    .. code-block:: bash

        salt rs1 lvs_net.apply addresses='{eth0: [10.10.24.21/24]}' gateway=10.10.24.1
    """
    drifts = check(addresses, gateway, sysctls, vip_routes, vips, routes)
    if not drifts:
        return []
    record = lvstun.originals.note_drifts(lvstun.originals.load(__opts__), drifts)
    if vip_routes:
        record = lvstun.originals.note_item(record, "mss_tables", _vip_route_plan(vip_routes)[0])
    lvstun.originals.store(__opts__, record)
    try:
        with IPRoute() as ipr:
            given = _given(addresses=addresses, gateway=gateway, vip_routes=vip_routes, vips=vips, routes=routes)
            for name, spec in given.items():
                CONCERNS[name][1](ipr, spec)
        lvstun.sysctl.apply(sysctls or {})
    except NetlinkError as err:
        wanted = sorted(map(lvstun.drift.name, drifts))
        raise CommandExecutionError(f"the kernel refused a change ({err}); wanted: {wanted}") from err
    except lvstun.sysctl.SysctlError as err:
        raise CommandExecutionError(str(err)) from err
    return drifts


def _apply_vip_routes(ipr, table, advmss, vips, routes, ifname, family):
    index = _index(ipr, ifname)
    for dst, via in routes.items():
        kwargs = {"gateway": via} if via else {"scope": 253}  # 253: link scope (on the LAN)
        ipr.route("replace", family=family, dst=dst, oif=index, table=table, metrics={"advmss": advmss},
                  **kwargs)
    for stale in set(lvstun.netlink.routes(ipr, table, family)) - set(routes):
        ipr.route("del", family=family, dst=stale, table=table, scope=RT_SCOPE_NOWHERE)
    have = lvstun.netlink.source_rules(ipr, table, family)
    for vip in vips:
        if vip not in have:
            net = netaddr.IPNetwork(vip)
            ipr.rule("add", family=family, table=table, priority=RULE_PRIORITY, src=str(net.ip),
                     src_len=net.prefixlen)
    for stale in set(have) - set(vips):
        net = netaddr.IPNetwork(stale)
        ipr.rule("del", family=family, table=table, priority=have[stale], src=str(net.ip), src_len=net.prefixlen)


def _undo_addresses(ipr, record):
    plan = []
    for ifname, added in record["addresses"].items():
        found = lvstun.netlink.link(ipr, ifname)
        have = set(lvstun.netlink.addresses(ipr, found["index"])) if found is not None else set()
        for cidr in added:
            if cidr in have:
                plan.append((lvstun.drift.make("address", ifname, None, cidr),
                             lambda i=found["index"], c=cidr: lvstun.netlink.del_address(ipr, i, c)))
    return plan


def _undo_vip_routes(ipr, record):
    plan = []
    for table in record["mss_tables"]:
        for family in lvstun.netlink.families():
            for src, priority in sorted(lvstun.netlink.source_rules(ipr, table, family).items()):
                if priority != RULE_PRIORITY:  # not one of the pack's
                    continue
                net = netaddr.IPNetwork(src)
                plan.append((lvstun.drift.make("rule", f"from {src} lookup {table}", None, f"priority {priority}"),
                             lambda t=table, p=priority, n=net, f=family: ipr.rule(
                                 "del", family=f, table=t, priority=p, src=str(n.ip), src_len=n.prefixlen)))
            for dst, route in sorted(lvstun.netlink.routes(ipr, table, family).items()):
                text = _route_text(route, f"#{route['oif']}")
                plan.append((lvstun.drift.make("table-route", f"{table} route {dst}", None, text),
                             lambda t=table, d=dst, f=family: ipr.route("del", family=f, dst=d, table=t,
                                                                        scope=RT_SCOPE_NOWHERE)))
    return plan


def _undo_routes(ipr, record):
    return [(lvstun.drift.make("route", dst, None, f"via {', '.join(hops)}"),
             lambda d=dst: ipr.route("del", dst=d, proto=lvstun.netlink.RTPROT_LVS))
            for dst, hops in sorted(lvstun.netlink.owned_routes(ipr).items())]


def _undo_gateway(ipr, record):
    plan = []
    for family, kind in DEFAULT_ROUTE.items():
        part = lvstun.originals.DEFAULT_ROUTE_PARTS[kind]
        if part not in record:
            continue
        have_gw, _ = lvstun.netlink.default_gateway(ipr, family=family)
        have, want = have_gw and f"via {have_gw}", record[part]
        if have == want:
            continue

        def restore(want=want, family=family):
            dst = lvstun.netlink.default_destination(family)
            if want:
                ipr.route("replace", family=family, dst=dst, gateway=want.removeprefix("via "))
            else:
                ipr.route("del", family=family, dst=dst)
        plan.append((lvstun.drift.make(kind, "main", want, have), restore))
    return plan


def _undo_sysctls(ipr, record):
    plan = []
    for name, value in sorted(record["sysctls"].items()):
        current = lvstun.sysctl.read(name)
        if value is not None and current is not None and current != value:
            plan.append((lvstun.drift.make("sysctl", name, value, current),
                         lambda n=name, v=value: lvstun.sysctl.write(n, v)))
    return plan


# Each concern: (its drifts, its repair); the host's record is undone in UNDO's order
# (a VIP is gone before ARP stops hiding it: sysctls last).
CONCERNS = {
    "addresses": (_address_drifts, _repair_addresses),
    "gateway": (_gateway_drifts, _repair_gateway),
    "vip_routes": (lambda ipr, spec: _vip_route_drifts(ipr, *_vip_route_plan(spec)),
                   lambda ipr, spec: _apply_vip_routes(ipr, *_vip_route_plan(spec))),
    "vips": (_vip_drifts, _repair_vips),
    "routes": (_route_drifts, _apply_routes),
}
UNDO = (_undo_addresses, _undo_vip_routes, _undo_routes, _undo_gateway, _undo_sysctls)


def _undo_plan(ipr, record):
    """``[(drift, action)]``: what undoing the pack's changes takes, in order (addresses,
    the MSS rules and routes, owned routes, the default route, then sysctls)."""
    return [step for undo in UNDO for step in undo(ipr, record)]


def check_clean():
    """What :func:`clean` would undo: drift records from this host as it was before the
    pack changed it (its record ``host-originals``), empty when nothing is left.

    CLI Example:

    .. code-block:: bash

        salt rs1 lvs_net.check_clean
    """
    record = lvstun.originals.load(__opts__)
    with IPRoute() as ipr:
        return [d for d, _ in _undo_plan(ipr, record)]


def clean():
    """Undo what the pack put on this host's network: the addresses it added (VIPs, a
    router's public addresses), the MSS rules and routes, the routes it owns, the
    default route and sysctls back to their values before; nothing else is touched.
    Returns what changed (as :func:`check_clean`). The record stays: a second run finds
    nothing to undo, and a host that joins again keeps its first lvstun.originals.

    CLI Example:

    .. code-block:: bash

        salt rs1 lvs_net.clean
    """
    record = lvstun.originals.load(__opts__)
    done = []
    try:
        with IPRoute() as ipr:
            for change, action in _undo_plan(ipr, record):
                action()
                done.append(change)
    except NetlinkError as err:
        raise CommandExecutionError(f"the kernel refused to undo a change ({err}); undone before it: "
                                    f"{sorted(map(lvstun.drift.name, done))}") from err
    except lvstun.sysctl.SysctlError as err:
        raise CommandExecutionError(str(err)) from err
    return done
