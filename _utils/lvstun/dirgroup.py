"""A Linux router's director group: every VIP's flows hashed over the live directors.

With several directors the router routes each VIP to a *resilient* nexthop group
(kernel 5.13+) of one nexthop per director: flows are hashed to buckets and buckets to
directors, and when a director leaves the group only its own buckets move, so the
flows of the survivors keep their director (plain ECMP would rehash everything). A
director comes back bucket by bucket, as each goes idle (``idle_timer``), or all at
once after ``unbalanced_timer`` (into a group of one, after a round at weight 1:
:func:`joining`).

Which directors are in the group is decided on the router itself, without the master:
its ``lvs_directors`` beacon probes every VIP's path through each director (a policy
rule sends probes marked for a director to a table whose default route is that
director's nexthop), damps the results and rewrites the group (:func:`want` with the
beacon's view). The probe is the site's own service check through the director, so it
fails for a dead or cut-off director, an unloaded ``ip_vs`` and an emptied table
alike, and passes again only once the director forwards to a real server.

Everything here is plain data: the objects the router must hold, as ``{name: text}``
(:func:`want`, :func:`have` from ``ip -j`` output), and the ``ip`` commands that make
one into the other (:func:`plan`). Objects carry protocol :data:`RTPROT` (nexthops,
routes, rules), which is how the pack finds its own and leaves every other alone.

An IPv6 site's group is the same objects in IPv6: nexthops via the directors' IPv6
addresses, the VIPs' /128 routes, and the probes' rules and tables named ``route6`` and
``rule6`` (``ip -6``). Both families are read, so a group of either is found and taken
away.
"""

import netaddr

from .address import host_cidr

RTPROT = 77  # the pack's director group (RTPROT_LVS, 76, marks lvs_net's own routes)
MAIN = "main"
# What :func:`have` reads: ``ip -j ARGS`` for nexthops, routes and rules, then IPv6's
# routes and rules, in that order.
# (``ip route show table all`` without a family shows both.)
READS = (("-d", "nexthop", "show", "proto", str(RTPROT)),
         ("-4", "route", "show", "table", "all", "proto", str(RTPROT)), ("-4", "rule", "show"),
         ("-6", "route", "show", "table", "all", "proto", str(RTPROT)), ("-6", "rule", "show"))


def numbered(site):
    """``[(n, host)]``: each director of ``site`` with its number n = 1, 2 ... in minion
    id order. The router's objects for a director are numbered from it: ``ha:base`` + n
    (a Linux router's nexthop, mark and table, an IOS router's IP SLA entry) and
    ``ha:track_base`` + n (an IOS router's track object)."""
    return list(enumerate(sorted(site.directors, key=lambda host: host.minion_id), 1))


def spec(site):
    """The director group of ``site``'s Linux router (None with fewer than two directors
    or an IOS router). Member ids are ``ha:base`` + the directors' numbers
    (:func:`numbered`); each member's id is also its probe mark and its probe table."""
    directors = numbered(site)
    if len(directors) < 2 or site.router.kind != "linux":
        return None
    ha = site.ha
    vips = sorted({svc.vip for svc in site.services.values()}, key=netaddr.IPAddress)
    return {
        "family": site.version,
        "group": ha.base,
        "priority": ha.base,
        "interface": site.router.lan_interface,
        "buckets": ha.buckets,
        "idle_timer": ha.idle_timer,
        "unbalanced_timer": ha.unbalanced_timer,
        "vips": [host_cidr(vip) for vip in vips],
        "members": {host.minion_id: {"id": ha.base + index, "via": host.address}
                    for index, host in directors},
        "probe": probe_target(site),
        "interval": ha.interval,
        "timeout": ha.timeout,
        "rise": ha.rise,
        "fall": ha.fall,
    }


