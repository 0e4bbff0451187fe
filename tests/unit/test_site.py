"""The site topology model: the seed's site parses; malformed sites are rejected with
every error naming its pillar path."""

import copy
import glob
import os

import pytest
import yaml

import lvstun.site
from tests.unit.checkout import example_site

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("name", sorted(os.path.basename(path)[:-4]
                                        for path in glob.glob(os.path.join(REPO, "pillar", "lvs", "*.sls"))))
def test_every_example_site_is_valid(name):
    tree = example_site(name)
    if "lvs" in tree:  # (an SLS of settings alone, without a site, has nothing to parse)
        lvstun.site.parse(tree)


@pytest.fixture(name="seed")
def fixture_seed():
    return example_site("seed")


def test_seed_site_parses_with_roles(seed):
    site = lvstun.site.parse(seed)
    assert site.role_of("director") == "director"
    assert site.role_of("rs2") == "realserver"
    assert site.role_of("router") == "router"
    assert site.role_of("stranger") is None
    web = site.services["web"]
    assert (web.vip, web.public, web.protocol, web.port, web.scheduler) == ("10.10.24.88", "112.2.21.88", "tcp", 80, "rr")
    assert [(b.minion_id, b.address, b.port, b.weight) for b in web.backends] == [
        ("rs1", "10.10.24.21", 80, 1),
        ("rs2", "10.10.24.22", 80, 1),
        ("rs3", "10.10.24.23", 80, 1),
    ]


def test_seed_error_duplicate_address_names_both_hosts(seed):
    seed["lvs"]["realservers"]["rs3"]["address"] = "10.10.24.22"  # as the seed printed it
    with pytest.raises(lvstun.site.SiteError) as err:
        lvstun.site.parse(seed)
    assert err.value.errors == [
        "lvs:realservers:rs3:address: 10.10.24.22 is also the address of lvs:realservers:rs2"
    ]


def test_seed_error_gateway_off_subnet_is_rejected(seed):
    seed["lvs"]["lan"]["gateway"] = "192.168.1.1"  # the seed's director gateway
    seed["lvs"]["router"]["lan_address"] = "10.10.24.1"
    with pytest.raises(lvstun.site.SiteError) as err:
        lvstun.site.parse(seed)
    assert "lvs:lan:gateway: 192.168.1.1 is not on the LAN 10.10.24.0/24 (no host could reach it)" in err.value.errors


def _set(tree, path, value):
    *parents, last = path.split(":")
    for key in parents:
        tree = tree[key]
    if value is _DELETE:
        del tree[last]
    else:
        tree[last] = value


_DELETE = object()

