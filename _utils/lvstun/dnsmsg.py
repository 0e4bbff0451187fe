"""DNS messages for the health checks: one query, and the verdict on its answer (the
expected rcode and, when asked, an expected IPv4 address among the answer's A records).
RFC 1035 wire format; names in answers may be compressed."""

import random
import socket
import struct

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28, "SRV": 33}
RCODES = {"NOERROR": 0, "FORMERR": 1, "SERVFAIL": 2, "NXDOMAIN": 3, "NOTIMP": 4, "REFUSED": 5}


def query(name, qtype="A"):
    """``(id, message)``: a recursive query for ``name`` of type ``qtype``."""
    ident = random.getrandbits(16)
    labels = b"".join(bytes([len(label)]) + label.encode("ascii") for label in name.rstrip(".").split(".") if label)
    return ident, struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack(
        "!HH", TYPES[qtype], 1)


def _skip_name(message, offset):
    """The offset after the name at ``offset`` (labels, ended by a zero or a pointer)."""
    while True:
        if offset >= len(message):
            raise ValueError("a name runs past the message")
        length = message[offset]
        if length & 0xC0 == 0xC0:
            return offset + 2
        if length == 0:
            return offset + 1
        offset += 1 + length


def verdict(message, ident, rcode="NOERROR", answer=None):
    """``(ok, reason)`` for the answer ``message`` to query ``ident``: up when its rcode
    is ``rcode`` and, if ``answer`` is given, an A record of the answer holds it."""
    if len(message) < 12:
        return False, "DNS answer too short"
    got_id, flags, qdcount, ancount = struct.unpack("!HHHH", message[:8])
    if got_id != ident or not flags & 0x8000:
        return False, "not the answer to the query"
    name = {code: text for text, code in RCODES.items()}.get(flags & 0x0F, str(flags & 0x0F))
    if flags & 0x0F != RCODES[rcode]:
        return False, f"DNS {name}, expected {rcode}"
    if answer is None:
        return True, f"DNS {name}"
    try:
        offset = 12
        for _ in range(qdcount):
            offset = _skip_name(message, offset) + 4
        for _ in range(ancount):
            offset = _skip_name(message, offset)
            rtype, _, _, length = struct.unpack("!HHIH", message[offset:offset + 10])
            data = message[offset + 10:offset + 10 + length]
            if len(data) != length:
                raise ValueError("a record runs past the message")
            offset += 10 + length
            if rtype == TYPES["A"] and length == 4 and socket.inet_ntoa(data) == answer:
                return True, f"DNS {name} with {answer}"
    except (ValueError, struct.error):
        return False, "DNS answer malformed"
    return False, f"DNS {name} without {answer} in its answer"
