"""IP addresses and the limits every part of the pack shares.

One parser for addresses: the C library's ``inet_pton``, strict (no shorthand such as
``10.1``, no prefix, no zone), canonical text out (``10.0.0.1``, ``fd00::1``). Callers
turn its ``ValueError`` into their own error (a pillar path, a Salt invocation error).
"""

import socket

import netaddr

PROTOCOLS = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP, "sctp": 132}  # IPVS service protocols
MAX_WEIGHT = 65535  # the largest weight IPVS takes (a u32 in netlink, capped by ipvsadm)
FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6}


def parse(value, versions=(4, 6)):
    """``(text, version)``: ``value`` as canonical address text and its IP version.

    Raises ValueError when ``value`` is not an address of one of ``versions``.
    """
    for version in versions:
        family = FAMILIES[version]
        try:
            return socket.inet_ntop(family, socket.inet_pton(family, value)), version
        except (OSError, ValueError, TypeError):
            continue
    kind = " or ".join(f"IPv{v}" for v in versions)
    raise ValueError(f"{value!r} is not an {kind} address")


def canonical(value, versions=(4, 6)):
    """``value`` as canonical address text; ValueError when it is not an address."""
    return parse(value, versions)[0]


def host_cidr(address):
    """``address`` as one host's network: ``10.10.24.88/32``, ``fd00::88/128`` (a VIP as a
    device holds it; ``address`` is canonical text)."""
    return f"{address}/{128 if ':' in str(address) else 32}"


def join_hostport(address, port):
    """``address:port``, ``[address]:port`` for IPv6 (``address`` is canonical text)."""
    address = str(address)
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def network(value):
    """``value`` (``address/prefix``, the prefix required) as a ``netaddr.IPNetwork``;
    ValueError when it is not one."""
    try:
        net = netaddr.IPNetwork(str(value))
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise ValueError(f"{value!r} is not a network (address/prefix)") from None
    if value is None or "/" not in str(value):
        raise ValueError(f"{value!r} needs a prefix length, e.g. /24")
    return net