# (pillar path to change, new value, expected error text)
MALFORMED = [
    ("lvs:lan:subnet", "10.10.24.0", "lvs:lan:subnet: '10.10.24.0' needs a prefix length"),
    ("lvs:lan:subnet", "10.10.24.1/24", "lvs:lan:subnet: 10.10.24.1/24 has host bits set"),
    ("lvs:lan:subnet", "banana", "lvs:lan:subnet: 'banana' is not a network"),
    ("lvs:lan:gateway", "10.10.24.300", "lvs:lan:gateway: '10.10.24.300' is not an IP address"),
    ("lvs:router:kind", "juniper", "lvs:router:kind: 'juniper' is not one of linux, ios"),
    ("lvs:router:id", _DELETE, "lvs:router:id: missing"),
    ("lvs:router:wan_address", "10.10.24.200/24", "lvs:router:wan_address: 10.10.24.200/24 is inside the LAN"),
    ("lvs:router:wan_address", "112.2.21.88", "lvs:router:wan_address: '112.2.21.88' needs a prefix length"),
    ("lvs:router:lan_address", "10.10.24.9", "lvs:router:lan_address: 10.10.24.9 differs from lvs:lan:gateway"),
    ("lvs:directors", {}, "lvs:directors: missing: the site needs at least one director"),
    ("lvs:realservers", None, "lvs:realservers: missing: the site needs at least one realserver"),
    ("lvs:directors:director:address", "10.10.25.2", "lvs:directors:director:address: 10.10.25.2 is not on the LAN"),
    ("lvs:directors:director:address", "10.10.24.1", "lvs:directors:director:address: 10.10.24.1 is also the address of lvs:router"),
    ("lvs:realservers:rs1:address", "fe80::1", "lvs:realservers:rs1:address: 'fe80::1' is an IPv6 address"),
    ("lvs:realservers:rs1:address", "10.10.24.21/24", "lvs:realservers:rs1:address: '10.10.24.21/24' is not an IP address"),
    ("lvs:realservers:rs1:weight", -1, "lvs:realservers:rs1:weight: -1 must be an integer from 0 to 65535"),
    ("lvs:realservers:rs1:weight", 65536, "lvs:realservers:rs1:weight: 65536 must be an integer"),
    ("lvs:realservers:rs1:weight", "heavy", "lvs:realservers:rs1:weight: 'heavy' must be an integer"),
    ("lvs:realservers:rs1", "10.10.24.21", "lvs:realservers:rs1: must be a mapping, got str"),
    ("lvs:services", {}, "lvs:services: missing: the site needs at least one virtual service"),
    ("lvs:services:web:vip", "10.10.24.21", "lvs:services:web:vip: 10.10.24.21 is the address of lvs:realservers:rs1, not a free VIP"),
    ("lvs:services:web:vip", None, "lvs:services:web:vip: None is not an IP address"),
    ("lvs:services:web:port", 0, "lvs:services:web:port: 0 must be an integer from 1 to 65535"),
    ("lvs:services:web:port", "80", "lvs:services:web:port: '80' must be an integer"),
    ("lvs:services:web:port", True, "lvs:services:web:port: True must be an integer"),
    ("lvs:services:web:protocol", "icmp", "lvs:services:web:protocol: 'icmp' is not one of tcp, udp, sctp"),
    ("lvs:services:web:scheduler", "random", "lvs:services:web:scheduler: 'random' is not one of"),
    ("lvs:services:web:public", "112.2.21", "lvs:services:web:public: '112.2.21' is not an IP address"),
    ("lvs:services:web:backends", {"rs9": {}}, "lvs:services:web:backends:rs9: 'rs9' is not a real server of this site"),
    ("lvs:services:web:backends", {"director": {}}, "lvs:services:web:backends:director: 'director' is not a real server"),
    ("lvs:services:web:backends", {"rs1": {"weight": 70000}}, "lvs:services:web:backends:rs1:weight: 70000 must be an integer"),
    ("lvs:services:web:backends", {"rs1": {"port": 0}}, "lvs:services:web:backends:rs1:port: 0 must be an integer"),
    ("lvs:realservers:router", {"address": "10.10.24.30"}, "lvs:realservers:router: minion id 'router' has another role already"),
    # the seed's director gateway, given per host
    ("lvs:directors:director:gateway", "192.168.1.1", "lvs:directors:director:gateway: 192.168.1.1 is not on the host's subnet"),
    ("lvs:directors:director:interface", "eth0/1", "lvs:directors:director:interface: 'eth0/1' is not an interface name"),
    ("lvs:directors:director2", {"address": "10.10.24.2"}, "lvs:directors:director2:address: 10.10.24.2 is also the address of lvs:directors:director"),
    ("lvs:services:web:flags", ["sh-port", "fast"], "lvs:services:web:flags: 'fast' is not one of"),
    ("lvs:services:web:persistent", -5, "lvs:services:web:persistent: -5 must be an integer"),
    ("lvs:services:web:netmask", "255.0.255.0", "lvs:services:web:netmask: 255.0.255.0 is not a netmask"),
    ("lvs:services:web:public", "10.10.24.99", "lvs:services:web:public: 10.10.24.99 is inside the LAN"),
    ("lvs:services:web:check", {"type": "udp"}, "lvs:services:web:check:type: a udp check cannot test a tcp service"),
    ("lvs:services:web:check", {"timeout": 2, "interval": 1}, "lvs:services:web:check:timeout: 2 must be shorter than the interval 1"),
    ("lvs:services:web:check", {"rise": 0}, "lvs:services:web:check:rise: 0 must be an integer from 1 to 100"),
    ("lvs:services:web:check", {"interval": "often"}, "lvs:services:web:check:interval: 'often' must be a number of seconds"),
    ("lvs:tunnel", {"mss": 1460}, "lvs:tunnel:mss: 1460 does not fit in a tunnelled packet on a 1500-byte LAN"),
    ("lvs:tunnel", {"lan_mtu": 100}, "lvs:tunnel:lan_mtu: 100 must be an integer from 576"),
    ("lvs:tunnel", {"route_table": 254}, "lvs:tunnel:route_table: 254 is one of the kernel's own tables"),
    ("lvs:ipvs", {"conn_reuse_mode": 7}, "lvs:ipvs:conn_reuse_mode: 7 must be an integer from 0 to 3"),
    ("lvs:ipvs", {"expire_nodest": 1}, "lvs:ipvs:expire_nodest: unknown setting (did you mean expire_nodest_conn?)"),
    # Hardening (issue 13): crashes, IPv6, addresses no host can have, names, unknown keys.
    ("lvs:realservers", {101: {"address": "10.10.24.21"}}, "lvs:realservers:101: 101 is not a minion id"),
    ("lvs:services:web:sorry", ["rs1"], "lvs:services:web:sorry: ['rs1'] must be one real server's minion id"),
    ("lvs:services:web:vip", "fd00::88", "lvs:services:web:vip: 'fd00::88' is an IPv6 address: the site is IPv4"),
    ("lvs:lan:subnet", "fd00::/64", "lvs:lan:gateway: '10.10.24.1' is an IPv4 address: the site is IPv6"),
    ("lvs:services:web:vip", "10.10.24.0", "lvs:services:web:vip: 10.10.24.0 is the network address of the LAN"),
    ("lvs:services:web:vip", "10.10.24.255", "lvs:services:web:vip: 10.10.24.255 is the broadcast address of the LAN"),
    ("lvs:realservers:rs1:address", "10.10.24.255", "lvs:realservers:rs1:address: 10.10.24.255 is the broadcast"),
    ("lvs:services:web:public", "0.0.0.0", "lvs:services:web:public: 0.0.0.0 is in 0.0.0.0/8"),
    ("lvs:services:web:public", "224.0.0.5", "lvs:services:web:public: 224.0.0.5 is a multicast address"),
    ("lvs:services:web:public", "127.0.0.1", "lvs:services:web:public: 127.0.0.1 is a loopback address"),
    ("lvs:services:web:public", "255.255.255.255", "lvs:services:web:public: 255.255.255.255 is a reserved address"),
    ("lvs:realservers:rs1:address", "::ffff:10.10.24.21", "lvs:realservers:rs1:address: '::ffff:10.10.24.21' is an IPv6"),
    ("lvs:services:web:backends", {"rs1": {"port": 8080}}, "lvs:services:web:backends:rs1:port: 8080 differs from the service's port 80"),
    *[(path, bad, f"{path}: {bad!r} is not an interface name") for path, bad in (
        ("lvs:router:wan_interface", "GigabitEthernet0/0\n"),  # a YAML block scalar's final newline
        ("lvs:directors:director:interface", "eth0\n"),
        ("lvs:directors:director:interface", "eth0\r"),
        ("lvs:directors:director:interface", "et\x00h0"),
        ("lvs:directors:director:interface", "ethéééééé12345"),  # 14 characters, 20 bytes
    )],
    ("lvs:directors:director:interface", ".", "lvs:directors:director:interface: '.' is not an interface name"),
    ("lvs:directors:director:interface", False, "lvs:directors:director:interface: False is not an interface name"),
    ("lvs:directors:director:interface", None, "lvs:directors:director:interface: None is not an interface name"),
    ("lvs:services:web:prot", "tcp", "lvs:services:web:prot: unknown setting (did you mean port?)"),
    ("lvs:realservers:rs1:wieght", 2, "lvs:realservers:rs1:wieght: unknown setting (did you mean weight?)"),
    ("lvs:services:web:check", {"timout": 1}, "lvs:services:web:check:timout: unknown setting (did you mean timeout?)"),
    ("lvs:servics", {}, "lvs:servics: unknown setting (did you mean services?)"),
    ("lvs:services:web:check", {"path": "/x HTTP/1.0\r\nHost: evil"},
     f"lvs:services:web:check:path: {'/x HTTP/1.0' + chr(13) + chr(10) + 'Host: evil'!r} is not an HTTP path"),
    ("lvs:services:web:check", {"path": "x"}, "lvs:services:web:check:path: 'x' is not an HTTP path"),
    # Sites that validated but broke the network they describe (issue 25).
    ("lvs:tunnel", {"device": "eth0"}, "lvs:tunnel:device: 'eth0' is a real server's LAN interface"),
    ("lvs:tunnel", {"device": "lo"}, "lvs:tunnel:device: 'lo' is the loopback device"),
    ("lvs:services:web:vip", "112.2.21.88", "lvs:services:web:vip: 112.2.21.88 is the router's own WAN address"),
    ("lvs:services:web", {"vip": "192.0.2.10", "port": 80},
     "lvs:services:web:vip: 192.0.2.10 is outside the LAN 10.10.24.0/24: a lone director"),
    ("lvs:services:web:public", "112.2.21.0", "lvs:services:web:public: 112.2.21.0 is the network address of the "
                                              "router's WAN 112.2.21.0/24"),
    ("lvs:services:web:public", "112.2.21.255", "lvs:services:web:public: 112.2.21.255 is the broadcast address"),
    ("lvs:realservers:rs1:gateway", "10.10.24.88", "lvs:realservers:rs1:gateway: 10.10.24.88 is the VIP of "
                                                   "lvs:services:web, not a router"),
    ("lvs:directors:director:gateway", "10.10.24.2", "lvs:directors:director:gateway: 10.10.24.2 is the host's own"),
    ("lvs:router:wan_interface", "wan*", "lvs:router:wan_interface: 'wan*': an interface is named as written; *"),
    ("lvs:router:lan_interface", "*", "lvs:router:lan_interface: '*': an interface is named as written"),
    ("lvs:metrics", {"listen": "any"}, "lvs:metrics:listen: any would bind every address"),
    ("lvs:realservers:rs1\nevil", {"address": "10.10.24.24"}, "lvs:realservers:'rs1\\nevil':"),
]


