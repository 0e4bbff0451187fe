"""Sites no one here wrote: a generator biased toward valid sites (other subnets, ids,
NIC names, schedulers, counts, checks, sorry servers, floors, public addresses, several
directors, IOS routers, IPv6 sites). Every valid one has every role computed under several health
records, its director group, IOS lines, metrics view and path checks planned, with no
traceback; and the addresses the pack would take off a host are only ever ones it put
there (issue 25)."""

import ipaddress
import os
import random

import lvstun.dirgroup
import lvstun.ios
import lvstun.metrics
import lvstun.roles
import lvstun.site
import lvstun.tun
from tests.unit.checkout import load

N = int(os.environ.get("N", 5200))
SCHEDULERS = lvstun.site.SCHEDULERS
NICS = ["eth0", "eth1", "ens3", "enp1s0", "bond0", "eth0.100", "lan", "br-lan", "ib0", "e"]
CHECKS = {"tcp": [{"type": "http", "path": "/health", "expect": [200, "300-399"]}, {"type": "tcp"},
                  {"type": "https", "port": 443, "host": "shop.example.com"}, {"type": "none"},
                  {"type": "script", "command": ["/usr/bin/true"], "dynamic": True},
                  {"type": "dns", "query": "www.example.com", "answer": "192.0.2.10"}],
          "udp": [{"type": "udp"}, {"type": "dns", "query": "example.org", "query_type": "MX"}, {"type": "none"}],
          "sctp": [{"type": "none"}, {"type": "script", "command": ["/bin/check", "-q"], "timeout": 0.8}]}


def _name(rng, taken, prefix):
    while True:
        name = rng.choice([prefix, "lb", "web", "node", "srv", "x"]) + rng.choice(["", "-", "_", "."]) + str(
            rng.randint(0, 999))
        if name not in taken:
            taken.add(name)
            return name


