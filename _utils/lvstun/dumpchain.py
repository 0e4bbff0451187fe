"""Netlink dumps run as io_uring chains (``lvstun.uring``): many dumps, one system call.

A netlink socket runs one dump at a time, and a dump of a few replies goes the same way
every time: the request's send makes the first datagram, whose receive makes the end
(NLMSG_DONE). So a chain of (send, receive, receive) per request, each step started when
the previous ended well, runs a dump after another without coming back to Python: the
IPVS client reads the destinations of ``CHAIN`` services per system call this way.

A chain is trusted only as far as every dump in it ended as expected (:meth:`DumpChains.run`):
a dump of more datagrams than two, an error, a refused step end the trusted part, and the
client replaces its socket (dropping whatever dump was left half-read on it) and reads
that one request the usual way. A dump that ends in its first datagram (no replies) ends
the chain there without harm: its second receive finds nothing and cancels the rest,
which never ran.
"""

import ctypes
import errno
import socket
import struct

from . import uring
from .genl import NLMSG_HEADER

NLMSG_ERROR, NLMSG_DONE = 2, 3
DONE_SIZE = NLMSG_HEADER.size + 4  # NLMSG_DONE: the header and an int
CHAIN = 16  # dumps per chain
SLOT = 32 << 10  # bytes per received datagram: the kernel writes dump datagrams of at most 32 KiB
REQUEST = 512  # bytes of buffer per request (an IPVS service key is under 100)


def messages(data):
    """``(type, seq, message bytes)`` of each netlink message of a datagram."""
    offset, size = 0, len(data)
    while offset + NLMSG_HEADER.size <= size:
        length, kind, _flags, seq, _pid = NLMSG_HEADER.unpack_from(data, offset)
        if length < NLMSG_HEADER.size:
            return
        yield kind, seq, data[offset:offset + length]
        offset += (length + 3) & ~3


_HEADS = {}  # a message's aligned length -> the struct reading its header and skipping the rest


def alike(data):
    """``(headers, messages)`` of a datagram whose netlink messages all have one length
    (a dump's replies of one layout): the set of their ``(length, type, flags, seq, pid)``
    headers and the messages, each made in one call instead of a step per message;
    None when the first message's length does not divide the datagram."""
    if len(data) < NLMSG_HEADER.size:
        return None
    length = NLMSG_HEADER.unpack_from(data)[0]
    step = (length + 3) & ~3
    if length < NLMSG_HEADER.size or len(data) % step:
        return None
    heads = _HEADS.get(step)
    if heads is None:
        heads = _HEADS[step] = struct.Struct(f"{NLMSG_HEADER.format}{step - NLMSG_HEADER.size}x")
    return set(heads.iter_unpack(data)), [data[at:at + length] for at in range(0, len(data), step)]


class DumpChains:
    """Chains of up to ``dumps`` dump requests; raises OSError where io_uring is not
    available (the caller then sends its requests one by one)."""

    def __init__(self, dumps=CHAIN, slot=SLOT):
        self.dumps, self.slot = dumps, slot
        self.ring = uring.Ring(1 << (3 * dumps - 1).bit_length())
        self.inbox = bytearray(2 * dumps * slot)
        self.outbox = bytearray(dumps * REQUEST)
        self._in = ctypes.addressof(ctypes.c_char.from_buffer(self.inbox))
        self._out = ctypes.addressof(ctypes.c_char.from_buffer(self.outbox))

    def close(self):
        self.ring.close()

    def run(self, sock, requests):
        """Run ``requests`` (``[(seq, request bytes)]``, at most ``dumps``) on ``sock``;
        return ``(replies, clean)``: the reply messages of each dump that ended as
        expected, in order (a prefix of the requests), and whether ``sock`` is left with
        no dump in progress and nothing queued (False: replace it)."""
        fd, ops, at = sock.fileno(), [], 0
        flags = socket.MSG_DONTWAIT | socket.MSG_TRUNC  # nothing queued fails (no wait); a long one says so
        for i, (_, request) in enumerate(requests[:self.dumps]):
            if len(request) > REQUEST:
                raise ValueError(f"a request of {len(request)} bytes (at most {REQUEST})")
            self.outbox[at:at + len(request)] = request
            ops += [(uring.OP_SEND, fd, self._out + at, len(request), 0),
                    (uring.OP_RECV, fd, self._in + 2 * i * self.slot, self.slot, flags),
                    (uring.OP_RECV, fd, self._in + (2 * i + 1) * self.slot, self.slot, flags)]
            at += REQUEST
        results = self.ring.run(ops)
        out = []
        for i, (seq, request) in enumerate(requests[:self.dumps]):
            sent, first, second = results[3 * i:3 * i + 3]
            if sent != len(request):
                return out, False
            replies, ended = self._read(2 * i, first, seq)
            if replies is None:
                return out, False
            if ended:  # no replies: the second receive found nothing and stopped the chain
                out.append(replies)
                return out, second == -errno.EAGAIN
            more, ended = self._read(2 * i + 1, second, seq)
            if more is None or not ended:
                return out, False
            out.append(replies + more)
        return out, True

    def _read(self, slot, size, seq):
        """``(replies, ended)`` of the datagram received into ``slot``; (None, False)
        when it is not one of this dump's (missing, cut, an error, another request's)."""
        if not 0 < size <= self.slot:
            return None, False
        start = slot * self.slot
        data = bytes(self.inbox[start:start + size])
        same = alike(data) if size > DONE_SIZE else None  # (a dump's last datagram: its end alone)
        if same is not None and len(same[0]) == 1:
            _, kind, _, rseq, _ = next(iter(same[0]))
            if rseq == seq and kind not in (NLMSG_ERROR, NLMSG_DONE):
                return same[1], False
        replies = []
        for kind, rseq, message in messages(data):
            if rseq != seq or kind == NLMSG_ERROR:
                return None, False
            if kind == NLMSG_DONE:
                return replies, True
            replies.append(message)
        return replies, False