@pytest.mark.parametrize("path,value,expected", MALFORMED, ids=[f"{p}={v!r}"[:60] for p, v, _ in MALFORMED])
def test_malformed_site_is_rejected_naming_the_path(seed, path, value, expected):
    site = copy.deepcopy(seed)
    _set(site, path, value)
    with pytest.raises(lvstun.site.SiteError) as err:
        lvstun.site.parse(site)
    assert any(e.startswith(expected) for e in err.value.errors), err.value.errors


def test_a_key_with_a_newline_is_quoted_in_its_error_which_stays_one_line(seed):
    seed["lvs"]["realservers"]["rs1\nevil: 1"] = {"address": "10.10.24.24"}
    with pytest.raises(lvstun.site.SiteError) as err:
        lvstun.site.parse(seed)
    assert err.value.errors == ["lvs:realservers:'rs1\\nevil: 1': 'rs1\\nevil: 1' is not a minion id (letters, "
                                "digits, '.', '_', '-'; quote it in YAML when it looks like a number)"]
    assert all("\n" not in line for line in err.value.errors)


def test_an_ipv6_vip_is_one_error_not_two(seed):
    seed["lvs"]["services"]["web"].pop("public")
    seed["lvs"]["services"]["web"]["vip"] = "fd00::88"
    with pytest.raises(lvstun.site.SiteError) as err:
        lvstun.site.parse(seed)
    assert [e for e in err.value.errors if e.startswith("lvs:services:web")] == [
        "lvs:services:web:vip: 'fd00::88' is an IPv6 address: the site is IPv4 (lvs:lan:subnet)"]


