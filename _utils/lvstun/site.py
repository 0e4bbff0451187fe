"""The site topology: one pillar tree (``lvs:``) describes a whole LVS-TUN site.

This module parses and validates it once, with netaddr, and answers the questions the
states, the runner and the lab ask of it (which role has this minion, which backends
does this service have). Every error names the pillar path and the problem; all errors
are collected and reported together. The schema is documented in ``docs/pillar.md``.

It is plain Python (no Salt dunders), part of the package ``lvstun`` shared by the
pack's Salt modules, its runner and its lab.
"""

import difflib
import re
from dataclasses import dataclass, field, fields
from typing import NamedTuple

import netaddr

from . import dnsmsg
from .address import MAX_WEIGHT, PROTOCOLS, join_hostport
from .address import canonical as canonical_address
from .address import network as parse_network
from .address import parse as parse_address
from .health import HEARTBEAT, HOLD

PILLAR_KEY = "lvs"
SCHEDULERS = ("rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos")
ROUTER_KINDS = ("linux", "ios")
SCHED_FLAGS = ("ops", "sched1", "sched2", "sched3", "one-packet", "sh-fallback", "sh-port", "mh-fallback", "mh-port")
CHECK_TYPES = ("http", "https", "tcp", "udp", "dns", "script", "none")
CHECKS_FOR = {"tcp": ("http", "https", "tcp", "dns", "script", "none"), "udp": ("udp", "dns", "script", "none"),
              "sctp": ("script", "none")}
IPIP_OVERHEAD = 20  # bytes an IPv4-in-IPv4 header adds to every request the director forwards
TUNNEL_KINDS = ("ipip", "gue", "gre")  # IPVS's tunnel types (ipvsadm --tun-type)
# The checksums each kind takes (ipvsadm --tun-nocsum|--tun-csum|--tun-remcsum).
CHECKSUMS = {"ipip": ("none",), "gue": ("none", "csum", "remcsum"), "gre": ("none", "csum")}
# Bytes each kind adds to a request (the outer IPv4 header, then UDP's and GUE's, or
# GRE's), and its checksum options' own (GUE's remote checksum field, GRE's checksum).
ENCAP_OVERHEAD = {"ipip": IPIP_OVERHEAD, "gue": IPIP_OVERHEAD + 8 + 4, "gre": IPIP_OVERHEAD + 4}
ENCAP_OPTIONS = {("gue", "remcsum"): 8, ("gre", "csum"): 4}
TCP_IP_HEADERS = 40  # IPv4 + TCP headers without options: MSS = MTU - 40
IPV6_EXTRA = 20  # an IPv6 header's bytes beyond IPv4's (40, not 20): outer and inner
TUNNEL_DEVICES = {4: "tunl0", 6: "ip6tnl0"}  # the kernel's device that takes each version's tunnels
IPV6_MIN_MTU = 1280  # every IPv6 link carries at least this (RFC 8200 5)
IFNAMSIZ = 16  # the kernel's limit for an interface name, its final NUL included
WILDCARDS = '*?[]\\"'  # in an nftables interface name: patterns and quoting, never literal



class Derived(str):
    """A default taken from another value of the site (its text says which)."""


REQUIRED = object()  # a setting without default


class Number(NamedTuple):
    """A number the schema takes: its default (or REQUIRED, a Derived, null) and its
    range; where the range depends on the site (the number of directors), the parser
    narrows it."""

    default: object
    low: float
    high: float
    seconds: bool = False  # seconds (int or float); else an integer


def default_of(entry):
    """A schema entry's default (a Number's own)."""
    return entry.default if isinstance(entry, Number) else entry


# The schema, as data: every setting each part of the site takes, with its default and,
# for a number, its range (any other key is refused, naming the nearest). docs/pillar.md
# documents exactly these with these defaults (tests/unit/test_site.py checks it); the
# model's classes below take their defaults from here.
SCHEMA = {
    # site: the site's name, unique among the sites of one master (lvstun.sites): a
    # master's records, the metrics' site label and the runner's site= go by it.
    "site": {"site": "default", "lan": REQUIRED, "router": REQUIRED, "directors": REQUIRED, "realservers": REQUIRED,
             "services": REQUIRED, "tunnel": {}, "ipvs": {}, "ha": {}, "metrics": {}, "health": {}},
    "lan": {"subnet": REQUIRED, "gateway": REQUIRED},
    "router": {"id": REQUIRED, "kind": "linux", "lan_interface": Derived("eth0; ios: GigabitEthernet0/0"),
               "lan_address": Derived("lan:gateway"), "wan_interface": Derived("wan0; ios: GigabitEthernet0/1"),
               "wan_address": REQUIRED, "save": False},
    "director": {"address": REQUIRED, "interface": "eth0", "gateway": Derived("lan:gateway")},
    "realserver": {"address": REQUIRED, "interface": "eth0", "gateway": Derived("lan:gateway"),
                   "weight": Number(1, 0, MAX_WEIGHT)},
    "service": {"vip": REQUIRED, "public": Derived("vip"), "protocol": "tcp", "port": Number(REQUIRED, 1, 65535),
                "scheduler": "wlc", "flags": [], "persistent": Number(0, 0, 2**31 - 1), "netmask": None,
                "check": {}, "floor": 1,
                "sorry": None, "backends": Derived("every real server, with its weight"), "tunnel": {}},
    # A service's own encapsulation, where it is not the site's (lvs:tunnel).
    "service_tunnel": {"kind": Derived("tunnel:kind"), "port": Number(Derived("tunnel:port"), 1, 65535),
                       "checksum": Derived("tunnel:checksum")},
    "backend": {"weight": Number(Derived("the real server's weight"), 0, MAX_WEIGHT),
                "port": Number(Derived("the service's port"), 1, 65535)},
    "check": {"type": Derived("http (tcp), udp (udp), none (sctp)"),
              "port": Number(Derived("the service's port"), 1, 65535),
              "path": "/", "expect": 200, "body": None, "host": None, "verify": False, "ca": None,
              "query": None, "query_type": "A", "rcode": "NOERROR", "answer": None, "command": None,
              "dynamic": False,
              "interval": Number(1, 0, 3600, seconds=True), "timeout": Number(0.5, 0, 60, seconds=True),
              "rise": Number(2, 1, 100), "fall": Number(2, 1, 100), "alpha": False,
              "hold": Number(Derived("health:hold"), 0, 3600)},
    # Backend health across the site (docs/health.md): how long a backend that went down
    # stays out before it may return, how often an unchanged real server reports, and how
    # often each director checks every backend through its tunnel.
    "health": {"hold": Number(HOLD, 0, 3600), "heartbeat": Number(HEARTBEAT, 1, 3600),
               "path_interval": Number(0.5, 0.1, 3600, seconds=True)},
    # How the directors wrap a request for a real server: kind ipip (IP protocol 4), gue
    # (UDP to port: where protocol 4 is dropped) or gre (protocol 47), with a checksum
    # where the kind has one; the VIPs stay on the tunnel device whatever the kind.
    "tunnel": {"device": Derived("tunl0; IPv6 sites: ip6tnl0"), "kind": "ipip", "port": Number(5555, 1, 65535),
               "checksum": "none",
               "lan_mtu": Number(1500, 576, 65535), "mss": Number("auto", 536, 65495),
               "route_table": Number(4242, 1, 2**31 - 1)},
    # TUN defaults: a director sees only the client's half of a connection (its last state is
    # FIN_WAIT), so a client port reused within minutes would reach the old, perhaps dead or
    # drained backend again unless conn_reuse_mode has bit 2; expire_nodest_conn sends a new
    # connection that matches one to a weight-0 backend elsewhere, expire_quiescent_template
    # does the same for persistence. ``null`` leaves the kernel's value alone.
    "ipvs": {"conn_reuse_mode": Number(3, 0, 3), "expire_nodest_conn": Number(1, 0, 1),
             "expire_quiescent_template": Number(1, 0, 1)},
    # Several directors (lvstun.dirgroup): the router's resilient group, its probes, and
    # the directors' connection sync. Ignored with one director.
    # base: ids base..base+N must stay below the main table's rule (32766); buckets: at
    # least one per director; track_base: IOS numbers track objects 1-1000.
    "ha": {"base": Number(4200, 1, 32764), "buckets": Number(64, 1, 65535), "idle_timer": Number(10, 1, 3600),
           "unbalanced_timer": Number(300, 0, 86400), "interval": Number(0.5, 0.1, 60, seconds=True),
           "timeout": Number(0.4, 0.05, 60, seconds=True), "rise": Number(2, 1, 100), "fall": Number(2, 1, 100),
           "sync_id": Number(1, 0, 255), "sync_refresh": Number(1, 0, 3600), "track_base": Number(400, 0, 999)},
    # The directors' Prometheus exporter (lvstun.metrics): its port (null: no exporter) and
    # where it listens: lan (the director's LAN address), any, or a subnet (the director's
    # address in it, a management network say). Never the VIPs: the router maps them.
    "metrics": {"port": Number(9847, 1, 65535), "listen": "lan"},
}
ROUTER_INTERFACES = {"linux": ("eth0", "wan0"), "ios": ("GigabitEthernet0/0", "GigabitEthernet0/1")}
_MINION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_CHECK_PATH = re.compile(r"/[\x21-\x7e]*")  # printable ASCII, no space: it goes into the request line


