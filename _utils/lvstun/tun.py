"""What a TUN real server (and a director) needs from the kernel, as plain data.

A real server holds the VIPs as /32 on its ipip device, must not answer ARP for them
(arp_ignore 1), must not announce them as ARP source (arp_announce 2), and must accept
packets that arrive on the tunnel for a VIP it answers from another NIC (rp_filter 0,
the effective value being the maximum of ``all`` and the interface's).
"""

import netaddr

from .address import canonical as canonical_address


def realserver_sysctls(device="tunl0", lan_interface="eth0"):
    """{sysctl name: wanted value} for a TUN real server, in the order they are applied."""
    wanted = {}
    for iface in ("all", lan_interface, device):
        wanted[f"net.ipv4.conf.{iface}.arp_ignore"] = 1
        wanted[f"net.ipv4.conf.{iface}.arp_announce"] = 2
    for iface in ("all", "default", device):
        wanted[f"net.ipv4.conf.{iface}.rp_filter"] = 0
    return wanted


def director_sysctls(ipvs=None):
    """A TUN director's sysctls: no forwarding (IPVS tunnels requests itself; the seed
    sets ip_forward 0), plus the ``net.ipv4.vs.*`` settings given (e.g.
    ``{"conn_reuse_mode": 1, "expire_nodest_conn": 1}``)."""
    wanted = {"net.ipv4.ip_forward": 0}
    for key, value in sorted((ipvs or {}).items()):
        if value is not None:
            wanted[f"net.ipv4.vs.{key}"] = int(value)
    return wanted


def vip_list(vips):
    """Validated VIPs as text (a VIP is one address; it is held as /32 or /128)."""
    out = []
    for vip in [vips] if isinstance(vips, str) else list(vips or ()):
        try:
            out.append(canonical_address(vip))
        except ValueError:
            raise ValueError(f"VIP {vip!r} is not an IP address") from None
    return sorted(set(out), key=lambda v: netaddr.IPAddress(v))


def stale_vips(have, wanted, added, busy=()):
    """The addresses to take off a device that holds VIPs: those in ``have`` (``a/p``)
    that are not ``wanted``, are host addresses (/32, /128: a VIP), were ``added`` by the
    pack (its ``host-originals`` record) and carry no connection (``busy``: addresses
    answering a client now). Never anything else: a host's own address on that device,
    a loopback's, or a VIP that an operator or another tool put there stay."""
    out = []
    for cidr in sorted(set(have) - set(wanted) & set(added)):
        net = netaddr.IPNetwork(cidr)
        if net.prefixlen == (32 if net.version == 4 else 128) and str(net.ip) not in busy:
            out.append(cidr)
    return out


# TCP states (include/net/tcp_states.h) in which a socket needs its local address:
# everything but LISTEN (0A), TIME_WAIT (06) and CLOSE (07).
_BUSY_TCP_STATES = {"01", "02", "03", "04", "05", "08", "09", "0B", "0C"}
PROC_NET_TCP = ("/proc/net/tcp", "/proc/net/tcp6")


def _proc_address(text):
    """An address of /proc/net/tcp{,6} (hex, each 32-bit word in host order) as text."""
    raw = bytes.fromhex(text)
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return str(netaddr.IPAddress(int.from_bytes(raw, "big"), 4 if len(raw) == 4 else 6))


def addresses_in_use(tables=PROC_NET_TCP):
    """Addresses that carry a TCP connection now (from ``/proc/net/tcp`` and ``tcp6``): a
    VIP among them is still answering a client and must not be taken away yet."""
    busy = set()
    for table in [tables] if isinstance(tables, str) else tables:
        try:
            with open(table, encoding="ascii") as fh:
                next(fh, None)
                for line in fh:
                    fields = line.split()
                    if len(fields) > 3 and fields[3] in _BUSY_TCP_STATES:
                        busy.add(_proc_address(fields[1].split(":")[0]))
        except OSError:
            pass
    return busy