def test_vlan_interface_names_are_valid(seed):
    seed["lvs"]["directors"]["director"]["interface"] = "eth0.100"
    assert lvstun.site.parse(seed).hosts["director"].interface == "eth0.100"


def test_a_public_address_that_is_another_services_vip_is_refused(seed):
    seed["lvs"]["services"]["api"] = {"vip": "10.10.24.89", "public": "112.2.21.89", "port": 8080}
    seed["lvs"]["services"]["web"]["public"] = "10.10.24.89"
    with pytest.raises(lvstun.site.SiteError) as err:
        lvstun.site.parse(seed)
    assert "lvs:services:web:public: 10.10.24.89 is the VIP of lvs:services:api: a public address maps to a VIP, " \
           "it is not one" in err.value.errors


def _mutations(rng, tree, path=()):
    """Every (path, node) of a pillar tree."""
    yield path, tree
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _mutations(rng, value, (*path, key))


ODD_VALUES = [None, True, 0, -1, 101, 2**40, 1.5, "", "x", "eth0\n", "\x00", "~", "10.10.24.21", "fd00::1",
              "10.10.24.0/24", [], ["rs1"], [{"a": 1}], {}, {"x": 1}, {101: {}}, "GigabitEthernet0/0\n"]


def test_generated_sites_are_parsed_or_rejected_never_crash(seed):
    """6,000 sites made from the seed (and a two-director copy) by replacing values or keys
    with odd ones: each parses or raises SiteError, never another exception."""
    import random  # noqa: PLC0415

    rng = random.Random(13)
    two = copy.deepcopy(seed)
    two["lvs"]["directors"]["director2"] = {"address": "10.10.24.3"}
    two["lvs"]["services"]["web"].update(sorry="rs3", backends={"rs1": {"weight": 2}, "rs2": {}})
    crashed = []
    for n in range(6000):
        site = copy.deepcopy(rng.choice([seed, two]))
        for _ in range(rng.randint(1, 3)):
            nodes = [(p, v) for p, v in _mutations(rng, site["lvs"])]
            path, _ = rng.choice(nodes)
            parent = site["lvs"]
            for key in path[:-1]:
                parent = parent[key]
            if not path or not isinstance(parent, dict):
                continue
            if rng.random() < 0.2:  # an odd key in place of a good one
                parent[rng.choice([101, None, True, "x\n", ("a",)])] = parent.pop(path[-1])
            else:
                parent[path[-1]] = copy.deepcopy(rng.choice(ODD_VALUES))
        try:
            lvstun.site.parse(site)
        except lvstun.site.SiteError:
            pass
        except Exception as err:
            crashed.append(f"{n}: {type(err).__name__}: {err}")
    assert not crashed, crashed[:5]