class SiteError(ValueError):
    """The site's pillar is invalid; ``errors`` lists every problem found."""

    def __init__(self, errors):
        self.errors = list(errors)
        super().__init__("invalid LVS site pillar:\n  " + "\n  ".join(self.errors))


# The model's classes: what parse() makes of a valid tree, every value given (defaults
# are SCHEMA's, applied by the parser).
@dataclass(frozen=True)
class Host:
    minion_id: str
    role: str
    address: str  # the host's LAN address (no prefix)
    interface: str
    weight: int  # real servers only: the default weight of its backends
    gateway: str  # the host's default gateway (the site's, unless overridden)


@dataclass(frozen=True)
class Backend:
    minion_id: str
    address: str
    port: int
    weight: int


@dataclass(frozen=True)
class Encap:
    """How a director wraps a service's requests for its real servers (IPVS's tunnel)."""

    kind: str  # ipip, gue or gre
    port: int  # gue: the UDP port the real servers receive on (else 0)
    checksum: str  # none, csum (gue, gre) or remcsum (gue)

    @classmethod
    def default(cls):
        """A site's encapsulation when its pillar says none (SCHEMA's ``tunnel``)."""
        return cls(kind=SCHEMA["tunnel"]["kind"], port=0, checksum=SCHEMA["tunnel"]["checksum"])

    def overhead(self, version=4):
        """Bytes it adds to a request of IP ``version`` (its outer header of that version)."""
        extra = IPV6_EXTRA if version == 6 else 0
        return ENCAP_OVERHEAD[self.kind] + extra + ENCAP_OPTIONS.get((self.kind, self.checksum), 0)

    @property
    def dest(self):
        """Its settings of an IPVS destination (``ipvs.managed``; the defaults left out)."""
        dest = {"tun_type": self.kind}
        if self.kind == "gue":
            dest["tun_port"] = self.port
        if self.checksum != "none":
            dest["tun_flags"] = [self.checksum]
        return dest


@dataclass(frozen=True)
class Service:
    name: str
    vip: str
    public: str  # the public address the router maps to the VIP (may equal the VIP)
    protocol: str
    port: int
    scheduler: str
    backends: tuple
    flags: tuple  # scheduler flags (ipvsadm -b), e.g. ("sh-port",)
    persistent: int  # persistence timeout in seconds (0: none)
    netmask: str  # persistence granularity (ipvsadm -M)
    check: dict  # health check for the beacons (type, port, path, expect, timeouts, rise, fall)
    floor: object  # backends kept in even when down: a count or "N%" (lvstun.health)
    sorry: str  # a real server that takes the traffic when no backend is healthy
    sorry_backend: Backend  # that server as a destination (pillar weight 0)
    encap: Encap  # how its requests reach the real servers (the site's unless it says)

    @property
    def members(self):
        """Every destination of its IPVS service: its backends, then its sorry server."""
        return self.backends + ((self.sorry_backend,) if self.sorry_backend else ())

    @property
    def spec(self):
        """Its IPVS service spec: ``tcp:10.10.24.88:80``."""
        return f"{self.protocol}:{join_hostport(self.vip, self.port)}"


@dataclass(frozen=True)
class Tunnel:
    """How requests travel from the director to the real servers (defaults: SCHEMA)."""

    device: str  # the real servers' ipip device holding the VIPs (tunl0: the fallback device)
    lan_mtu: int  # the LAN's MTU: a tunnelled request is at most this long
    mss: int  # MSS the real servers advertise for the VIPs (None: no clamping), for the largest encapsulation
    route_table: int  # the real servers' routing table for traffic from the VIPs
    encap: Encap  # the services' encapsulation unless one says otherwise


@dataclass(frozen=True)
class Router:
    minion_id: str
    kind: str
    lan_address: str
    lan_interface: str
    wan_address: str  # with prefix, e.g. 112.2.21.88/24
    wan_interface: str
    save: bool  # ios: write memory after a change


@dataclass(frozen=True)
class HA:
    """How a site with several directors survives losing one (docs/pillar.md; defaults: SCHEMA)."""

    base: int  # the router's nexthop ids, probe tables, marks and rule priority start here
    buckets: int  # the resilient group's hash buckets
    idle_timer: int  # seconds a bucket is idle before it may move to a returning director
    unbalanced_timer: int  # seconds of imbalance before busy buckets move too (0: never)
    interval: float  # seconds between two probes of a director (the router's)
    timeout: float  # one probe's timeout
    rise: int  # passing probes before a director takes flows again
    fall: int  # failing probes before its flows move to the others
    sync_id: int  # the IPVS sync daemons' id (0-255), one per site
    sync_refresh: int  # s between two syncs of a busy connection (0: the kernel's every 50 packets)
    track_base: int  # an IOS router's track objects (IOS numbers them 1-1000) start here