def probe_target(site):
    """``{"check", "vip"}``: what the router sends through each director. The first
    service (by name) with a TCP check (http, tcp), else one with a UDP check; a site
    whose services are all unchecked gets a TCP connect to its first service, which
    still proves that the director forwards."""
    services = sorted(site.services.values(), key=lambda svc: svc.name)
    for kinds in (("http", "tcp"), ("udp",)):
        for svc in services:
            if svc.check and svc.check["type"] in kinds:
                return {"check": dict(svc.check), "vip": svc.vip}
    svc = services[0]
    kind = "udp" if svc.protocol == "udp" else "tcp"
    return {"check": {"type": kind, "port": svc.port, "timeout": site.ha.timeout}, "vip": svc.vip}


DRAIN_WEIGHT = 255  # the other members' weight while a director drains or joins (it then wants no bucket)
DRAIN_IDLE_TIMER = 1  # s a bucket must be idle before it leaves a draining director


def live_members(spec_, up, drained=()):
    """The member ids the group holds for the view ``up`` ({minion id: bool}; a director
    without a verdict counts as up) without the ``drained`` directors. When none is left
    every director not drained stays (all, if all are): a group cannot be empty, and
    with no director answering there is nothing better to send flows to."""
    members = {name: m for name, m in spec_["members"].items() if name not in drained} or spec_["members"]
    live = [m["id"] for name, m in members.items() if up.get(name, True)]
    return sorted(live or (m["id"] for m in members.values()))


