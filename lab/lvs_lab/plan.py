"""From a site topology to a lab: which hosts to build, on which engine, wired how.

* Directors and real servers need ip_vs and ipip, which this machine's kernel lacks:
  each becomes a user-mode Linux kernel of its own (engine ``uml``).
* The router needs only forwarding and nftables NAT, which the host kernel has: it
  becomes a network namespace with a native salt-minion (engine ``netns``).
* ``client`` is an outside host on the router's WAN side (namespace, no minion).

Every host gets a management NIC ``lab0`` on a private bridge where the lab's
salt-master listens; the site's own LAN carries only the site's traffic.

A lab may run further sites beside its first (one master, many sites): each has a LAN
bridge and a client of its own (``lan<N>``, ``client-<site>``), so that two sites may use
the same addresses; host indexes (taps, MACs, management addresses) run on across sites.
"""

from dataclasses import dataclass, field

import netaddr

MGMT_NET = netaddr.IPNetwork("172.31.254.0/24")
MASTER_ADDRESS = str(MGMT_NET[1])
SWITCH_NS = "lvslab"  # the namespace holding the lab's bridges and the salt-master
LAN_BRIDGE = "lan0"
MGMT_BRIDGE = "mgmt0"
CLIENT = "client"


@dataclass
class LabHost:
    name: str  # minion id (or "client")
    engine: str  # "uml" or "netns"
    role: str  # director, realserver, router, client
    lan_address: str = None  # with prefix
    lan_interface: str = "eth0"
    gateway: str = None
    mgmt_address: str = None  # with prefix
    minion: bool = True
    index: int = 0
    extra: dict = field(default_factory=dict)
    site: str = None  # the lab's name for the host's site: None for its first site
    bridge: str = LAN_BRIDGE  # the switch's bridge of the host's LAN (the client's: none)

    @property
    def netns(self):
        """The host namespace of a ``netns`` host."""
        return f"{SWITCH_NS}-{self.name}"

    @property
    def mgmt_ip(self):
        return self.mgmt_address.split("/")[0] if self.mgmt_address else None

    def tap(self, network):
        """Host-side device name for this host's NIC on ``network`` ('lan' or 'mgmt')."""
        return f"lab{self.index}{network[0]}"

    def mac(self, network):
        """The fixed MAC of this host's NIC on ``network`` ('lan', 'mgmt', 'wan'; locally
        administered)."""
        return f"02:4c:56:{self.index:02x}:00:{('lan', 'mgmt', 'wan').index(network) + 1:02x}"


def client_name(key):
    """The client host of the lab's site ``key`` (None: the first site)."""
    return CLIENT if key is None else f"{CLIENT}-{key}"


def build(site, key=None, first_index=0):
    """Return the lab hosts for ``site`` (a parsed :class:`lvstun.site.Site`), by name:
    the lab's first site (``key`` None) or a further one named ``key``, whose hosts
    are numbered from ``first_index`` on."""
    prefix = netaddr.IPNetwork(site.subnet).prefixlen
    hosts = {}
    mgmt = (f"{MGMT_NET[2 + first_index + n]}/{MGMT_NET.prefixlen}" for n in range(len(site.hosts) + 1))
    common = {"site": key, "bridge": LAN_BRIDGE if key is None else f"lan{first_index}"}
    router = site.router
    hosts[router.minion_id] = LabHost(
        name=router.minion_id,
        engine="netns",
        role="router",
        lan_address=f"{router.lan_address}/{prefix}",
        lan_interface=router.lan_interface,
        mgmt_address=next(mgmt),
        index=first_index + len(hosts),
        extra={"wan_address": router.wan_address, "wan_interface": router.wan_interface},
        **common,
    )
    for host in sorted(site.hosts.values(), key=lambda h: (h.role != "director", h.minion_id)):
        extra = {}
        if host.role == "realserver":
            # The application answers on every port any service sends it (80 at least).
            ports = {"tcp": {80}, "udp": set()}
            for svc in site.services.values():
                for backend in svc.backends:
                    if backend.minion_id == host.minion_id and svc.protocol in ports:
                        ports[svc.protocol].add(backend.port)
            extra = {"tcp_ports": sorted(ports["tcp"]), "udp_ports": sorted(ports["udp"])}
        hosts[host.minion_id] = LabHost(
            name=host.minion_id,
            engine="uml",
            role=host.role,
            lan_address=f"{host.address}/{prefix}",
            lan_interface=host.interface,
            gateway=host.gateway,
            mgmt_address=next(mgmt),
            index=first_index + len(hosts),
            extra=extra,
            **common,
        )
    wan = netaddr.IPNetwork(router.wan_address)
    client_ip = next(ip for ip in wan.iter_hosts() if ip != wan.ip)
    hosts[client_name(key)] = LabHost(
        name=client_name(key),
        engine="netns",
        role="client",
        lan_address=f"{client_ip}/{wan.prefixlen}",
        gateway=str(wan.ip),
        minion=False,
        index=first_index + len(hosts),
        site=key,
        bridge=None,
    )
    return hosts