def _networks(rng, v6):
    """The LAN and the router's WAN of a generated site (IPv4, or IPv6)."""
    if v6:
        prefix = rng.choice([48, 56, 64, 64, 64, 80, 112, 120])
        base = ipaddress.ip_network(f"{rng.choice(['2001:db8', 'fd00', 'fd12:3456'])}:{rng.randint(0, 0xffff):x}::"
                                    f"/{prefix}", strict=False)
        wan = ipaddress.ip_network(f"2001:db8:{rng.randint(0, 0xffff):x}:{rng.randint(1, 0xffff):x}::/64")
        return base, wan
    prefix = rng.randint(16, 27)
    base = ipaddress.ip_network(f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.0/{prefix}", strict=False)
    wan = ipaddress.ip_network(f"{rng.choice([112, 198, 203, 45])}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.0/24")
    return base, wan


def generated_site(rng):
    """A pillar tree that is meant to be valid (a few are not: the parser decides); one
    in four an IPv6 site (a linux router, no NAT: what those take)."""
    v6 = rng.random() < 0.25
    base, wan = _networks(rng, v6)
    size = min(base.num_addresses - 2, 2**20)  # host addresses from base + 1 (the first million of an IPv6 one)
    picked = [base.network_address + n for n in rng.sample(range(2, size + 1), min(size - 1, 40))]
    gateway = base.network_address + 1 if rng.random() < 0.7 else picked.pop()
    wan_hosts = [wan.network_address + n for n in range(1, 12)]
    ids = set()
    kind = "linux" if v6 else rng.choice(["linux", "linux", "ios"])
    router = {"id": _name(rng, ids, "router"), "kind": kind, "wan_address": f"{wan_hosts[0]}/{wan.prefixlen}"}
    if kind == "linux" and rng.random() < 0.5:
        router.update(lan_interface=rng.choice(NICS), wan_interface="wan" + str(rng.randint(0, 9)))
    directors = {_name(rng, ids, "director"): {"address": str(picked.pop()), "interface": rng.choice(NICS)}
                 for _ in range(rng.choice([1, 1, 2, 3]))}
    realservers = {}
    for _ in range(rng.randint(1, 8)):
        spec = {"address": str(picked.pop()), "weight": rng.choice([0, 1, 1, 2, 5, 100, 65535])}
        if rng.random() < 0.3:
            spec["interface"] = rng.choice(NICS)
        realservers[_name(rng, ids, "rs")] = spec
    services, used = {}, set()
    for index in range(rng.randint(1, 5)):
        protocol = rng.choice(["tcp", "tcp", "udp", "sctp"])
        port = rng.randint(1, 65535)
        vip = str(picked.pop()) if (rng.random() < 0.8 or not services) else \
            next(iter(services.values()))["vip"]
        if (vip, protocol, port) in used:
            continue
        used.add((vip, protocol, port))
        svc = {"vip": vip, "protocol": protocol, "port": port, "scheduler": rng.choice(SCHEDULERS),
               "check": dict(rng.choice(CHECKS[protocol]))}
        sharing = [s for s in services.values() if s["vip"] == vip]
        if sharing:  # one VIP, one public address (1:1 NAT)
            if "public" in sharing[0]:
                svc["public"] = sharing[0]["public"]
        elif rng.random() < 0.6 and not v6:
            svc["public"] = str(wan_hosts[1 + index])
        names = sorted(realservers)
        members = rng.sample(names, rng.randint(1, len(names)))
        if rng.random() < 0.5:
            svc["backends"] = {m: ({"weight": rng.randint(0, 9)} if rng.random() < 0.5 else {}) for m in members}
            others = [n for n in names if n not in members]
            if others and rng.random() < 0.5:
                svc["sorry"] = rng.choice(others)
        svc["floor"] = rng.choice([0, 1, "50%", "100%", "0%"])
        if rng.random() < 0.3:
            svc["persistent"] = rng.randint(1, 3600)
            if not v6:
                svc["netmask"] = rng.choice(["255.255.255.255", "255.255.255.0"])
        services[f"svc{index}"] = svc
    tree = {"lan": {"subnet": str(base), "gateway": str(gateway)}, "router": router, "directors": directors,
            "realservers": realservers, "services": services}
    if rng.random() < 0.3:
        tree["health"] = {"hold": rng.randint(0, 30), "heartbeat": rng.randint(1, 30),
                          "path_interval": rng.choice([0.1, 0.5, 2])}
    if rng.random() < 0.3:
        tree["tunnel"] = {"device": "ip6tnl0" if v6 else rng.choice(["tunl0", "lvs0", "ipip1"]),
                          "lan_mtu": rng.choice([1500, 9000, 1400]), "mss": rng.choice(["auto", "off", 1200])}
    if rng.random() < 0.2:
        tree["metrics"] = {"port": rng.choice([None, 9100]),
                           "listen": rng.choice(["lan", "172.31.254.0/24", "fd00:feed::/64"])}
    return {"lvs": tree}


def health_records(rng, site):
    """Records of the runner that a site can meet: none, backends down, hosts down,
    drains, dynamic weights, entries for minions the site no longer has."""
    minions = sorted(h.minion_id for h in site.realservers)
    names = sorted(site.services)
    yield {}
    yield {"health": {m: {"services": {n: False for n in names}, "host": True} for m in minions}}
    yield {"health": {m: {"services": {}, "host": False} for m in minions[: len(minions) // 2 + 1]}}
    yield {"maintenance": {m: {"services": ["*"], "reason": "x"} for m in minions}}
    yield {"health": {m: {"services": {rng.choice(names): rng.random() < 0.5}, "host": True,
                          "weights": {rng.choice(names): rng.randint(0, 65535)}} for m in minions},
           "maintenance": {rng.choice(minions): {"services": [rng.choice(names)]}, "gone": {"services": ["*"]}}}


def test_five_thousand_valid_generated_sites_compute_every_role_without_a_traceback():
    """5,200 sites generated, at least 5,000 valid (all today), about a quarter IPv6."""
    rng = random.Random(25)
    paths = load("lvs_paths_generated", "_beacons", "lvs_paths.py")
    valid = invalid = v6 = 0
    for _ in range(N):
        try:
            site = lvstun.site.parse(generated_site(rng))
        except lvstun.site.SiteError:
            invalid += 1
            continue
        valid += 1
        v6 += site.version == 6
        for minion in [site.router.minion_id, *site.hosts]:
            cfg = lvstun.roles.for_minion(site, minion)
            assert cfg["role"] == site.role_of(minion)
            if cfg["role"] == "router" and cfg["kind"] == "ios":
                assert lvstun.ios.desired(cfg)
        for record in health_records(rng, site):  # what the health record changes: the directors' tables
            for host in site.directors:
                services = lvstun.roles.director(site, host.minion_id, record)["services"]
                assert all(0 <= d["weight"] <= 65535 for svc in services.values()
                           for d in svc["destinations"].values())
        lvstun.dirgroup.spec(site)
        paths.plan(site)
        _only_what_the_pack_added(rng, site)
    assert valid >= 5000 or N < 5200, (valid, invalid)
    assert v6 >= valid // 5, (v6, valid)


def _only_what_the_pack_added(rng, site):
    """For each host that holds VIPs: whatever the host holds and whatever the pack
    recorded adding, the addresses it would take off are VIPs it added, no longer wanted."""
    for host in site.hosts.values():
        cfg = lvstun.roles.for_minion(site, host.minion_id)
        host_bits = 128 if site.version == 6 else 32
        wanted = set(cfg["vips"]["addresses"]) if cfg["role"] == "director" else \
            {f"{vip}/{host_bits}" for vip in cfg["vips"]}
        own = f"{host.address}/{ipaddress.ip_network(site.subnet).prefixlen}"
        extra = {f"10.{rng.randint(0, 255)}.0.{rng.randint(1, 254)}/32" for _ in range(3)}
        have = wanted | extra | {own, "127.0.0.1/8", "192.0.2.7/32"}
        added = set(rng.sample(sorted(have), rng.randint(0, len(have))))
        gone = lvstun.tun.stale_vips(have, wanted, added)
        assert set(gone) <= added - wanted
        assert own not in gone and "127.0.0.1/8" not in gone
        assert all(cidr.endswith(("/32", "/128")) for cidr in gone)  # a VIP: a host address