@dataclass(frozen=True)
class Metrics:
    """The directors' Prometheus exporter (docs/monitoring.md; defaults: SCHEMA)."""

    port: int  # None: no exporter
    listen: str  # "lan" or a subnet (network/prefix)


@dataclass(frozen=True)
class Health:
    """Backend health across the site (docs/health.md; defaults: SCHEMA)."""

    hold: int  # seconds a backend that went down stays out (a service's check may say otherwise)
    heartbeat: int  # seconds between two reports of a real server whose health did not change
    path_interval: float  # seconds between two path checks of a backend by each director


@dataclass
class Site:
    subnet: str
    gateway: str
    router: Router
    hosts: dict = field(default_factory=dict)  # minion id -> Host (directors and real servers)
    services: dict = field(default_factory=dict)  # name -> Service
    tunnel: Tunnel = None
    ipvs: dict = field(default_factory=dict)  # director sysctls: conn_reuse_mode, expire_nodest_conn
    ha: HA = None
    metrics: Metrics = None
    health: Health = None
    name: str = default_of(SCHEMA["site"]["site"])  # lvs:site
    version: int = 4  # its IP version (its LAN's): every address, VIP and tunnel of the site is of it

    def role_of(self, minion_id):
        """The role of ``minion_id`` in this site ('router', 'director', 'realserver') or None."""
        if self.router and minion_id == self.router.minion_id:
            return "router"
        host = self.hosts.get(minion_id)
        return host.role if host else None

    def hosts_with_role(self, role):
        return [host for host in self.hosts.values() if host.role == role]

    def backed_by(self, minion_id):
        """The names of the services ``minion_id`` backs or stands in for as sorry server."""
        return [svc.name for svc in self.services.values() if any(m.minion_id == minion_id for m in svc.members)]

    @property
    def directors(self):
        return self.hosts_with_role("director")

    @property
    def realservers(self):
        return self.hosts_with_role("realserver")


_PLAIN_KEY = re.compile(r"[A-Za-z0-9._*/-]+")


def path_text(path):
    """A pillar path as errors name it (``lvs:realservers:rs1``); a key that is not
    plain text (a newline, a colon, spaces) is quoted, so that one error stays one line
    and the path reads unambiguously."""
    return ":".join([PILLAR_KEY, *(str(key) if _PLAIN_KEY.fullmatch(str(key)) else repr(key) for key in path)])


class _Errors(list):
    def add(self, path, problem):
        self.append(f"{path_text(path)}: {problem}")


def _known(errors, path, spec, part):
    """An error for every key of ``spec`` that ``part`` does not take, with the nearest."""
    keys = tuple(SCHEMA[part])
    for key in spec:
        if key in keys:
            continue
        near = difflib.get_close_matches(str(key), keys, n=1)
        hint = f"did you mean {near[0]}?" if near else f"known: {', '.join(keys)}"
        errors.add((*path, key), f"unknown setting ({hint})")


def _mapping(errors, path, value):
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.add(path, f"must be a mapping, got {type(value).__name__}")
        return {}
    return value


def _ip(errors, path, value, version=4):
    """An address of IP ``version`` (the site's: its LAN's) without prefix, as text;
    None (and an error) when invalid or of the other version: a site is IPv4 or IPv6
    throughout (its tunnels carry one version; IPv4's NAT has no IPv6 twin)."""
    try:
        return canonical_address(value, versions=(version,))
    except ValueError:
        other = 10 - version
        try:
            parse_address(value, versions=(other,))
        except ValueError:
            errors.add(path, f"{value!r} is not an IP address")
        else:
            errors.add(path, f"{value!r} is an IPv{other} address: the site is IPv{version} (lvs:lan:subnet)")
        return None


# Addresses no host can hold, by IP version: (network, what it is).
_NOT_HOSTS = {4: (("0.0.0.0/8", "in 0.0.0.0/8 (this host, unspecified)"),
                  ("240.0.0.0/4", "a reserved address (240.0.0.0/4, broadcast)")),
              6: (("::/128", "the unspecified address"),
                  ("::ffff:0:0/96", "an IPv4-mapped address"),
                  ("fe80::/10", "a link-local address (no router forwards it)"))}


def _not_a_host(ip, subnet):
    """Why ``ip`` cannot be a host's (None when it can)."""
    for network, what in _NOT_HOSTS[ip.version]:
        if ip in netaddr.IPNetwork(network):
            return what
    if ip.is_loopback():
        return "a loopback address"
    if ip.is_multicast():
        return "a multicast address"
    if subnet is None or subnet.version != ip.version or subnet.prefixlen >= (31 if ip.version == 4 else 127):
        return None  # /31, /32 (IPv4), /127, /128: every address is a host's
    if ip == subnet.network:
        return f"the {'network' if ip.version == 4 else 'subnet-router anycast'} address of the LAN {subnet}"
    if ip.version == 4 and ip == subnet.broadcast:
        return f"the broadcast address of the LAN {subnet}"
    return None


def _unicast(errors, path, address, subnet=None):
    """An error unless ``address`` can be a host's: not unspecified, loopback, multicast,
    reserved, broadcast or link-local, nor the LAN's network or broadcast address (IPv6:
    its subnet-router anycast address)."""
    if address is None:
        return
    problem = _not_a_host(netaddr.IPAddress(address), subnet)
    if problem:
        errors.add(path, f"{address} is {problem}, not a host's address")


def _network(errors, path, value, strict=True, version=4):
    """A network (``address/prefix``) of IP ``version`` (None: either, the LAN's own)."""
    try:
        net = parse_network(value)
    except ValueError as err:
        errors.add(path, str(err))
        return None
    if version is not None and net.version != version:
        errors.add(path, f"{value} is an IPv{net.version} network: the site is IPv{version} (lvs:lan:subnet)")
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


def problems(pillar):
    """Every problem of ``pillar`` as a site, by pillar path (:func:`parse`'s); empty
    when it is valid."""
    try:
        parse(pillar)
    except SiteError as err:
        return err.errors
    return []


def parse(pillar):
    """Validate the ``lvs`` pillar tree and return a :class:`Site`; raise :class:`SiteError`.

    ``pillar`` is the whole pillar (the ``lvs`` key is taken from it) or the tree itself.
    """
    tree = pillar.get(PILLAR_KEY, pillar) if isinstance(pillar, dict) else pillar
    parser = _Parser()
    tree = _mapping(parser.errors, (), tree)
    if not tree:
        parser.errors.add((), "no site defined (the pillar has no 'lvs' tree)")
        raise SiteError(parser.errors)
    _known(parser.errors, (), tree, "site")
    name = site_name(tree, parser.errors)
    parser.lan(tree.get("lan"))
    parser.router(tree.get("router"))
    for role, key in (("director", "directors"), ("realserver", "realservers")):
        parser.hosts_of(role, key, tree.get(key))
    parser.health(tree.get("health"))
    tunnel_spec = _mapping(parser.errors, ("tunnel",), tree.get("tunnel"))
    _known(parser.errors, ("tunnel",), tunnel_spec, "tunnel")
    parser.encap = _encap(parser.errors, ("tunnel",), tunnel_spec, "tunnel", Encap.default())
    parser.services_of(tree.get("services"))
    tunnel = _tunnel(parser.errors, tunnel_spec, parser.encap, parser.services.values(), parser.version)
    ipvs = parser.ipvs(tree.get("ipvs"))
    ha = parser.ha(tree.get("ha"))
    metrics = parser.metrics(tree.get("metrics"))
    parser.across(tunnel)
    if parser.version == 6:
        parser.ipv6_limits(tunnel)
    if parser.errors:
        raise SiteError(parser.errors)
    return Site(subnet=str(parser.subnet), gateway=parser.gateway, router=parser.router_, hosts=parser.hosts,
                services=parser.services, tunnel=tunnel, ipvs=ipvs, ha=ha, metrics=metrics, health=parser.health_,
                name=name, version=parser.version)


