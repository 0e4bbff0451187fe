"""The site topology: one pillar tree (``lvs:``) describes a whole LVS-TUN site.

This module parses and validates it once, with netaddr, and answers the questions the
states, the runner and the lab ask of it (which role has this minion, which backends
does this service have). Every error names the pillar path and the problem; all errors
are collected and reported together. The schema is documented in ``docs/pillar.md``.

It is plain Python (no Salt dunders), shared by the synced modules through Salt's
``_utils`` path and installed as a top-level module by ``setup.cfg``.
"""

from dataclasses import dataclass, field

import netaddr

PILLAR_KEY = "lvs"
ROLES = ("router", "director", "realserver")
PROTOCOLS = ("tcp", "udp", "sctp")
SCHEDULERS = ("rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos")
ROUTER_KINDS = ("linux", "ios")
MAX_WEIGHT = 65535


class SiteError(ValueError):
    """The site's pillar is invalid; ``errors`` lists every problem found."""

    def __init__(self, errors):
        self.errors = list(errors)
        super().__init__("invalid LVS site pillar:\n  " + "\n  ".join(self.errors))


@dataclass(frozen=True)
class Host:
    minion_id: str
    role: str
    address: str  # the host's LAN address (no prefix)
    interface: str = "eth0"
    weight: int = 1  # real servers only: the default weight of its backends


@dataclass(frozen=True)
class Backend:
    minion_id: str
    address: str
    port: int
    weight: int


@dataclass(frozen=True)
class Service:
    name: str
    vip: str
    public: str  # the public address the router maps to the VIP (may equal the VIP)
    protocol: str
    port: int
    scheduler: str
    backends: tuple = ()


@dataclass(frozen=True)
class Router:
    minion_id: str
    kind: str
    lan_address: str
    lan_interface: str
    wan_address: str  # with prefix, e.g. 112.2.21.88/24
    wan_interface: str


@dataclass
class Site:
    subnet: str
    gateway: str
    router: Router
    hosts: dict = field(default_factory=dict)  # minion id -> Host (directors and real servers)
    services: dict = field(default_factory=dict)  # name -> Service

    def role_of(self, minion_id):
        """The role of ``minion_id`` in this site ('router', 'director', 'realserver') or None."""
        if self.router and minion_id == self.router.minion_id:
            return "router"
        host = self.hosts.get(minion_id)
        return host.role if host else None

    def hosts_with_role(self, role):
        return [host for host in self.hosts.values() if host.role == role]

    @property
    def directors(self):
        return self.hosts_with_role("director")

    @property
    def realservers(self):
        return self.hosts_with_role("realserver")


class _Errors(list):
    def add(self, path, problem):
        self.append(f"{':'.join([PILLAR_KEY, *map(str, path)])}: {problem}")


def _mapping(errors, path, value):
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.add(path, f"must be a mapping, got {type(value).__name__}")
        return {}
    return value


def _ip(errors, path, value):
    """An IPv4/IPv6 address without prefix, as text; None (and an error) when invalid."""
    try:
        if value is None or "/" in str(value):
            raise netaddr.AddrFormatError(value)
        return str(netaddr.IPAddress(str(value)))
    except (netaddr.AddrFormatError, ValueError, TypeError):
        errors.add(path, f"{value!r} is not an IP address")
        return None


def _network(errors, path, value, strict=True):
    try:
        net = netaddr.IPNetwork(str(value))
    except (netaddr.AddrFormatError, ValueError, TypeError):
        errors.add(path, f"{value!r} is not a network (address/prefix)")
        return None
    if value is None or "/" not in str(value):
        errors.add(path, f"{value!r} needs a prefix length, e.g. /24")
        return None
    if strict and net.ip != net.network:
        errors.add(path, f"{value} has host bits set (did you mean {net.cidr}?)")
        return None
    return net


def _int(errors, path, value, low, high):
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        errors.add(path, f"{value!r} must be an integer from {low} to {high}")
        return None
    return value


def _choice(errors, path, value, choices):
    if value not in choices:
        errors.add(path, f"{value!r} is not one of {', '.join(choices)}")
        return None
    return value


