"""What each role of a site must hold, computed from the validated site (plain data).

The role states (``salt/lvs/<role>.sls``) render these dicts into state calls, so the
SLS files stay declarative and every decision is here, where unit tests reach it:

* ``director``: its LAN address, the VIPs (on its LAN NIC when it is the site's only
  director: it answers ARP for them, as in the seed; on ``lo`` with ARP hidden when
  there are several: the router spreads the flows over them), the default gateway, its
  sysctls, the IPVS services with one tunnel destination per backend, its Prometheus
  exporter (address, port, the site's view: ``lvstun.metrics``), and with several
  directors the connection sync daemons (master and backup) on its LAN NIC (an IPv6
  site's on an IPv6 multicast group, ``SYNC_GROUPS``);
* ``realserver``: its LAN address and gateway, the VIPs on the ipip device with the
  ARP/rp_filter sysctls, what it decapsulates besides ipip (GUE ports, GRE), and the
  VIP source routes that clamp the TCP MSS;
* ``router``: forwarding on, its LAN and WAN addresses (plus every public address as
  /32 so it answers ARP for them), the 1:1 NAT pairs, and with several directors every
  VIP routed over them: on Linux through the resilient group of the live directors
  (``lvstun.dirgroup``), on IOS by static routes, each tracked by an IP SLA probe of
  its director (``ios_tracking``).
"""

import math

import netaddr

from . import dirgroup, metrics, tun
from . import health as health_rules
from .address import host_cidr, join_hostport

NAT_TABLE = "lvs_nat"
# A host's forwarding switch in the site's IP version.
FORWARDING = {4: "net.ipv4.ip_forward", 6: "net.ipv6.conf.all.forwarding"}
MULTIPATH_HASH = {4: "net.ipv4.fib_multipath_hash_policy", 6: "net.ipv6.fib_multipath_hash_policy"}
# The directors' connection sync group: the kernel's (224.0.0.81) on IPv4; an IPv6 LAN
# may have no IPv4 address to send from, so a link-local IPv6 group there ("LV").
SYNC_GROUPS = {4: None, 6: "ff02::4c56"}


def _prefix(site):
    return netaddr.IPNetwork(site.subnet).prefixlen


def _host_cidr(site, host):
    return f"{host.address}/{_prefix(site)}"


def ipvs_services(site, health=None):
    """``{spec: settings}`` for ``ipvs.managed``: every service, every backend (and its
    sorry server) through the service's tunnel (ipip, gue or gre: ``Service.encap``), with
    the weight that the pillar and the health record give it
    (``lvstun.health.live_weights``): a highstate keeps the reactor's drains and the
    operators' maintenance."""
    services = {}
    for svc in site.services.values():
        weights = health_rules.live_weights(svc, health or {})
        tunnel = svc.encap.dest
        destinations = {}
        for member in svc.members:
            destinations[join_hostport(member.address, member.port)] = {
                "forward": "tunnel", **tunnel, "weight": weights[member.minion_id]}
        services[svc.spec] = {
            "scheduler": svc.scheduler,
            "flags": list(svc.flags),
            "persistent": svc.persistent,
            "netmask": svc.netmask,
            "destinations": destinations,
        }
    return services


def weights_of(services):
    """``{spec: {dest: weight}}`` of ``ipvs_services``' answer (what a director's
    weights are written and compared as)."""
    return {spec: {dest: settings["weight"] for dest, settings in svc["destinations"].items()}
            for spec, svc in services.items()}


def _vips(site):
    return sorted({svc.vip for svc in site.services.values()}, key=netaddr.IPAddress)


def director(site, minion_id, health=None):
    host = site.hosts[minion_id]
    shared = len(site.directors) > 1
    sysctls = tun.director_sysctls(site.ipvs)
    sysctls[FORWARDING[site.version]] = 0  # IPVS tunnels the requests itself
    if shared and site.version == 4:  # the VIPs live on lo: never answer ARP for them, never announce them
        for iface in ("all", host.interface):
            sysctls[f"net.ipv4.conf.{iface}.arp_ignore"] = 1
            sysctls[f"net.ipv4.conf.{iface}.arp_announce"] = 2
        # (IPv6 answers neighbour solicitations only for the addresses of the NIC they
        # came in on: VIPs on lo are never announced.)
    if shared and site.ha.sync_refresh:
        # Sync a busy connection again every sync_refresh seconds (not every 50th
        # packet): a director that returns knows the flows it gets back within that.
        sysctls["net.ipv4.vs.sync_threshold"] = [3, 0]
        sysctls["net.ipv4.vs.sync_refresh_period"] = site.ha.sync_refresh
    return {
        "role": "director",
        "interface": host.interface,
        "addresses": {host.interface: [_host_cidr(site, host)]},
        "vips": {"interface": "lo" if shared else host.interface,
                 "addresses": [host_cidr(vip) for vip in _vips(site)], "subnet": site.subnet},
        "gateway": host.gateway,
        "sysctls": sysctls,
        "services": ipvs_services(site, health),
        # Several directors: each sends its connections to the others and keeps theirs.
        "sync": {"interface": host.interface, "sync_id": site.ha.sync_id, "group": SYNC_GROUPS[site.version]}
        if shared else None,
        "metrics": _metrics(site, host, health),
    }


def _metrics(site, host, health):
    """The exporter's settings (None: the site has none): the port, where it listens
    (``address``, or ``subnet``: this host's own address in it, never a VIP of the
    view: ``lvs_exporter``) and the site's view."""
    if site.metrics.port is None:
        return None
    listen = site.metrics.listen
    where = {"address": host.address, "subnet": None} if listen == "lan" else {"address": None, "subnet": listen}
    return {"port": site.metrics.port, **where, "view": metrics.view(site, health)}