def wanted_buckets(weights, buckets):
    """``{id: buckets}`` the kernel gives each member of a resilient group with
    ``weights`` (``[(id, weight)]`` in the group's order): cumulative shares rounded to
    the closest bucket (``nh_res_group_rebalance``)."""
    total, running, previous, out = sum(w for _, w in weights), 0, 0, {}
    for ident, weight in weights:
        running += weight
        upper = (buckets * running + total // 2) // total
        out[ident] = upper - previous
        previous = upper
    return out


def quiet_weights(spec_, ids, quiet):
    """``{id: weight}`` for the group ``ids`` that gives its ``quiet`` member ids no
    bucket: weight 1 for them, :data:`DRAIN_WEIGHT` for the others. A draining director
    so loses its buckets as they go idle, and a joining one is in the group before it
    takes any (a flow in its handshake keeps its bucket busy: it never moves mid-way).
    Empty when no member is quiet, or when the group has too many buckets for a weight
    of 1 to want none (the director then leaves or joins at once)."""
    quiet = set(quiet) & set(ids)
    if not quiet or not set(ids) - quiet:
        return {}
    weights = [(ident, 1 if ident in quiet else DRAIN_WEIGHT) for ident in ids]
    if any(wanted_buckets(weights, spec_["buckets"])[ident] for ident in quiet):
        return {}
    return dict(weights)


def held_members(held, spec_):
    """The member ids of the site's group as the router holds it (``held``: :func:`have`)."""
    text = held.get(f"group {spec_['group']}")
    return [int(member.split(",")[0]) for member in text.split(" ", 1)[0].split("/")] if text else []


def joining(ids, held_ids):
    """The member ids of ``ids`` that enter a group the router holds with one member.

    The kernel marks a resilient group's bucket busy only when it chooses between several
    nexthops: while a group has one member none looks busy, and a director added at its
    full weight would take its share at once, flows in their handshake included (the
    SYN went to the other director, which has not synced the connection yet; the ACK
    then reaches one that answers it with a reset). So a director joining a group of
    one comes in at weight 1 (no bucket) for one round, which has the kernel mark the
    buckets in use; at its full weight it then takes idle buckets only."""
    return sorted(set(ids) - set(held_ids)) if len(held_ids) == 1 and held_ids[0] in ids else []


def want(spec_, up=None, drained=(), draining=(), held=None):
    """``{object: text}`` the router must hold for ``spec_``, the probes' view ``up`` and
    the directors ``drained`` for maintenance (``lvs.drain``). ``draining``: the drained
    ones that still hold buckets of the group (the router reads them): they stay in it,
    at a weight that gives them none (:func:`quiet_weights`), until they hold none.
    ``held``: what the router holds (:func:`have`), from which a director joining a
    group of one is told (:func:`joining`)."""
    iface, group = spec_["interface"], spec_["group"]
    route, rule = _kinds(spec_)
    out = {}
    for member in spec_["members"].values():
        out[f"nexthop {member['id']}"] = f"via {member['via']} dev {iface}"
        out[f"{route} default table {member['id']}"] = f"nhid {member['id']}"
        out[f"{rule} fwmark {member['id']}"] = f"table {member['id']} priority {spec_['priority']}"
    draining = [name for name in draining if name in drained and name in spec_["members"]]
    ids = live_members(spec_, up or {}, [name for name in drained if name not in draining])
    draining_ids = {spec_["members"][name]["id"] for name in draining}
    ids = sorted(set(ids) | draining_ids)
    quiet = draining_ids | set(joining(ids, held_members(held or {}, spec_)))
    weights = quiet_weights(spec_, ids, quiet)
    if not weights:  # nothing drains or joins hitlessly: the draining ones leave at once
        ids = live_members(spec_, up or {}, drained)
    out[f"group {group}"] = group_text(ids, spec_, weights)
    for vip in spec_["vips"]:
        out[f"{route} {vip}"] = f"nhid {group}"
    return out


def _kinds(spec_):
    """The names of a group's routes and rules: ``route``, ``rule`` (IPv4) or ``route6``,
    ``rule6`` (a spec of family 6; a spec without a family is IPv4)."""
    return ("route6", "rule6") if spec_.get("family") == 6 else ("route", "rule")


def group_text(ids, spec_, weights=None, bare=False):
    """The group as :func:`have` reads it back: ``ID[,WEIGHT]/...`` (weight 1 unsaid)
    and its resilient settings (``bare``: the members alone); while a director drains,
    idle_timer :data:`DRAIN_IDLE_TIMER` at most."""
    weights = weights or {}
    members = "/".join(f"{i},{weights[i]}" if weights.get(i, 1) != 1 else str(i) for i in ids)
    if bare:
        return members
    idle = min(spec_["idle_timer"], DRAIN_IDLE_TIMER) if weights else spec_["idle_timer"]
    return f"{members} type resilient buckets {spec_['buckets']} idle_timer {idle} " \
           f"unbalanced_timer {spec_['unbalanced_timer']}"


def have(nexthops, routes, rules, routes6=(), rules6=()):
    """The pack's objects on the router, as :func:`want` names them, from the JSON that
    ``ip -j`` prints for each of :data:`READS` (IPv4's routes and rules, then IPv6's)."""
    out = {}
    for nh in nexthops:
        if "group" in nh:
            args = nh.get("resilient_args", {})
            members = sorted(nh["group"], key=lambda m: m["id"])
            weights = {m["id"]: m.get("weight", 1) for m in members}
            text = (f"{group_text([m['id'] for m in members], {}, weights, bare=True)} "
                    f"type {nh.get('type', 'mpath')} buckets {args.get('buckets')} idle_timer "
                    f"{args.get('idle_timer')} unbalanced_timer {args.get('unbalanced_timer')}")
            out[f"group {nh['id']}"] = text
        else:
            out[f"nexthop {nh['id']}"] = f"via {nh.get('gateway')} dev {nh.get('dev')}"
    for kind, found in (("route", routes), ("route6", routes6)):
        for route in found:
            dst, table = route.get("dst", "default"), str(route.get("table", MAIN))
            if dst != "default" and "/" not in dst:
                dst = host_cidr(dst)
            target = f"nhid {route['nhid']}" if "nhid" in route else f"via {route.get('gateway')}"
            out[f"{kind} {dst}" if table == MAIN else f"{kind} {dst} table {table}"] = target
    for kind, found in (("rule", rules), ("rule6", rules6)):
        for rule in found:
            if str(rule.get("protocol")) != str(RTPROT) or "fwmark" not in rule:
                continue
            out[f"{kind} fwmark {int(str(rule['fwmark']), 0)}"] = \
                f"table {rule.get('table')} priority {rule['priority']}"
    return out


def plan(wanted, held):
    """``[(object, want text or None, have text or None, [ip argv ...])]``: what differs,
    in an order the kernel accepts (members before the group that holds them, the group
    before the routes through it, stale objects last, routes before their nexthops). A
    site whose family changed gets the old group taken away first, then the new one
    (the kernel refuses an IPv4 nexthop where IPv6 routes use it)."""
    if _family_changed(wanted, held):
        return plan({}, held) + plan(wanted, {})
    steps = []
    rebuilt = set()
    order = ("nexthop", "group", "route", "route6", "rule", "rule6")
    for kind in order:
        for name in sorted(n for n in wanted if n.split()[0] == kind):
            text, old = wanted[name], held.get(name)
            if kind in ("route", "route6") and text.split()[-1] in rebuilt:
                old = None  # deleting and adding its group took the route with it
            if text == old:
                continue
            steps.append((name, text, old, _make(name, text, old, rebuilt)))
    for kind in ("rule", "rule6", "route", "route6", "group", "nexthop"):
        for name in sorted(n for n in held if n.split()[0] == kind and n not in wanted):
            steps.append((name, None, held[name], [_remove(name, held[name])]))
    return steps


def _family_changed(wanted, held):
    """Whether a nexthop both hold goes through a director of the other family."""
    def ipv6(text):
        return ":" in text.split()[1]

    return any(ipv6(wanted[name]) != ipv6(held[name]) for name in wanted
               if name.startswith("nexthop ") and name in held)


def _family(kind):
    """``ip``'s family option for an object of ``kind`` (``route6``, ``rule6``: IPv6)."""
    return ["-6"] if kind.endswith("6") else []


def _make(name, text, old, rebuilt):
    kind, ident = name.split()[0], name.split()[1]
    proto = ["proto", str(RTPROT)]
    if kind == "nexthop":
        return [["nexthop", "replace", "id", ident, *text.split(), *proto]]
    if kind == "group":
        ids, _, args = text.partition(" type resilient ")
        argv = ["nexthop", "replace", "id", ident, "group", ids, "type", "resilient"]
        settings = args.split()
        if old is not None and _buckets(old) == _buckets(text):
            # The kernel keeps a resilient group's buckets; it refuses a new count.
            return [[*argv, *settings[2:], *proto]]
        steps = [["nexthop", "del", "id", ident]] if old is not None else []
        rebuilt.add(ident)
        return [*steps, [*argv, *settings, *proto]]
    if kind in ("route", "route6"):
        dst, table = name.split()[1], name.split()[3:] if len(name.split()) > 2 else []
        return [[*_family(kind), "route", "replace", dst, *text.split(), *(["table", table[0]] if table else []),
                 *proto]]
    steps = [_remove(name, old)] if old is not None else []  # a rule: rules are added, not replaced
    return [*steps, [*_family(kind), "rule", "add", "fwmark", name.split()[2], *text.split(), "protocol",
                     str(RTPROT)]]


def _remove(name, text):
    parts = name.split()
    kind = parts[0]
    if kind in ("nexthop", "group"):
        return ["nexthop", "del", "id", parts[1]]
    if kind in ("route", "route6"):
        table = ["table", parts[3]] if len(parts) > 2 else []
        return [*_family(kind), "route", "del", parts[1], *table, "proto", str(RTPROT)]
    return [*_family(kind), "rule", "del", "fwmark", parts[2], *text.split(), "protocol", str(RTPROT)]


def _buckets(text):
    words = text.split()
    return words[words.index("buckets") + 1] if "buckets" in words else None