def test_all_errors_are_reported_at_once(seed):
    seed["lvs"]["services"]["web"]["port"] = 0
    seed["lvs"]["realservers"]["rs1"]["weight"] = -3
    seed["lvs"]["lan"]["gateway"] = "nowhere"
    with pytest.raises(lvstun.site.SiteError) as err:
        lvstun.site.parse(seed)
    assert len(err.value.errors) == 3
    assert str(err.value).startswith("invalid LVS site pillar:")


def test_duplicate_service_is_rejected(seed):
    seed["lvs"]["services"]["web2"] = dict(seed["lvs"]["services"]["web"])
    with pytest.raises(lvstun.site.SiteError) as err:
        lvstun.site.parse(seed)
    assert err.value.errors == ["lvs:services:web2: tcp 10.10.24.88:80 is also defined by lvs:services:web"]


def test_one_public_address_maps_to_one_vip(seed):
    seed["lvs"]["services"]["other"] = {"vip": "10.10.24.89", "public": "112.2.21.88", "port": 443}
    with pytest.raises(lvstun.site.SiteError) as err:
        lvstun.site.parse(seed)
    assert err.value.errors == ["lvs:services:other:public: 112.2.21.88 is already mapped to 10.10.24.88 by "
                                "lvs:services:web (1:1 NAT maps one address to one VIP)"]


def test_no_site_at_all():
    with pytest.raises(lvstun.site.SiteError) as err:
        lvstun.site.parse({})
    assert err.value.errors == ["lvs: no site defined (the pillar has no 'lvs' tree)"]