def site_name(tree, errors=None):
    """The site's name (``lvs:site``; ``default`` when not set): a name as minion ids are
    written, at most 64 characters (it names the master's records and a metrics label).
    With ``errors`` a bad name is added there (and None returned); without, it raises
    :class:`SiteError`."""
    own = errors if errors is not None else _Errors()
    name = tree.get("site", default_of(SCHEMA["site"]["site"])) if isinstance(tree, dict) else None
    if not isinstance(name, str) or len(name) > 64 or not _MINION_ID.fullmatch(name):
        own.add(("site",), f"{name!r} is no site name (letters, digits, '.', '_', '-'; at most 64; it names "
                           "the master's records and the metrics' site label)")
        name = None
    if errors is None and own:
        raise SiteError(own)
    return name


def _default(part, key, spec):
    """``spec[key]``, or the schema's default for it (None when it has none)."""
    default = default_of(SCHEMA[part][key])
    return spec.get(key, None if isinstance(default, Derived) or default is REQUIRED else default)


def _number(errors, path, part, key, value, low=None, high=None):
    """``value`` checked against the schema's range for ``part:key``; ``low``, ``high``:
    that range narrowed by the site (the number of directors)."""
    entry = SCHEMA[part][key]
    low = entry.low if low is None else low
    high = entry.high if high is None else high
    return (_seconds if entry.seconds else _int)(errors, path, value, low, high)


