"""The kernel's foo-over-UDP receive ports (``ip fou``), over generic netlink.

A real server of a GUE service receives its requests as UDP datagrams to the site's GUE
port: ``ip fou add port 5555 gue`` opens that port in the kernel, which takes the GUE
header off and hands the inner IPv4 packet to its IP protocol (4: the ipip module, whose
tunnel device holds the VIPs); an IPv6 port (``ip fou add port 5555 gue -6``) hands an
inner IPv6 packet to protocol 41 (ip6_tunnel: ``ip6tnl0``). pyroute2 has no client for the ``fou`` family; this is
one, on the pack's generic-netlink socket (``lvstun.ipvsclient.GenericNetlink``).

.. code-block:: python

    with Fou() as fou:
        fou.add(5555)
        fou.add(5555, family=6)
        fou.ports()  # [{"port": 5555, "kind": "gue", "family": 4}, {... "family": 6}]
"""

import socket
import struct

from . import genl
from .address import FAMILIES
from .ipvsclient import GenericNetlink

CMD_ADD, CMD_DEL, CMD_GET = 1, 2, 3  # FOU_CMD_* (include/uapi/linux/fou.h)
ATTR_PORT, ATTR_AF, ATTR_IPPROTO, ATTR_TYPE = 1, 2, 3, 4  # FOU_ATTR_*
KINDS = {1: "direct", 2: "gue"}  # FOU_ENCAP_*
KIND_NUMBERS = {name: number for number, name in KINDS.items()}


VERSIONS = {af: version for version, af in FAMILIES.items()}


def _attrs(port, kind=None, family=4):
    attrs = genl.nla(ATTR_PORT, struct.pack("!H", port)) + genl.nla(ATTR_AF, bytes([FAMILIES[family]]))
    if kind is not None:
        attrs += genl.nla(ATTR_TYPE, bytes([KIND_NUMBERS[kind]]))
    return attrs


class Fou(GenericNetlink):
    """The ``fou`` family: its receive ports (IPv4 and IPv6)."""

    def __init__(self):
        super().__init__("fou", "is the fou kernel module loaded?")

    def ports(self):
        """Every receive port: ``[{"port", "kind", "family"}]`` (kind gue or direct,
        family 4 or 6)."""
        out = []
        for payload in self.dump_of(CMD_GET):
            attrs = genl.top(payload)
            family = VERSIONS.get(attrs[ATTR_AF][0] if ATTR_AF in attrs else socket.AF_INET)
            if family is None or ATTR_PORT not in attrs:
                continue
            kind = attrs[ATTR_TYPE][0] if ATTR_TYPE in attrs else 0
            out.append({"port": struct.unpack("!H", attrs[ATTR_PORT][:2])[0], "kind": KINDS.get(kind, str(kind)),
                        "family": family})
        return sorted(out, key=lambda entry: (entry["family"], entry["port"]))

    def add(self, port, kind="gue", family=4):
        """Open ``port`` of IP version ``family`` for ``kind`` (``gue``: the inner
        protocol comes from its header)."""
        self.ack_of(CMD_ADD, _attrs(port, kind, family))

    def delete(self, port, family=4):
        """Close the receive port ``port`` of IP version ``family``."""
        self.ack_of(CMD_DEL, _attrs(port, family=family))