def test_the_docs_reference_documents_exactly_the_schema():
    with open(os.path.join(REPO, "docs", "pillar.md"), encoding="utf-8") as fh:
        block = fh.read().split("```yaml\n", 1)[1].split("```", 1)[0]
    tree = yaml.safe_load(block)["lvs"]

    def keys_of(mappings):
        return set().union(*(set(m) for m in mappings))

    services = list(tree["services"].values())
    documented = {
        "site": set(tree), "lan": set(tree["lan"]), "router": set(tree["router"]),
        "director": keys_of(tree["directors"].values()), "realserver": keys_of(tree["realservers"].values()),
        "service": keys_of(services), "check": keys_of(s["check"] for s in services),
        "backend": keys_of(b for s in services for b in s["backends"].values()),
        "service_tunnel": keys_of(s["tunnel"] for s in services), "tunnel": set(tree["tunnel"]), "ipvs": set(tree["ipvs"]), "ha": set(tree["ha"]),
        "metrics": set(tree["metrics"]), "health": set(tree["health"]),
    }
    assert set(documented) == set(lvstun.site.SCHEMA)
    for part, keys in documented.items():
        assert keys == set(lvstun.site.SCHEMA[part]), part
    # ... and its values are the defaults, where a setting has one of its own (not
    # required, not derived from another value, not a section of its own).
    shown = {"site": [tree], "lan": [tree["lan"]], "router": [tree["router"]],
             "director": list(tree["directors"].values()), "realserver": list(tree["realservers"].values()),
             "service": services, "check": [s["check"] for s in services],
             "backend": [b for s in services for b in s["backends"].values()],
             "service_tunnel": [s["tunnel"] for s in services], "tunnel": [tree["tunnel"]],
             "ipvs": [tree["ipvs"]], "ha": [tree["ha"]], "metrics": [tree["metrics"]], "health": [tree["health"]]}
    wrong = []
    for part, spec in lvstun.site.SCHEMA.items():
        for key, entry in spec.items():
            default = lvstun.site.default_of(entry)
            if default is lvstun.site.REQUIRED or isinstance(default, (lvstun.site.Derived, dict)):
                continue
            wrong += [f"{part}:{key}: {m[key]!r}, default {default!r}" for m in shown[part] if m.get(key) != default]
    assert wrong == []
    # The documented example is itself a valid site, defaults and all.
    lvstun.site.parse({"lvs": {**tree, "services": {"web": {**services[0], "sorry": None}}}})


SECTIONS = ("ha", "health", "tunnel", "ipvs", "metrics")
# Where the site narrows a range below the schema's high end: only the low end is tried.
NARROWED = {("ha", "base"): "by the number of directors", ("ha", "track_base"): "by the number of directors",
            ("ha", "timeout"): "below ha:interval", ("tunnel", "mss"): "what fits in lan_mtu"}


@pytest.mark.parametrize(("part", "key"), [(part, key) for part in SECTIONS
                                           for key, entry in lvstun.site.SCHEMA[part].items()
                                           if isinstance(entry, lvstun.site.Number)])
def test_a_number_is_taken_at_the_ends_of_its_schema_range_and_refused_beyond_by_its_path(seed, part, key):
    """The schema's range is the parser's (one source): its ends parse (the low end
    only where the site narrows it, NARROWED), one step past either end is refused
    naming the setting."""
    entry = lvstun.site.SCHEMA[part][key]
    step = 0.01 if entry.seconds else 1
    ends = (entry.low,) if (part, key) in NARROWED else (entry.low, entry.high)
    others = {("ha", "interval"): {"timeout": 0.05}, ("tunnel", "port"): {"kind": "gue"}}.get((part, key), {})
    for value in ends:
        tree = copy.deepcopy(seed)
        tree["lvs"][part] = {**others, key: value}
        lvstun.site.parse(tree)
    for value in (entry.low - step, entry.high + step):
        tree = copy.deepcopy(seed)
        tree["lvs"][part] = {key: value}
        with pytest.raises(lvstun.site.SiteError, match=f"lvs:{part}:{key}: "):
            lvstun.site.parse(tree)
