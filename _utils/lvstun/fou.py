"""The kernel's foo-over-UDP receive ports (``ip fou``), over generic netlink.

A real server of a GUE service receives its requests as UDP datagrams to the site's GUE
port: ``ip fou add port 5555 gue`` opens that port in the kernel, which takes the GUE
header off and hands the inner IPv4 packet to its IP protocol (4: the ipip module, whose
tunnel device holds the VIPs). pyroute2 has no client for the ``fou`` family; this is
one, on the pack's generic-netlink socket (``lvstun.ipvsclient.GenericNetlink``).

.. code-block:: python

    with Fou() as fou:
        fou.add(5555)
        fou.ports()  # [{"port": 5555, "kind": "gue", "family": 4}]
"""

import socket
import struct

from . import genl
from .ipvsclient import GenericNetlink

CMD_ADD, CMD_DEL, CMD_GET = 1, 2, 3  # FOU_CMD_* (include/uapi/linux/fou.h)
ATTR_PORT, ATTR_AF, ATTR_IPPROTO, ATTR_TYPE = 1, 2, 3, 4  # FOU_ATTR_*
KINDS = {1: "direct", 2: "gue"}  # FOU_ENCAP_*
KIND_NUMBERS = {name: number for number, name in KINDS.items()}


def _attrs(port, kind=None):
    attrs = genl.nla(ATTR_PORT, struct.pack("!H", port)) + genl.nla(ATTR_AF, bytes([socket.AF_INET]))
    if kind is not None:
        attrs += genl.nla(ATTR_TYPE, bytes([KIND_NUMBERS[kind]]))
    return attrs


class Fou(GenericNetlink):
    """The ``fou`` family: its IPv4 receive ports."""

    def __init__(self):
        super().__init__("fou", "is the fou kernel module loaded?")

    def ports(self):
        """Every IPv4 receive port: ``[{"port", "kind", "family"}]`` (kind gue or direct)."""
        out = []
        for payload in self.dump_of(CMD_GET):
            attrs = genl.top(payload)
            family = attrs[ATTR_AF][0] if ATTR_AF in attrs else socket.AF_INET
            if family != socket.AF_INET or ATTR_PORT not in attrs:
                continue
            kind = attrs[ATTR_TYPE][0] if ATTR_TYPE in attrs else 0
            out.append({"port": struct.unpack("!H", attrs[ATTR_PORT][:2])[0], "kind": KINDS.get(kind, str(kind)),
                        "family": 4})
        return sorted(out, key=lambda entry: entry["port"])

    def add(self, port, kind="gue"):
        """Open ``port`` for ``kind`` (``gue``: the inner protocol comes from its header)."""
        self.ack_of(CMD_ADD, _attrs(port, kind))

    def delete(self, port):
        """Close the IPv4 receive port ``port``."""
        self.ack_of(CMD_DEL, _attrs(port))