def parse(pillar):
    """Validate the ``lvs`` pillar tree and return a :class:`Site`; raise :class:`SiteError`.

    ``pillar`` is the whole pillar (the ``lvs`` key is taken from it) or the tree itself.
    """
    tree = pillar.get(PILLAR_KEY, pillar) if isinstance(pillar, dict) else pillar
    errors = _Errors()
    tree = _mapping(errors, (), tree)
    if not tree:
        errors.add((), "no site defined (the pillar has no 'lvs' tree)")
        raise SiteError(errors)

    lan = _mapping(errors, ("lan",), tree.get("lan"))
    subnet = _network(errors, ("lan", "subnet"), lan.get("subnet"))
    gateway = _ip(errors, ("lan", "gateway"), lan.get("gateway"))
    if subnet is not None and gateway is not None and netaddr.IPAddress(gateway) not in subnet:
        errors.add(("lan", "gateway"), f"{gateway} is not on the LAN {subnet} (no host could reach it)")

    owners = {}  # address -> pillar path of the first host that claimed it

    def claim(path, address):
        if address is None:
            return
        if subnet is not None and netaddr.IPAddress(address) not in subnet:
            errors.add(path, f"{address} is not on the LAN {subnet}")
        if address in owners:
            errors.add(path, f"{address} is also the address of {owners[address]}")
        else:
            owners[address] = ":".join([PILLAR_KEY, *path[:-1]])

    router = None
    rtree = _mapping(errors, ("router",), tree.get("router"))
    if not rtree:
        errors.add(("router",), "missing: the site needs a front router (id, kind, wan_address)")
    else:
        rid = rtree.get("id")
        if not rid or not isinstance(rid, str):
            errors.add(("router", "id"), "missing: the router's minion id")
        kind = _choice(errors, ("router", "kind"), rtree.get("kind", "linux"), ROUTER_KINDS)
        lan_address = _ip(errors, ("router", "lan_address"), rtree.get("lan_address", gateway))
        wan = _network(errors, ("router", "wan_address"), rtree.get("wan_address"), strict=False)
        if lan_address is not None and gateway is not None and lan_address != gateway:
            errors.add(("router", "lan_address"), f"{lan_address} differs from lvs:lan:gateway {gateway}")
        if lan_address is not None:
            owners[lan_address] = f"{PILLAR_KEY}:router"
            if subnet is not None and netaddr.IPAddress(lan_address) not in subnet:
                errors.add(("router", "lan_address"), f"{lan_address} is not on the LAN {subnet}")
        if wan is not None and subnet is not None and wan.ip in subnet:
            errors.add(("router", "wan_address"), f"{wan} is inside the LAN {subnet}")
        router = Router(
            minion_id=rid,
            kind=kind,
            lan_address=lan_address,
            lan_interface=str(rtree.get("lan_interface", "eth0")),
            wan_address=str(wan) if wan is not None else None,
            wan_interface=str(rtree.get("wan_interface", "wan0")),
        )

    hosts = {}
    for role, key in (("director", "directors"), ("realserver", "realservers")):
        group = _mapping(errors, (key,), tree.get(key))
        if not group:
            errors.add((key,), f"missing: the site needs at least one {role}")
        for minion_id, spec in group.items():
            path = (key, minion_id)
            spec = _mapping(errors, path, spec)
            if minion_id in hosts or (router and minion_id == router.minion_id):
                errors.add(path, f"minion id {minion_id!r} has another role already")
                continue
            address = _ip(errors, (*path, "address"), spec.get("address"))
            claim((*path, "address"), address)
            weight = 1
            if role == "realserver":
                weight = _int(errors, (*path, "weight"), spec.get("weight", 1), 0, MAX_WEIGHT)
            hosts[minion_id] = Host(
                minion_id=str(minion_id),
                role=role,
                address=address,
                interface=str(spec.get("interface", "eth0")),
                weight=weight,
            )

    services = {}
    stree = _mapping(errors, ("services",), tree.get("services"))
    if not stree:
        errors.add(("services",), "missing: the site needs at least one virtual service")
    seen = {}
    for name, spec in stree.items():
        path = ("services", name)
        spec = _mapping(errors, path, spec)
        vip = _ip(errors, (*path, "vip"), spec.get("vip"))
        if vip is not None and vip in owners:
            errors.add((*path, "vip"), f"{vip} is the address of {owners[vip]}, not a free VIP")
        public = _ip(errors, (*path, "public"), spec.get("public", vip))
        protocol = _choice(errors, (*path, "protocol"), spec.get("protocol", "tcp"), PROTOCOLS)
        port = _int(errors, (*path, "port"), spec.get("port"), 1, 65535)
        scheduler = _choice(errors, (*path, "scheduler"), spec.get("scheduler", "wlc"), SCHEDULERS)
        key = (vip, protocol, port)
        if None not in key:
            if key in seen:
                errors.add(path, f"{protocol} {vip}:{port} is also defined by lvs:services:{seen[key]}")
            seen[key] = name
        backends = []
        btree = spec.get("backends")
        if btree is None:
            btree = {host.minion_id: {} for host in hosts.values() if host.role == "realserver"}
        for rs_id, override in _mapping(errors, (*path, "backends"), btree).items():
            bpath = (*path, "backends", rs_id)
            host = hosts.get(rs_id)
            if host is None or host.role != "realserver":
                errors.add(bpath, f"{rs_id!r} is not a real server of this site (lvs:realservers)")
                continue
            override = _mapping(errors, bpath, override)
            # Overrides are checked here; inherited values were checked where they stand.
            weight, bport = host.weight, port
            if "weight" in override:
                weight = _int(errors, (*bpath, "weight"), override["weight"], 0, MAX_WEIGHT)
            if "port" in override:
                bport = _int(errors, (*bpath, "port"), override["port"], 1, 65535)
            backends.append(Backend(rs_id, host.address, bport, weight))
        services[name] = Service(
            name=str(name),
            vip=vip,
            public=public,
            protocol=protocol,
            port=port,
            scheduler=scheduler,
            backends=tuple(backends),
        )

    if errors:
        raise SiteError(errors)
    return Site(subnet=str(subnet), gateway=gateway, router=router, hosts=hosts, services=services)