class _Parser:
    """One parse of a site tree, a method per pillar section; they share the errors
    found and what earlier sections established (the LAN, the addresses taken)."""

    def __init__(self):
        self.errors = _Errors()
        self.health_ = Health(**{f.name: default_of(SCHEMA["health"][f.name]) for f in fields(Health)})
        self.subnet = self.gateway = self.router_ = None
        self.owners = {}  # address -> pillar path of the first host that claimed it
        self.hosts = {}
        self.services = {}
        self.encap = Encap.default()  # the site's (lvs:tunnel)
        self.version = 4  # the site's IP version: its LAN's (lvs:lan:subnet)

    def claim(self, path, address):
        """Take ``address`` for the host at ``path``: on the LAN, a host's, not taken."""
        if address is None:
            return
        _unicast(self.errors, path, address, self.subnet)
        if self.subnet is not None and netaddr.IPAddress(address) not in self.subnet:
            self.errors.add(path, f"{address} is not on the LAN {self.subnet}")
        if address in self.owners:
            self.errors.add(path, f"{address} is also the address of {self.owners[address]}")
        else:
            self.owners[address] = ":".join([PILLAR_KEY, *map(str, path[:-1])])

    def lan(self, value):
        errors, path = self.errors, ("lan",)
        lan = _mapping(errors, path, value)
        _known(errors, path, lan, "lan")
        self.subnet = _network(errors, (*path, "subnet"), lan.get("subnet"), version=None)
        self.version = self.subnet.version if self.subnet is not None else 4
        self.gateway = gateway = _ip(errors, (*path, "gateway"), lan.get("gateway"), self.version)
        _unicast(errors, (*path, "gateway"), gateway, self.subnet)
        if self.subnet is not None and gateway is not None and netaddr.IPAddress(gateway) not in self.subnet:
            errors.add((*path, "gateway"), f"{gateway} is not on the LAN {self.subnet} (no host could reach it)")

    def router(self, value):
        errors, path, subnet, gateway = self.errors, ("router",), self.subnet, self.gateway
        rtree = _mapping(errors, path, value)
        if not rtree:
            errors.add(path, "missing: the site needs a front router (id, kind, wan_address)")
            return
        _known(errors, path, rtree, "router")
        rid = rtree.get("id")
        if not rid or not isinstance(rid, str):
            errors.add((*path, "id"), "missing: the router's minion id")
        elif not _MINION_ID.fullmatch(rid):
            errors.add((*path, "id"), f"{rid!r} is not a minion id (letters, digits, '.', '_', '-')")
        kind = _choice(errors, (*path, "kind"), _default("router", "kind", rtree), ROUTER_KINDS)
        lan_address = _ip(errors, (*path, "lan_address"), rtree.get("lan_address", gateway), self.version)
        wan = _network(errors, (*path, "wan_address"), rtree.get("wan_address"), strict=False, version=self.version)
        if lan_address is not None and gateway is not None and lan_address != gateway:
            errors.add((*path, "lan_address"), f"{lan_address} differs from lvs:lan:gateway {gateway}")
        if lan_address is not None:
            self.owners[lan_address] = f"{PILLAR_KEY}:router"
            if subnet is not None and netaddr.IPAddress(lan_address) not in subnet:
                errors.add((*path, "lan_address"), f"{lan_address} is not on the LAN {subnet}")
        if wan is not None:
            _unicast(errors, (*path, "wan_address"), str(wan.ip), wan)
        if wan is not None and subnet is not None and wan.ip in subnet:
            errors.add((*path, "wan_address"), f"{wan} is inside the LAN {subnet}")
        naming = _ios_interface if kind == "ios" else _name
        default_lan, default_wan = ROUTER_INTERFACES.get(kind, ROUTER_INTERFACES["linux"])
        lan_interface = naming(errors, (*path, "lan_interface"), rtree.get("lan_interface", default_lan))
        wan_interface = naming(errors, (*path, "wan_interface"), rtree.get("wan_interface", default_wan))
        if lan_interface == wan_interface:
            errors.add((*path, "wan_interface"), f"{wan_interface} is also the LAN interface")
        save = _default("router", "save", rtree)
        if not isinstance(save, bool):
            errors.add((*path, "save"), f"{save!r} is not true or false")
        elif save and kind != "ios":
            errors.add((*path, "save"), "only an ios router has a config to save")
        self.router_ = Router(minion_id=rid, kind=kind, lan_address=lan_address, lan_interface=lan_interface,
                              wan_address=str(wan) if wan is not None else None, wan_interface=wan_interface,
                              save=save is True)

    def hosts_of(self, role, key, value):
        errors = self.errors
        group = _mapping(errors, (key,), value)
        if not group:
            errors.add((key,), f"missing: the site needs at least one {role}")
        for minion_id, spec in group.items():
            path = (key, minion_id)
            spec = _mapping(errors, path, spec)
            if not isinstance(minion_id, str) or not _MINION_ID.fullmatch(minion_id):
                errors.add(path, f"{minion_id!r} is not a minion id (letters, digits, '.', '_', '-'; "
                                 "quote it in YAML when it looks like a number)")
                continue
            _known(errors, path, spec, role)
            if minion_id in self.hosts or (self.router_ and minion_id == self.router_.minion_id):
                errors.add(path, f"minion id {minion_id!r} has another role already")
                continue
            address = _ip(errors, (*path, "address"), spec.get("address"), self.version)
            self.claim((*path, "address"), address)
            weight = 1
            if role == "realserver":
                weight = _number(errors, (*path, "weight"), role, "weight", _default(role, "weight", spec))
            host_gateway = self.gateway
            if "gateway" in spec:
                host_gateway = _ip(errors, (*path, "gateway"), spec["gateway"], self.version)
                _unicast(errors, (*path, "gateway"), host_gateway, self.subnet)
                if host_gateway is not None and self.subnet is not None and \
                        netaddr.IPAddress(host_gateway) not in self.subnet:
                    errors.add((*path, "gateway"), f"{host_gateway} is not on the host's subnet {self.subnet} "
                                                   "(it could never be reached)")
            interface = _name(errors, (*path, "interface"), _default(role, "interface", spec))
            self.hosts[minion_id] = Host(minion_id=minion_id, role=role, address=address, interface=interface,
                                         weight=weight, gateway=host_gateway)

    def services_of(self, value):
        errors = self.errors
        stree = _mapping(errors, ("services",), value)
        if not stree:
            errors.add(("services",), "missing: the site needs at least one virtual service")
        seen = {}  # (vip, protocol, port) -> service name
        publics = {}  # public address -> (service name, VIP)
        vips = {}  # VIP -> first service name
        for name, spec in stree.items():
            path = ("services", name)
            spec = _mapping(errors, path, spec)
            if not isinstance(name, str) or not _MINION_ID.fullmatch(name):
                errors.add(path, f"{name!r} is not a service name (letters, digits, '.', '_', '-')")
                continue
            _known(errors, path, spec, "service")
            service = self.service(path, name, spec, publics)
            if service.vip is not None:
                vips.setdefault(service.vip, name)
            key = (service.vip, service.protocol, service.port)
            if None not in key:
                if key in seen:
                    errors.add(path, f"{service.protocol} {service.vip}:{service.port} is also defined by "
                                     f"lvs:services:{seen[key]}")
                seen[key] = name
            self.services[name] = service
        for svc in self.services.values():
            if svc.public != svc.vip and svc.public in vips:
                errors.add(("services", svc.name, "public"), f"{svc.public} is the VIP of "
                                                             f"lvs:services:{vips[svc.public]}: a public address "
                                                             "maps to a VIP, it is not one")

    def service(self, path, name, spec, publics):
        """One service: its addresses, protocol and scheduling, check and backends."""
        errors = self.errors
        vip, public = self.addresses_of(path, name, spec, publics)
        protocol = _choice(errors, (*path, "protocol"), _default("service", "protocol", spec), tuple(PROTOCOLS))
        port = _number(errors, (*path, "port"), "service", "port", spec.get("port"))
        scheduler, flags, persistent, netmask = _scheduling(errors, path, spec)
        check = _check(errors, (*path, "check"), spec.get("check"), protocol, port, self.health_.hold)
        sorry = self.sorry_of(path, spec)
        backends = self.backends(path, spec.get("backends"), sorry, port)
        floor = _floor(errors, (*path, "floor"), _default("service", "floor", spec), len(backends))
        sorry_backend = Backend(sorry, self.hosts[sorry].address, port, 0) if sorry in self.hosts else None
        own = _mapping(errors, (*path, "tunnel"), spec.get("tunnel"))
        _known(errors, (*path, "tunnel"), own, "service_tunnel")
        encap = _encap(errors, (*path, "tunnel"), own, "service_tunnel", self.encap) if own else self.encap
        return Service(name=name, vip=vip, public=public, protocol=protocol, port=port, scheduler=scheduler,
                       backends=tuple(backends), flags=tuple(flags), persistent=persistent, netmask=netmask,
                       check=check, floor=floor, sorry=sorry, sorry_backend=sorry_backend, encap=encap)

    def addresses_of(self, path, name, spec, publics):
        """A service's VIP and the public address the router maps to it (``publics``:
        each public address so far, with its service and VIP: 1:1 NAT)."""
        errors, subnet = self.errors, self.subnet
        vip = _ip(errors, (*path, "vip"), spec.get("vip"), self.version)
        _unicast(errors, (*path, "vip"), vip, subnet)
        if vip is not None and vip in self.owners:
            errors.add((*path, "vip"), f"{vip} is the address of {self.owners[vip]}, not a free VIP")
        public = _ip(errors, (*path, "public"), spec["public"], self.version) if "public" in spec else vip
        if self.version == 6 and public is not None and vip is not None and public != vip:
            errors.add((*path, "public"), f"{public}: an IPv6 VIP is routed to, not mapped (no NAT for IPv6): "
                                          "leave public out, or give the VIP")
            public = vip
        if public is not None and public != vip:
            _unicast(errors, (*path, "public"), public)
            if subnet is not None and netaddr.IPAddress(public) in subnet:
                errors.add((*path, "public"), f"{public} is inside the LAN {subnet}: the router maps a public "
                                              "address from outside")
            if public in publics and publics[public][1] != vip:
                errors.add((*path, "public"), f"{public} is already mapped to {publics[public][1]} by "
                                              f"lvs:services:{publics[public][0]} (1:1 NAT maps one address "
                                              "to one VIP)")
            publics.setdefault(public, (name, vip))
        if vip is not None and public is not None:
            for other, (oname, ovip) in publics.items():
                if ovip == vip and other != public:
                    errors.add((*path, "public"), f"VIP {vip} is already mapped to {other} by "
                                                  f"lvs:services:{oname}")
                    break
        return vip, public

    def sorry_of(self, path, spec):
        """A service's sorry server: one real server's minion id, or None."""
        sorry = spec.get("sorry")
        if sorry is not None and not isinstance(sorry, str):
            self.errors.add((*path, "sorry"), f"{sorry!r} must be one real server's minion id")
            return None
        if sorry is not None:
            sorry_host = self.hosts.get(sorry)
            if sorry_host is None or sorry_host.role != "realserver":
                self.errors.add((*path, "sorry"), f"{sorry!r} is not a real server of this site (lvs:realservers)")
        return sorry

    def backends(self, path, btree, sorry, port):
        """A service's backends: every real server with its weight, unless it names them."""
        errors = self.errors
        if btree is None:
            btree = {host.minion_id: {} for host in self.hosts.values()
                     if host.role == "realserver" and host.minion_id != sorry}
        btree = _mapping(errors, (*path, "backends"), btree)
        if sorry is not None and sorry in btree:
            errors.add((*path, "sorry"), f"{sorry} is a backend of this service: a sorry server stands apart")
        backends = []
        for rs_id, override in btree.items():
            bpath = (*path, "backends", rs_id)
            host = self.hosts.get(rs_id) if isinstance(rs_id, str) else None
            if host is None or host.role != "realserver":
                errors.add(bpath, f"{rs_id!r} is not a real server of this site (lvs:realservers)")
                continue
            override = _mapping(errors, bpath, override)
            _known(errors, bpath, override, "backend")
            # Overrides are checked here; inherited values were checked where they stand.
            weight, bport = host.weight, port
            if "weight" in override:
                weight = _number(errors, (*bpath, "weight"), "backend", "weight", override["weight"])
            if "port" in override:
                bport = _number(errors, (*bpath, "port"), "backend", "port", override["port"])
                if bport is not None and port is not None and bport != port:
                    errors.add((*bpath, "port"), f"{bport} differs from the service's port {port}: in TUN mode "
                                                 "IPVS forwards the packet unchanged, so the real server must "
                                                 f"listen on {port} on the VIP")
            backends.append(Backend(rs_id, host.address, bport, weight))
        return backends

    def across(self, tunnel):
        """What holds between sections: a site that validates must also work as a network."""
        errors = self.errors
        realservers = [h for h in self.hosts.values() if h.role == "realserver"]
        directors = [h for h in self.hosts.values() if h.role == "director"]
        # The VIPs go on the tunnel device, and stale ones come off it: never a NIC or lo.
        nics = sorted({h.interface for h in realservers if h.interface == tunnel.device})
        if tunnel.device == "lo" or nics:
            what = "the loopback device" if tunnel.device == "lo" else "a real server's LAN interface"
            errors.add(("tunnel", "device"), f"{tunnel.device!r} is {what}: the VIPs need an ipip device of their "
                                             "own (tunl0, or a free name the pack creates)")
        wan_ip = str(netaddr.IPNetwork(self.router_.wan_address).ip) if self.router_ and \
            self.router_.wan_address else None
        wan = netaddr.IPNetwork(self.router_.wan_address) if wan_ip else None
        vips = {}
        for svc in self.services.values():
            path = ("services", svc.name)
            if svc.vip is None:
                continue
            vips.setdefault(svc.vip, svc.name)
            if svc.vip == wan_ip:
                errors.add((*path, "vip"), f"{svc.vip} is the router's own WAN address: the router would keep "
                                           "its traffic (a public address maps to a VIP: public)")
            if len(directors) == 1 and self.subnet is not None and netaddr.IPAddress(svc.vip) not in self.subnet:
                errors.add((*path, "vip"), f"{svc.vip} is outside the LAN {self.subnet}: a lone director holds "
                                           "its VIPs on the LAN, where the router finds them by ARP (a VIP "
                                           "outside the LAN is routed to the directors with several of them)")
            public = netaddr.IPAddress(svc.public) if svc.public is not None and svc.public != svc.vip else None
            if public is not None and wan is not None and wan.prefixlen < 31 and public in (wan.network, wan.broadcast):
                which = "network" if public == wan.network else "broadcast"
                errors.add((*path, "public"), f"{svc.public} is the {which} address of the router's WAN {wan.cidr}, "
                                              "not an address it can hold")
        for host in self.hosts.values():
            if host.gateway is None:
                continue
            path = ("directors" if host.role == "director" else "realservers", host.minion_id, "gateway")
            if host.gateway == host.address:
                errors.add(path, f"{host.gateway} is the host's own address: it cannot be its gateway")
            elif host.gateway in vips:
                errors.add(path, f"{host.gateway} is the VIP of lvs:services:{vips[host.gateway]}, not a router")

    def ipv6_limits(self, tunnel):
        """What an IPv6 site cannot have yet (each refused by its path, before anything
        changes): another tunnel device than the kernel's ip6ip6 one, a persistence
        netmask."""
        errors = self.errors
        for svc in self.services.values():
            if svc.netmask is not None:
                errors.add(("services", svc.name, "netmask"), "a persistence netmask is for IPv4 services")
        overhead = max([self.encap.overhead(6), *(svc.encap.overhead(6) for svc in self.services.values())])
        if tunnel.lan_mtu is not None and tunnel.lan_mtu - overhead < IPV6_MIN_MTU:
            errors.add(("tunnel", "lan_mtu"), f"{tunnel.lan_mtu}: an IPv6 packet in a tunnel needs IPv6's "
                                              f"{IPV6_MIN_MTU} bytes plus the tunnel's {overhead}")
        if tunnel.device != TUNNEL_DEVICES[6]:
            errors.add(("tunnel", "device"), f"{tunnel.device!r}: an IPv6 site's VIPs go on {TUNNEL_DEVICES[6]} "
                                             "(the kernel's ip6ip6 device)")

    def ipvs(self, value):
        itree = _mapping(self.errors, ("ipvs",), value)
        _known(self.errors, ("ipvs",), itree, "ipvs")
        wanted = {key: _default("ipvs", key, itree) for key in SCHEMA["ipvs"]}
        return {key: _number(self.errors, ("ipvs", key), "ipvs", key, value)
                for key, value in wanted.items() if value is not None}

    def ha(self, value):
        errors, path = self.errors, ("ha",)
        htree = _mapping(errors, path, value)
        _known(errors, path, htree, "ha")
        directors = sum(1 for host in self.hosts.values() if host.role == "director")
        got = {key: _default("ha", key, htree) for key in SCHEMA["ha"]}
        # One id, table, mark and rule priority per director above base: rules must come
        # before the main table's (32766), tables must miss the kernel's own (253-255).
        top = 32765 - max(directors, 1)
        base = _number(errors, (*path, "base"), "ha", "base", got["base"], high=top)
        if base is not None and any(t in (253, 254, 255) for t in range(base, base + directors + 1)):
            errors.add((*path, "base"), f"{base} to {base + directors} include one of the kernel's own routing "
                                        "tables (253-255)")
        buckets = _number(errors, (*path, "buckets"), "ha", "buckets", got["buckets"], low=max(directors, 1))
        idle, unbalanced, interval, timeout = (_number(errors, (*path, key), "ha", key, got[key]) for key in
                                               ("idle_timer", "unbalanced_timer", "interval", "timeout"))
        if interval is not None and timeout is not None and timeout >= interval:
            errors.add((*path, "timeout"), f"{timeout} must be shorter than the interval ({interval:g})")
        rise, fall, sync_id, sync_refresh = (_number(errors, (*path, key), "ha", key, got[key]) for key in
                                             ("rise", "fall", "sync_id", "sync_refresh"))
        # An IOS router's track objects, one per director above it: IOS numbers them 1-1000.
        track_base = _number(errors, (*path, "track_base"), "ha", "track_base", got["track_base"],
                             high=1000 - max(directors, 1))
        return HA(base=base, buckets=buckets, idle_timer=idle, unbalanced_timer=unbalanced, interval=interval,
                  timeout=timeout, rise=rise, fall=fall, sync_id=sync_id, sync_refresh=sync_refresh,
                  track_base=track_base)

    def health(self, value):
        errors, path = self.errors, ("health",)
        tree = _mapping(errors, path, value)
        _known(errors, path, tree, "health")
        got = {key: _default("health", key, tree) for key in SCHEMA["health"]}
        checked = {key: _number(errors, (*path, key), "health", key, got[key]) for key in SCHEMA["health"]}
        # An invalid value is an error already; the default stands in for the rest of the parse.
        self.health_ = Health(**{key: default_of(SCHEMA["health"][key]) if value is None else value
                                 for key, value in checked.items()})

    def metrics(self, value):
        errors, path = self.errors, ("metrics",)
        mtree = _mapping(errors, path, value)
        _known(errors, path, mtree, "metrics")
        got = {key: _default("metrics", key, mtree) for key in SCHEMA["metrics"]}
        port = None if got["port"] is None else _number(errors, (*path, "port"), "metrics", "port", got["port"])
        listen = got["listen"]
        if listen == "any":
            errors.add((*path, "listen"), "any would bind every address of the directors, their VIPs too, which "
                                          "the router maps to public addresses: lan, or a subnet (a management "
                                          "network)")
            listen = "lan"
        elif listen != "lan":
            try:
                network = parse_network(listen) if isinstance(listen, str) else None
            except ValueError:
                network = None
            if network is None or network.ip != network.network:
                errors.add((*path, "listen"), f"{listen!r} must be lan or a subnet (network/prefix, no host "
                                              "bits) holding each director's address to listen on")
                listen = "lan"
            else:
                listen = str(network)
        return Metrics(port=port, listen=listen)


