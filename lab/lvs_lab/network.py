"""The lab's namespaces and wires: the switch's taps, the router's namespace and its
links, a host cut off the LAN.

A part of :class:`lvs_lab.lab.Lab` (a mixin: the lab's state is the Lab's)."""

import contextlib
import os
import signal

from lvs_lab import plan
from lvs_lab.system import (
    sh,
)


class Network:
    def _wire(self):
        """The switch: its namespace, the management bridge with the master's address."""
        ns = plan.SWITCH_NS
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "link", "add", plan.MGMT_BRIDGE, "type", "bridge")
        sh("ip", "-n", ns, "link", "set", plan.MGMT_BRIDGE, "up")
        sh("ip", "-n", ns, "addr", "add", f"{plan.MASTER_ADDRESS}/{plan.MGMT_NET.prefixlen}", "dev", plan.MGMT_BRIDGE)

    def _wire_site(self, hosts):
        """One site's ``hosts`` (LabHost list): its LAN bridge, its client's namespace,
        its router, and a tap pair for each of its kernels."""
        ns = plan.SWITCH_NS
        router = next(h for h in hosts if h.role == "router")
        sh("ip", "-n", ns, "link", "add", router.bridge, "type", "bridge")
        sh("ip", "-n", ns, "link", "set", router.bridge, "up")
        client = self.client_of(router)
        sh("ip", "netns", "add", client.netns)
        sh("ip", "-n", client.netns, "link", "set", "lo", "up")
        self._wire_router(router)
        for host in hosts:
            if host.engine != "uml":
                continue
            for network, bridge in (("lan", host.bridge), ("mgmt", plan.MGMT_BRIDGE)):
                sh("ip", "-n", ns, "tuntap", "add", "dev", host.tap(network), "mode", "tap")
                sh("ip", "-n", ns, "link", "set", host.tap(network), "master", bridge, "up")

    def _unwire_site(self, hosts):
        """Take one site's wires away (its kernels and minions already stopped)."""
        router = next(h for h in hosts if h.role == "router")
        self._unwire_router(router)
        sh("ip", "netns", "del", self.client_of(router).netns, check=False)
        for host in hosts:
            if host.engine == "uml":
                for network in ("lan", "mgmt"):
                    sh("ip", "-n", plan.SWITCH_NS, "link", "del", host.tap(network), check=False)
        sh("ip", "-n", plan.SWITCH_NS, "link", "del", router.bridge, check=False)

    def client_of(self, host):
        """The client (LabHost) on the WAN side of ``host``'s site."""
        return self.hosts[plan.client_name(host.site)]

    def _wire_router(self, router):
        """The router's namespace: LAN and management NICs into the switch, and its WAN
        NIC paired with the client's (the router's own LAN/WAN addresses, as an
        installer would set them; forwarding and NAT come from Salt)."""
        ns = plan.SWITCH_NS
        client = self.client_of(router)
        sh("ip", "netns", "add", router.netns)
        sh("ip", "-n", router.netns, "link", "set", "lo", "up")
        for network, bridge, ifname, address in (
            ("lan", router.bridge, router.lan_interface, router.lan_address),
            ("mgmt", plan.MGMT_BRIDGE, "lab0", router.mgmt_address),
        ):
            peer = router.tap(network)
            sh("ip", "-n", ns, "link", "add", peer, "type", "veth", "peer", "name", ifname, "netns", router.netns)
            sh("ip", "-n", router.netns, "link", "set", ifname, "address", router.mac(network))
            sh("ip", "-n", ns, "link", "set", peer, "master", bridge, "up")
            sh("ip", "-n", router.netns, "addr", "add", address, "dev", ifname)
            sh("ip", "-n", router.netns, "link", "set", ifname, "up")
        wan_if = router.extra["wan_interface"]
        sh("ip", "-n", router.netns, "link", "add", wan_if, "type", "veth", "peer", "name", "eth0",
           "netns", client.netns)
        sh("ip", "-n", router.netns, "link", "set", wan_if, "address", router.mac("wan"))
        sh("ip", "-n", client.netns, "link", "set", "eth0", "address", client.mac("lan"))
        sh("ip", "-n", router.netns, "addr", "add", router.extra["wan_address"], "dev", wan_if)
        sh("ip", "-n", router.netns, "link", "set", wan_if, "up")
        sh("ip", "-n", client.netns, "addr", "add", client.lan_address, "dev", "eth0")
        sh("ip", "-n", client.netns, "link", "set", "eth0", "up")
        sh("ip", "-n", client.netns, "route", "add", "default", "via", client.gateway)

    def _unwire_router(self, router):
        """Take the router's namespace away as a power cut would: its processes killed,
        its NICs' pairs deleted (synchronously: the kernel frees a deleted namespace's
        devices later, in a work queue, so the next ``_wire_router`` could find the old
        names still taken), then the namespace itself."""
        pids = sh("ip", "netns", "pids", router.netns, capture=True, check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        for netns, link in ((plan.SWITCH_NS, router.tap("lan")), (plan.SWITCH_NS, router.tap("mgmt")),
                            (self.client_of(router).netns, "eth0")):
            sh("ip", "-n", netns, "link", "del", link, check=False)
        sh("ip", "netns", "del", router.netns)

    def cut(self, name, cut=True):
        """Unplug (or plug back) the LAN cable of UML host ``name``: its tap leaves (or
        rejoins) the LAN bridge; the management network, and so its minion, stays. The tap
        itself stays up: UML's network driver stops sending for good once a write to a
        tap that is down fails."""
        tap = self.hosts[name].tap("lan")
        if cut:
            sh("ip", "-n", plan.SWITCH_NS, "link", "set", tap, "nomaster")
        else:
            sh("ip", "-n", plan.SWITCH_NS, "link", "set", tap, "master", self.hosts[name].bridge)

    @staticmethod
    def namespaces():
        names = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
        return sorted(n for n in names if n == plan.SWITCH_NS or n.startswith(plan.SWITCH_NS + "-"))
