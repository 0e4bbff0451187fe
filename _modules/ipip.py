"""The real server's side of LVS-TUN: an ipip device holding the VIPs, and the ARP and
rp_filter sysctls that make it answer clients directly without stealing the VIP; for
services whose directors wrap requests otherwise, what takes that off first: a GUE
receive port (``ip fou add port P gue``: the inner packet then goes to the ipip device)
and the kernel's GRE device ``gre0`` (up, rp_filter off).

IPv6 VIPs go on the kernel's ip6ip6 device ``ip6tnl0`` (module ip6_tunnel), which takes
IPv6-in-IPv6 packets from any host; GUE over IPv6 comes in on an IPv6 fou port (its inner
IPv6 packet goes to ``ip6tnl0`` too), GRE over IPv6 on the kernel's ``ip6gre0``. Nothing
hides them: Linux answers a neighbour solicitation only for an address of the interface it
came in on, and never takes a tunnel device's address as the source of its own
solicitations on the LAN. One sysctl keeps them: ``keep_addr_on_down`` on ``ip6tnl0``
(Linux drops an interface's IPv6 addresses when it goes down; the IPv4 VIPs on ``tunl0``
stay, and so do these then: the device back up serves again, as with IPv4).

Links and addresses through netlink (pyroute2); GUE ports through the ``fou`` family
(``lvstun.fou``); sysctls through /proc/sys.
"""

import errno
import os

import lvstun.address
import lvstun.drift
import lvstun.fou
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

from salt.exceptions import CommandExecutionError, SaltInvocationError

fresh(lvstun.address)
fresh(lvstun.drift)
fresh(lvstun.fou)
fresh(lvstun.originals)
fresh(lvstun.tun)
fresh(lvstun.sysctl)
fresh(lvstun.netlink)
__virtualname__ = "ipip"
FALLBACK = "tunl0"
FALLBACK6 = "ip6tnl0"
GRE = "gre0"  # the kernel's GRE device (ip_gre): it takes keyless GRE from any host
GRE6 = "ip6gre0"  # the same for IPv6 (ip6_gre)
# The tunnel device of each IP version: its link kind, the kernel module that makes its
# fallback device, and that device's name.
DEVICES = {4: ("ipip", "ipip", FALLBACK), 6: ("ip6tnl", "ip6_tunnel", FALLBACK6)}
FALLBACKS = {fallback for _, _, fallback in DEVICES.values()}
# What takes each version's GUE and GRE off before the tunnel device: the drift kind and
# the record part of its GUE ports, its GRE device and that device's module.
DECAP = {4: {"gue": "gue-port", "ports": "fou_ports", "gre": GRE, "gre_module": "ip_gre"},
         6: {"gue": "gue-port6", "ports": "fou_ports6", "gre": GRE6, "gre_module": "ip6_gre"}}
GUE_KINDS = {spec["gue"]: version for version, spec in DECAP.items()}
NO_DECAP = {"gue_ports": [], "gre": False}


def __virtual__():
    if not HAS_PYROUTE2:
        return False, "the ipip module needs pyroute2"
    return __virtualname__


def _vips(vips):
    try:
        return lvstun.tun.vip_list(vips)
    except ValueError as err:
        raise SaltInvocationError(str(err)) from None


def _version(vips, device):
    """The IP version of ``vips`` (4 when there are none): one per device; IPv6 VIPs go
    on ``ip6tnl0``."""
    versions = {6 if ":" in vip else 4 for vip in vips}
    if len(versions) > 1:
        raise SaltInvocationError(f"{device}: IPv4 and IPv6 VIPs go on two devices (tunl0, ip6tnl0), "
                                  f"not one: {vips}")
    version = versions.pop() if versions else 4
    if version == 6 and device != FALLBACK6:
        raise SaltInvocationError(f"IPv6 VIPs go on {FALLBACK6} (the kernel's ip6ip6 device), not {device}")
    return version


def _ensure_device(ipr, device, version, lan_interface):
    """Create the device: load the module of the fallback (tunl0, ip6tnl0), or add a
    named tunnel whose local end is the host's address on ``lan_interface``: the kernel
    refuses a second tunnel with the fallback's endpoints (any, any), and one bound to
    the host's address takes the director's packets to it before the fallback does."""
    kind, module, fallback = DEVICES[version]
    if device == fallback:
        _load(module, fallback, ipr)
        return
    if lvstun.netlink.link(ipr, device) is not None:
        return
    local = _local_address(ipr, lan_interface, version)
    try:
        ipr.link("add", ifname=device, kind=kind, **{f"{kind}_local": local})
    except NetlinkError as err:
        if err.code != errno.EEXIST or lvstun.netlink.link(ipr, device) is None:
            raise CommandExecutionError(f"cannot create {kind} device {device} (local {local}): {err}"
                                        + (": another tunnel has those endpoints" if err.code == errno.EEXIST
                                           else "")) from err