def _scheduling(errors, path, spec):
    """A service's scheduler, its flags, persistence and its granularity."""
    scheduler = _choice(errors, (*path, "scheduler"), _default("service", "scheduler", spec), SCHEDULERS)
    flags = spec.get("flags") or []
    if isinstance(flags, str):
        flags = [flags]
    if not isinstance(flags, list):
        errors.add((*path, "flags"), f"{flags!r} must be a list of scheduler flags")
        flags = []
    for flag in flags:
        _choice(errors, (*path, "flags"), flag, SCHED_FLAGS)
    persistent = _number(errors, (*path, "persistent"), "service", "persistent",
                         _default("service", "persistent", spec))
    netmask = None
    if spec.get("netmask") is not None:
        netmask = _ip(errors, (*path, "netmask"), spec["netmask"])
        if netmask is not None and not netaddr.IPAddress(netmask).is_netmask():
            errors.add((*path, "netmask"), f"{netmask} is not a netmask")
    return scheduler, flags, persistent, netmask


def _seconds(errors, path, value, low, high):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        errors.add(path, f"{value!r} must be a number of seconds from {low:g} to {high:g}")
        return None
    return float(value)


def _floor(errors, path, value, count):
    """How many backends a service keeps in when they fail: a count up to the number of
    backends, or a percentage "N%"."""
    if isinstance(value, str) and value.endswith("%"):
        try:
            percent = float(value[:-1])
        except ValueError:
            percent = -1
        if not 0 <= percent <= 100:
            errors.add(path, f"{value!r} is not a percentage from 0% to 100%")
        return value
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= count:
        errors.add(path, f"{value!r} must be a count from 0 to the {count} backend(s), or a percentage like 50%")
        return 1
    return value


