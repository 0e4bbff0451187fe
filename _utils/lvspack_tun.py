"""What a TUN real server (and a director) needs from the kernel, as plain data.

A real server holds the VIPs as /32 on its ipip device, must not answer ARP for them
(arp_ignore 1), must not announce them as ARP source (arp_announce 2), and must accept
packets that arrive on the tunnel for a VIP it answers from another NIC (rp_filter 0,
the effective value being the maximum of ``all`` and the interface's).
"""

import netaddr


def realserver_sysctls(device="tunl0", lan_interface="eth0"):
    """{sysctl name: wanted value} for a TUN real server, in the order they are applied."""
    wanted = {}
    for iface in ("all", lan_interface, device):
        wanted[f"net.ipv4.conf.{iface}.arp_ignore"] = 1
        wanted[f"net.ipv4.conf.{iface}.arp_announce"] = 2
    for iface in ("all", "default", device):
        wanted[f"net.ipv4.conf.{iface}.rp_filter"] = 0
    return wanted


def director_sysctls(conn_reuse_mode=None, expire_nodest_conn=None):
    """Optional IPVS sysctls for a director (None: leave the kernel's value)."""
    wanted = {}
    if conn_reuse_mode is not None:
        wanted["net.ipv4.vs.conn_reuse_mode"] = int(conn_reuse_mode)
    if expire_nodest_conn is not None:
        wanted["net.ipv4.vs.expire_nodest_conn"] = int(expire_nodest_conn)
    return wanted


def sysctl_path(name):
    return "/proc/sys/" + name.replace(".", "/")


def vip_list(vips):
    """Validated VIPs as text (a VIP is one address; it is held as /32 or /128)."""
    out = []
    for vip in [vips] if isinstance(vips, str) else list(vips or ()):
        try:
            if "/" in str(vip):
                raise netaddr.AddrFormatError(vip)
            out.append(str(netaddr.IPAddress(str(vip))))
        except (netaddr.AddrFormatError, ValueError, TypeError):
            raise ValueError(f"VIP {vip!r} is not an IP address") from None
    return sorted(set(out), key=lambda v: netaddr.IPAddress(v))