def _local_address(ipr, lan_interface, version):
    """The host's own address of IP ``version`` on ``lan_interface`` (a device's local end)."""
    found = lvstun.netlink.link(ipr, lan_interface)
    cidrs = lvstun.netlink.addresses(ipr, found["index"]) if found is not None else []
    for cidr in cidrs:
        ip = lvstun.address.network(cidr).ip
        if ip.version == version and not ip.is_link_local():
            return str(ip)
    raise CommandExecutionError(f"{lan_interface} has no IPv{version} address to be the local end of the tunnel "
                                "device (lvs:tunnel:device)")


def tunnel(device=FALLBACK):
    """Describe the tunnel device: ``{exists, up, mtu, addresses, kind}`` (``kind``:
    the link's kind, ``ipip`` or ``ip6tnl`` for a tunnel the pack can use).

    device
        The tunnel device's name (``tunl0``, ``ip6tnl0``, or the site's ``tunnel:device``).

    CLI Example:

    .. code-block:: bash

        salt rs1 ipip.tunnel
    """
    with IPRoute() as ipr:
        link = lvstun.netlink.link(ipr, device)
        if link is None:
            return {"exists": False, "up": False, "mtu": None, "addresses": [], "kind": None}
        return {"exists": True, "up": bool(link["flags"] & 1), "mtu": link.get_attr("IFLA_MTU"),
                "addresses": lvstun.netlink.addresses(ipr, link["index"]),
                "kind": link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")}


def check(vips, device=FALLBACK, lan_interface="eth0", mtu=None, sysctls=None, decap=None):
    """Every drift from a working TUN real server: a list of drift records (``kind``,
    ``object``, ``want``, ``have``; :mod:`lvstun.drift`), empty when all is right.

    The device holds ``vips``; another VIP the pack put on it is stale, removed once it
    carries no connection (nothing the pack did not put there is ever removed). The
    same for GUE ports: one the pack opened and no service uses any more is closed.

    vips
        The VIPs this real server answers for: IPv4 ones, or IPv6 ones (on ``ip6tnl0``).
    device
        The ipip device (``tunl0`` by default; ``ip6tnl0`` for IPv6 VIPs); one that
        exists and is not a tunnel of that kind is refused.
    lan_interface
        The LAN NIC (ARP hidden there too; IPv4).
    mtu
        The device's MTU (None: left alone).
    sysctls
        More ``{name: value}`` wanted with the TUN ones.
    decap
        ``{"gue_ports": [5555], "gre": true}``: what it receives besides ipip
        (``lvstun.roles.decapsulation``; default: nothing else).

    CLI Example:

    .. code-block:: bash

        salt rs1 ipip.check '[10.10.24.88]'
        salt rs1 ipip.check '[10.10.24.88]' decap='{"gue_ports": [5555], "gre": false}'
        salt rs1 ipip.check '["fd00:24::88"]' device=ip6tnl0
    """
    vips = _vips(vips)
    decap = {**NO_DECAP, **(decap or {})}
    version = _version(vips, device)
    kind = DEVICES[version][0]
    drifts = []
    state = tunnel(device)
    if state["exists"] and state["kind"] != kind:
        raise CommandExecutionError(f"{device} exists and is a {state['kind'] or 'device'}, not an {kind} tunnel: "
                                    "the VIPs go on tunl0 or an ipip device of the pack's (lvs:tunnel:device), "
                                    "IPv6 VIPs on ip6tnl0")
    if not state["exists"]:
        drifts.append(lvstun.drift.make("link", device, "present", "absent"))
    else:
        if not state["up"]:
            drifts.append(lvstun.drift.make("up", device, True, False))
        if mtu is not None and state["mtu"] != int(mtu):
            drifts.append(lvstun.drift.make("mtu", device, int(mtu), state["mtu"]))
    have = set(state["addresses"])
    for cidr in map(lvstun.address.host_cidr, vips):
        if cidr not in have:
            drifts.append(lvstun.drift.make("address", device, cidr, None))
    drifts += [lvstun.drift.make("address", device, None, cidr) for cidr in _stale(have, vips, device)]
    drifts += _gue_drifts(decap["gue_ports"], version)
    gre_device = DECAP[version]["gre"]
    gre = tunnel(gre_device)
    drifts += _gre_drifts(gre_device, gre, decap["gre"])
    wanted = _sysctls(device, lan_interface, sysctls, decap, version)
    # The devices' own settings appear with the devices: their creation is the drift then.
    skip = tuple(f".{name}." for name, there in ((device, state["exists"]), (gre_device, gre["exists"]))
                 if not there)
    drifts += lvstun.sysctl.drifts(wanted, skip=skip)
    return drifts


def _gre_drifts(name, gre, wanted):
    """The GRE device ``name`` (``tunnel(name)``: ``gre``) up when GRE is ``wanted``;
    set down again when the pack put it up and no GRE service is left."""
    if wanted and not gre["exists"]:
        return [lvstun.drift.make("link", name, "present", "absent")]
    if wanted and not gre["up"]:
        return [lvstun.drift.make("up", name, True, False)]
    if not wanted and gre["exists"] and gre["up"] and (_originals_link(name) or {"up": True})["up"] is False:
        return [lvstun.drift.make("up", name, False, True)]
    return []


def _sysctls(device, lan_interface, sysctls, decap, version):
    if version == 4:
        own = lvstun.tun.realserver_sysctls(device, lan_interface)
    else:  # the VIPs stay on the device when it goes down (as IPv4 addresses do)
        own = {f"net.ipv6.conf.{device}.keep_addr_on_down": 1}
    wanted = {**own, **(sysctls or {})}
    if decap["gre"] and version == 4:
        wanted[f"net.ipv4.conf.{GRE}.rp_filter"] = 0  # a request decapsulated there comes from a client
    return wanted


def _originals_link(name):
    return lvstun.originals.load(__opts__)["links"].get(name)


def _fou_ports(needed, version=4):
    """``{port: kind}`` of this host's foo-over-UDP ports of IP ``version``: none without
    the fou family (not asked for at all, so never loaded, when no GUE port is ``needed``
    and the fou module is not loaded: a kernel with fou built in answers when one is)."""
    if not needed and not os.path.exists("/sys/module/fou"):
        return {}
    try:
        with lvstun.fou.Fou() as fou:
            return {entry["port"]: entry["kind"] for entry in fou.ports() if entry["family"] == version}
    except OSError as err:
        if err.errno == errno.ENOENT:  # no fou family: no port open
            return {}
        raise CommandExecutionError(f"cannot read the GUE ports: {err}") from err


def _gue_drifts(ports, version=4):
    """The GUE ports of IP ``version`` wanted and not open, and those the pack opened
    that no service uses any more; a wanted port open for another encapsulation is
    refused."""
    kind, part = DECAP[version]["gue"], DECAP[version]["ports"]
    added = set(lvstun.originals.load(__opts__)[part])
    opened = _fou_ports(bool(ports) or bool(added), version)
    drifts = []
    for port in sorted(set(ports)):
        if port not in opened:
            drifts.append(lvstun.drift.make(kind, str(port), "gue", None))
        elif opened[port] != "gue":
            raise CommandExecutionError(f"UDP port {port} is a foo-over-UDP port of kind {opened[port]}, not gue: "
                                        "another tool's (lvs:tunnel:port)")
    drifts += [lvstun.drift.make(kind, str(port), None, "gue")
               for port in sorted(added - set(ports)) if opened.get(port) == "gue"]
    return drifts


def _added(device):
    """The addresses the pack put on ``device`` (its ``host-originals`` record)."""
    return lvstun.originals.load(__opts__)["addresses"].get(device, [])


def _stale(have, vips, device):
    """VIPs the pack put on the tunnel device that are no longer this host's and carry
    no connection any more (a VIP still answering a client stays until it is idle);
    nothing it did not put there (``lvstun.tun.stale_vips``)."""
    wanted = set(map(lvstun.address.host_cidr, vips))
    return lvstun.tun.stale_vips(have, wanted, _added(device), lvstun.tun.addresses_in_use())


def present(vips, device=FALLBACK, lan_interface="eth0", mtu=None, sysctls=None, decap=None):
    """Make this host a TUN real server for ``vips``; return what changed (as ``check``).

    vips, device, lan_interface, mtu, sysctls, decap
        As :func:`check` takes them.

    CLI Example:

    .. code-block:: bash

        salt rs1 ipip.present '[10.10.24.88]' mtu=1480
        salt rs1 ipip.present '["fd00:24::88"]' device=ip6tnl0
    """
    vips = _vips(vips)
    decap = {**NO_DECAP, **(decap or {})}
    drifts = check(vips, device, lan_interface, mtu, sysctls, decap)
    if not drifts:
        return []
    version = _version(vips, device)
    _note_originals(drifts, device, decap, version)
    with IPRoute() as ipr:
        _ensure_device(ipr, device, version, lan_interface)
        if decap["gre"]:
            _load(DECAP[version]["gre_module"], DECAP[version]["gre"], ipr)
        # ARP hidden and rp_filter off before a VIP is on the device, never after: a VIP
        # that answered ARP for a moment would draw the VIP's traffic from the director.
        # (The device's own settings exist once the device does.)
        try:
            lvstun.sysctl.apply(_sysctls(device, lan_interface, sysctls, decap, version))
        except lvstun.sysctl.SysctlError as err:
            raise CommandExecutionError(str(err)) from err
        index = _set_links(ipr, device, mtu, drifts)
        _set_vips(ipr, index, device, vips)
    _apply_gue([d for d in drifts if d["kind"] in GUE_KINDS])
    return drifts


def _note_originals(drifts, device, decap, version):
    """Record what the host had before :func:`present` changes it (for ``lvs.clean``)."""
    gre_device = DECAP[version]["gre"]
    before, gre_before = tunnel(device), tunnel(gre_device)
    record = lvstun.originals.note_drifts(lvstun.originals.load(__opts__), drifts)
    record = lvstun.originals.note_link(record, device, before["exists"], before["up"], before["mtu"])
    if decap["gre"]:
        record = lvstun.originals.note_link(record, gre_device, gre_before["exists"], gre_before["up"], None)
    for d in drifts:
        if d["kind"] in GUE_KINDS and d["want"]:
            record = lvstun.originals.note_item(record, DECAP[GUE_KINDS[d["kind"]]]["ports"], int(d["object"]))
    lvstun.originals.store(__opts__, record)


def _set_links(ipr, device, mtu, drifts):
    """The tunnel device up (at ``mtu``), gre0 up or down as ``drifts`` say; its index."""
    index = lvstun.netlink.link(ipr, device)["index"]
    changes = {"state": "up"}
    if mtu is not None:
        changes["mtu"] = int(mtu)
    try:
        ipr.link("set", index=index, **changes)
        for d in drifts:
            if d["object"] in (GRE, GRE6) and d["kind"] in ("link", "up"):
                ipr.link("set", index=lvstun.netlink.link(ipr, d["object"])["index"],
                         state="up" if d["want"] in (True, "present") else "down")
    except NetlinkError as err:
        raise CommandExecutionError(f"cannot set {device} {changes}: {err}") from err
    return index


def _set_vips(ipr, index, device, vips):
    """``vips`` on the device; the VIPs the pack put there that are stale, off."""
    for cidr in map(lvstun.address.host_cidr, vips):
        try:
            lvstun.netlink.add_address(ipr, index, cidr, vip=True)
        except NetlinkError as err:
            raise CommandExecutionError(f"cannot add {cidr} to {device}: {err}") from err
    for cidr in _stale(set(lvstun.netlink.addresses(ipr, index)), vips, device):
        try:
            lvstun.netlink.del_address(ipr, index, cidr)
        except NetlinkError as err:
            raise CommandExecutionError(f"cannot remove {cidr} from {device}: {err}") from err


def _load(module, device, ipr):
    """Load ``module`` for its fallback ``device`` (tunl0, ip6tnl0, gre0, ip6gre0) unless
    it is there."""
    if not os.path.exists(f"/sys/module/{module}") and "kmod.load" in __salt__:
        __salt__["kmod.load"](module)
    if lvstun.netlink.link(ipr, device) is None:
        raise CommandExecutionError(f"{device} did not appear: is the {module} kernel module available?")


def _apply_gue(drifts):
    """Open and close GUE ports as ``drifts`` say (the port's drift records)."""
    if not drifts:
        return
    if not os.path.exists("/sys/module/fou") and "kmod.load" in __salt__:
        __salt__["kmod.load"]("fou")
    try:
        with lvstun.fou.Fou() as fou:
            for d in drifts:
                family = GUE_KINDS[d["kind"]]
                if d["want"]:
                    fou.add(int(d["object"]), family=family)
                else:
                    fou.delete(int(d["object"]), family=family)
    except OSError as err:
        raise CommandExecutionError(f"cannot set the GUE ports {[d['object'] for d in drifts]}: {err}") from err
    if any(not d["want"] for d in drifts):
        record = lvstun.originals.load(__opts__)
        for d in drifts:
            if not d["want"]:
                record = lvstun.originals.forget(record, DECAP[GUE_KINDS[d["kind"]]]["ports"], int(d["object"]))
        lvstun.originals.store(__opts__, record)


def devices():
    """The tunnel devices the pack set up on this host, by its ``host-originals`` record
    (``tunl0``, ``ip6tnl0``, a site's own ``tunnel:device``), the GRE devices it set up
    for decapsulation aside: what ``lvs.clean`` takes back, whatever the site said.

    CLI Example:

    .. code-block:: bash

        salt rs1 ipip.devices
    """
    decap = {spec["gre"] for spec in DECAP.values()}
    return sorted(name for name in lvstun.originals.load(__opts__)["links"] if name not in decap)


def check_absent(device=FALLBACK, decap=True):
    """What :func:`absent` would undo (drift records): the addresses the pack put on the
    tunnel device, and the device's state as it was before the pack set it up; the GUE
    ports it opened (IPv4 and IPv6), and ``gre0`` and ``ip6gre0`` as they were.

    device
        The tunnel device the pack set up (the site's ``tunnel:device``).
    decap
        The GUE ports and GRE devices too (False: the device alone, for a second device:
        ``ip6tnl0`` beside ``tunl0``).

    CLI Example:

    .. code-block:: bash

        salt rs1 ipip.check_absent
        salt rs1 ipip.check_absent ip6tnl0 decap=False
    """
    drifts = _decap_absent() if decap else []
    state = tunnel(device)
    if not state["exists"]:
        return drifts
    drifts += [lvstun.drift.make("address", device, None, cidr)
               for cidr in lvstun.tun.stale_vips(state["addresses"], (), _added(device))]
    before = lvstun.originals.load(__opts__)["links"].get(device)
    if before is not None and not before["exists"] and device in FALLBACKS:
        # A module's own device (its module was loaded for it) cannot be deleted: down.
        if state["up"]:
            drifts.append(lvstun.drift.make("up", device, False, True))
    elif before is not None and not before["exists"]:
        drifts.append(lvstun.drift.make("link", device, "absent", "present"))
    elif before is not None:
        if state["up"] != before["up"]:
            drifts.append(lvstun.drift.make("up", device, before["up"], state["up"]))
        if before["mtu"] is not None and state["mtu"] != before["mtu"]:
            drifts.append(lvstun.drift.make("mtu", device, before["mtu"], state["mtu"]))
    return drifts


def _decap_absent():
    """The GUE ports the pack opened, and the GRE devices it set up as they were."""
    drifts = []
    for version, spec in DECAP.items():
        drifts += _gue_drifts([], version)  # every GUE port of that version the pack opened
        gre, gre_before = tunnel(spec["gre"]), _originals_link(spec["gre"])
        if gre["exists"] and gre_before is not None and gre["up"] != gre_before["up"]:
            drifts.append(lvstun.drift.make("up", spec["gre"], gre_before["up"], gre["up"]))
    return drifts


def absent(device=FALLBACK, decap=True):
    """Undo what :func:`present` did to the device: its VIPs removed, and the device
    deleted (when the pack created it) or set back as it was (``tunl0``, ``ip6tnl0``:
    down, as their module made them); the GUE
    ports it opened closed, ``gre0`` and ``ip6gre0`` set back. The sysctls come back with
    ``lvs_net.clean``. Returns what changed (as ``check_absent``).

    device
        The tunnel device the pack set up (the site's ``tunnel:device``).
    decap
        As :func:`check_absent` takes it.

    CLI Example:

    .. code-block:: bash

        salt rs1 ipip.absent
        salt rs1 ipip.absent ip6tnl0 decap=False
    """
    drifts = check_absent(device, decap)
    if not drifts:
        return []
    _apply_gue([d for d in drifts if d["kind"] in GUE_KINDS])
    with IPRoute() as ipr:
        try:
            for d in drifts:
                if d["kind"] == "address":
                    lvstun.netlink.del_address(ipr, lvstun.netlink.link(ipr, d["object"])["index"], d["have"])
            for d in drifts:
                if d["kind"] in ("link", "up", "mtu"):
                    index = lvstun.netlink.link(ipr, d["object"])["index"]
                if d["kind"] == "link":
                    ipr.link("del", index=index)
                elif d["kind"] == "up":
                    ipr.link("set", index=index, state="up" if d["want"] else "down")
                elif d["kind"] == "mtu":
                    ipr.link("set", index=index, mtu=d["want"])
        except NetlinkError as err:
            raise CommandExecutionError(f"cannot undo {device}: {err}") from err
    return drifts