def _name(errors, path, value):
    """An interface name the kernel takes: a string of 1 to 15 bytes (UTF-8), not '.'
    or '..', without '/', ':', whitespace or NUL (``dev_valid_name``); and matched as
    written: no '*' (nftables' wildcard), '?', '[', ']', '\\' or '"' (its quoting)."""
    text = value if isinstance(value, str) else ""
    if (not isinstance(value, str) or not 0 < len(text.encode()) < IFNAMSIZ or text in (".", "..")
            or any(c in "/:\0" or c.isspace() for c in text)):
        errors.add(path, f"{value!r} is not an interface name")
    elif any(c in WILDCARDS for c in text):
        errors.add(path, f"{value!r}: an interface is named as written; "
                         f"{' '.join(sorted(set(text) & set(WILDCARDS)))} would match others (nftables patterns)")
    return text


_IOS_INTERFACE = re.compile(r"[A-Za-z][A-Za-z-]*[0-9]+(/[0-9]+)*(\.[0-9]+)?")


def _ios_interface(errors, path, value):
    """An IOS interface name as the running config spells it: GigabitEthernet0/1."""
    text = value if isinstance(value, str) else ""
    if not _IOS_INTERFACE.fullmatch(text):
        errors.add(path, f"{value!r} is not an IOS interface name (like GigabitEthernet0/1)")
    return text


def _check(errors, path, value, protocol, port, hold):
    """The service's health check, with defaults filled in (used by the beacons)."""
    spec = _mapping(errors, path, value)
    _known(errors, path, spec, "check")
    default = {"tcp": "http", "udp": "udp"}.get(protocol, "none")
    kind = _choice(errors, (*path, "type"), spec.get("type", default), CHECK_TYPES)
    if kind is not None and protocol in CHECKS_FOR and kind not in CHECKS_FOR[protocol]:
        errors.add((*path, "type"), f"a {kind} check cannot test a {protocol} service")
    check = {
        "type": kind,
        # inherited values were checked where they stand: only overrides are checked here
        "port": _number(errors, (*path, "port"), "check", "port", spec["port"]) if "port" in spec else port,
        "path": _check_path(errors, (*path, "path"), _default("check", "path", spec)),
        "expect": _statuses(errors, (*path, "expect"), _default("check", "expect", spec)),
        "body": _regex(errors, (*path, "body"), _default("check", "body", spec)),
        "host": _hostname(errors, (*path, "host"), _default("check", "host", spec)),
        "verify": _flag(errors, (*path, "verify"), _default("check", "verify", spec)),
        "ca": _absolute(errors, (*path, "ca"), _default("check", "ca", spec)),
        "query": _hostname(errors, (*path, "query"), _default("check", "query", spec)),
        "query_type": _choice(errors, (*path, "query_type"), _default("check", "query_type", spec),
                              tuple(dnsmsg.TYPES)),
        "rcode": _choice(errors, (*path, "rcode"), _default("check", "rcode", spec), tuple(dnsmsg.RCODES)),
        "answer": None if spec.get("answer") is None else _ip(errors, (*path, "answer"), spec["answer"]),
        "command": _command(errors, (*path, "command"), _default("check", "command", spec)),
        "dynamic": _flag(errors, (*path, "dynamic"), _default("check", "dynamic", spec)),
        "interval": _default("check", "interval", spec),
        "timeout": _default("check", "timeout", spec),
        "rise": _number(errors, (*path, "rise"), "check", "rise", _default("check", "rise", spec)),
        "fall": _number(errors, (*path, "fall"), "check", "fall", _default("check", "fall", spec)),
        "alpha": _flag(errors, (*path, "alpha"), _default("check", "alpha", spec)),
        "hold": _number(errors, (*path, "hold"), "check", "hold", spec["hold"]) if "hold" in spec else hold,
    }
    numbers_ok = True
    for key in ("interval", "timeout"):  # above 0, not from 0: the schema's low is excluded
        high = SCHEMA["check"][key].high
        if isinstance(check[key], bool) or not isinstance(check[key], (int, float)) or not 0 < check[key] <= high:
            errors.add((*path, key), f"{check[key]!r} must be a number of seconds above 0, at most {high}")
            numbers_ok = False
    if numbers_ok and check["timeout"] >= check["interval"]:
        errors.add((*path, "timeout"), f"{check['timeout']} must be shorter than the interval {check['interval']}")
    if kind == "dns" and check["query"] is None:
        errors.add((*path, "query"), "a dns check needs a name to ask for (the server must answer it)")
    if kind == "script" and check["command"] is None:
        errors.add((*path, "command"), "a script check needs a command: [absolute path, arguments...]")
    if check["dynamic"] and kind != "script":
        errors.add((*path, "dynamic"), f"weights from the exit status come from script checks, not {kind}")
    if check["ca"] is not None and kind != "https":
        errors.add((*path, "ca"), f"a CA bundle is for https checks, not {kind}")
    return check