def realserver(site, minion_id):
    host = site.hosts[minion_id]
    mine = [site.services[name] for name in site.backed_by(minion_id)]
    vips = sorted({svc.vip for svc in mine}, key=netaddr.IPAddress)
    tcp_vips = sorted({svc.vip for svc in mine if svc.protocol == "tcp"}, key=netaddr.IPAddress)
    vip_routes = None
    if site.tunnel.mss and tcp_vips:
        vip_routes = {
            "vips": tcp_vips,
            "table": site.tunnel.route_table,
            "advmss": site.tunnel.mss,
            "gateway": host.gateway,
            "interface": host.interface,
            "subnet": site.subnet,
        }
    return {
        "role": "realserver",
        "interface": host.interface,
        "addresses": {host.interface: [_host_cidr(site, host)]},
        "gateway": host.gateway,
        "sysctls": {FORWARDING[site.version]: 0},
        "device": site.tunnel.device,
        "vips": vips,
        # What it decapsulates besides ipip: the GUE ports and GRE of the services it backs.
        "decap": decapsulation(mine),
        "vip_routes": vip_routes,
        # What the lvs_backend beacon checks here: each service on its VIP.
        "checks": {svc.name: {"vip": svc.vip, "protocol": svc.protocol, **svc.check,
                              "encap": [svc.encap.kind, svc.encap.port]} for svc in mine},
        "heartbeat": site.health.heartbeat,  # seconds between two reports when nothing changed
    }


def decapsulation(services):
    """``{"gue_ports": [...], "gre": bool}``: what a real server of ``services`` must
    receive besides IP protocol 4 (which its tunnel device always takes: a GUE packet's
    inner IPv4 goes to it too)."""
    return {"gue_ports": sorted({svc.encap.port for svc in services if svc.encap.kind == "gue"}),
            "gre": any(svc.encap.kind == "gre" for svc in services)}


def router(site, minion_id=None):
    rtr = site.router
    pairs = {}
    for svc in site.services.values():
        if svc.public != svc.vip:
            pairs[svc.public] = svc.vip
    own_wan = str(netaddr.IPNetwork(rtr.wan_address).ip)
    wan = [rtr.wan_address] + [host_cidr(public) for public in sorted(pairs, key=netaddr.IPAddress)
                               if public != own_wan]
    sysctls = {FORWARDING[site.version]: 1}
    routes = {}
    directors = sorted(h.address for h in site.directors)
    group = dirgroup.spec(site)
    if len(directors) > 1:
        sysctls[MULTIPATH_HASH[site.version]] = 1  # layer 4: one client's flows spread too
    if len(directors) > 1 and group is None:  # ios: ECMP static routes (lvstun.ios)
        routes = {host_cidr(vip): {"via": directors, "interface": rtr.lan_interface} for vip in _vips(site)}
    mappings = [{"public": public, "vip": vip} for public, vip in
                sorted(pairs.items(), key=lambda kv: netaddr.IPAddress(kv[0]))]
    if rtr.kind == "ios":
        # The device's addresses are the operator's; the pack owns the NAT lines and,
        # with several directors, the VIP routes and the probes that track them (lvstun.ios).
        return {
            "role": "router",
            "kind": "ios",
            "routes": routes,
            "tracking": ios_tracking(site) if routes else None,
            "save": rtr.save,
            "nat": {"inside_interface": rtr.lan_interface, "outside_interface": rtr.wan_interface,
                    "mappings": mappings} if site.version == 4 else None,  # IPv6: routed, no NAT
        }
    return {
        "role": "router",
        "kind": rtr.kind,
        "addresses": {rtr.lan_interface: [f"{rtr.lan_address}/{_prefix(site)}"], rtr.wan_interface: wan},
        "sysctls": sysctls,
        "routes": routes,
        "directors": group,
        "nat": {
            "table": NAT_TABLE,
            "wan_interface": rtr.wan_interface,
            "mappings": mappings,
        },
    }


def ios_tracking(site):
    """An IOS router's probes of its directors (several directors): one IP SLA ICMP echo
    per director (entry ``ha:base`` + n, n its number: ``dirgroup.numbered``), sent from the
    LAN interface every ``ha:interval`` seconds (IOS counts whole seconds: rounded up)
    with ``ha:timeout``, and a track object per entry (``ha:track_base`` + n) whose
    state the director's static routes follow. ``ha:fall`` and ``ha:rise`` become the
    track's delays: (fall - 1) and (rise - 1) probe intervals."""
    ha = site.ha
    frequency = max(1, math.ceil(ha.interval))
    return {"source_interface": site.router.lan_interface, "frequency": frequency,
            "timeout": round(ha.timeout * 1000), "delay_down": (ha.fall - 1) * frequency,
            "delay_up": (ha.rise - 1) * frequency,
            "directors": {host.address: {"sla": ha.base + index, "track": ha.track_base + index}
                          for index, host in dirgroup.numbered(site)}}


def for_minion(site, minion_id, health=None):
    """The configuration of ``minion_id``'s role, or ``{"role": None}`` outside the site.
    ``health``: the runner's health record (directors run the weights it gives)."""
    role = site.role_of(minion_id)
    if role is None:
        return {"role": None}
    if role == "director":
        return director(site, minion_id, health)
    return {"realserver": realserver, "router": router}[role](site, minion_id)