def _statuses(errors, path, value):
    """HTTP statuses a check accepts, as ``[[low, high], ...]``: one (200), a list
    ([200, 204]), a range ("200-399"), or a list of those."""
    ranges = []
    for item in value if isinstance(value, list) and value else [value]:
        low = high = item
        if isinstance(item, str) and re.fullmatch(r"[0-9]{3}-[0-9]{3}", item):
            low, high = (int(n) for n in item.split("-"))
        if isinstance(low, bool) or not isinstance(low, int) or not 100 <= low <= high <= 599:
            errors.add(path, f"{value!r} must be an HTTP status (100-599), a range like \"200-399\", or a "
                             "list of those")
            return [[200, 200]]
        ranges.append([low, high])
    return ranges


def _regex(errors, path, value):
    if value is None:
        return None
    try:
        re.compile(value)
    except (re.error, TypeError) as err:
        errors.add(path, f"{value!r} is not a regular expression ({err})")
        return None
    return value


_HOSTNAME = re.compile(r"(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.)*"
                       r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.?")


def _hostname(errors, path, value):
    """A DNS name (letters, digits, '-', '_', dots), or None."""
    if value is None:
        return None
    if not isinstance(value, str) or not _HOSTNAME.fullmatch(value):
        errors.add(path, f"{value!r} is not a host name")
        return None
    return value


def _flag(errors, path, value):
    if not isinstance(value, bool):
        errors.add(path, f"{value!r} must be true or false")
        return False
    return value


def _absolute(errors, path, value):
    """An absolute file path, or None."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith("/") or "\0" in value:
        errors.add(path, f"{value!r} must be an absolute path")
        return None
    return value


def _command(errors, path, value):
    """A command run without a shell: ``[absolute path, argument, ...]`` (strings), or None."""
    if value is None:
        return None
    if (not isinstance(value, list) or not value or not all(isinstance(arg, str) and "\0" not in arg
                                                             for arg in value)
            or not value[0].startswith("/")):
        errors.add(path, f"{value!r} must be a list: an absolute path, then its arguments (strings; no shell)")
        return None
    return list(value)


def _check_path(errors, path, value):
    """An HTTP path for the check's request line: '/' then printable ASCII, no space."""
    if not isinstance(value, str) or not _CHECK_PATH.fullmatch(value):
        errors.add(path, f"{value!r} is not an HTTP path ('/' then printable ASCII, no space or line break)")
        return "/"
    return value


def _encap(errors, path, spec, part, inherited):
    """An encapsulation (``kind``, ``port``, ``checksum``) from ``spec`` at ``path``; what
    it does not say comes from ``inherited`` (the site's, for a service), or the schema's
    defaults. A port is GUE's alone (checked, unused by the other kinds); each kind takes
    its own checksums."""
    if part == "tunnel":
        kind, port, checksum = (_default(part, key, spec) for key in ("kind", "port", "checksum"))
        given_port = "port" in spec
    else:
        kind = spec.get("kind", inherited.kind)
        given_port = "port" in spec
        port = spec.get("port", inherited.port if inherited.kind == "gue" else SCHEMA["tunnel"]["port"].default)
        checksum = spec.get("checksum", inherited.checksum if kind == inherited.kind else "none")
    kind = _choice(errors, (*path, "kind"), kind, TUNNEL_KINDS)
    if kind is None:
        return inherited
    port = _number(errors, (*path, "port"), part, "port", port) or 0 if kind == "gue" or given_port else 0
    if kind != "gue":
        port = 0  # the other kinds have none (the setting stays for a switch back to gue)
    checksum = _choice(errors, (*path, "checksum"), checksum, CHECKSUMS[kind]) or "none"
    return Encap(kind=kind, port=port, checksum=checksum)


def _tunnel(errors, spec, encap, services, version):
    """The tunnel policy; ``mss: auto`` clamps to what fits in one tunnelled packet of
    the largest encapsulation any service uses (one clamp for all the VIPs), in the
    site's IP ``version``. A GUE port must not be a UDP service's: the real servers' GUE
    socket would take its datagrams."""
    path = ("tunnel",)
    device = _name(errors, (*path, "device"), spec.get("device", TUNNEL_DEVICES[version]))
    lan_mtu = _number(errors, (*path, "lan_mtu"), "tunnel", "lan_mtu", _default("tunnel", "lan_mtu", spec))
    overhead = max([encap.overhead(version), *(svc.encap.overhead(version) for svc in services)])
    headers = TCP_IP_HEADERS + (IPV6_EXTRA if version == 6 else 0)
    fits = lan_mtu - overhead - headers if lan_mtu else None
    mss = _default("tunnel", "mss", spec)
    if mss == "auto":
        mss = fits
    elif mss in ("off", False, None):
        mss = None
    else:
        mss = _number(errors, (*path, "mss"), "tunnel", "mss", mss)
        if mss is not None and fits is not None and mss > fits:
            errors.add((*path, "mss"), f"{mss} does not fit in a tunnelled packet on a {lan_mtu}-byte LAN "
                                       f"(at most {fits} with {overhead} bytes of encapsulation)")
    table = _number(errors, (*path, "route_table"), "tunnel", "route_table",
                    _default("tunnel", "route_table", spec))
    if table in (253, 254, 255):
        errors.add((*path, "route_table"), f"{table} is one of the kernel's own tables (default, main, local)")
    udp = {}  # a UDP port a real server serves -> the service
    for svc in services:
        if svc.protocol == "udp":
            for member in svc.members:
                udp.setdefault(member.port, svc.name)
    reported = set()
    for svc in services:
        used = svc.encap
        if used.kind != "gue" or used.port not in udp:
            continue
        where = (*path, "port") if used is encap else ("services", svc.name, "tunnel", "port")
        if where not in reported:
            reported.add(where)
            errors.add(where, f"{used.port} is the UDP port of lvs:services:{udp[used.port]}: a real server's "
                              "GUE socket would take that service's datagrams")
    return Tunnel(device=device, lan_mtu=lan_mtu, mss=mss, route_table=table, encap=encap)
