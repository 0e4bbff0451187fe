"""The IPVS client's receiver (``lvstun.ipvsclient.Receiver``) on this host's kernel,
through a route-netlink socket (this kernel has no ip_vs): the datagrams queued on a
netlink socket, read one by one, whole, and nothing once none is queued."""

import socket
import struct

import pytest

from lvstun.ipvsclient import Receiver

pytestmark = pytest.mark.functional

NETLINK_ROUTE, RTM_GETLINK, NLMSG_DONE = 0, 18, 3
F_REQUEST, F_DUMP = 0x1, 0x300


def _socket():
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    sock.bind((0, 0))
    return sock


def _ask_link(sock, seq, flags, index=0):
    body = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, index, 0, 0)  # struct ifinfomsg
    sock.send(struct.pack("=IHHII", 16 + len(body), RTM_GETLINK, F_REQUEST | flags, seq, 0) + body)


def _messages(datagrams):
    """(type, seq, interface index) of each message."""
    out = []
    for data in datagrams:
        offset = 0
        while offset + 16 <= len(data):
            length, kind, _, seq, _ = struct.unpack_from("=IHHII", data, offset)
            index = struct.unpack_from("=i", data, offset + 20)[0] if kind == RTM_GETLINK - 2 else None
            out.append((kind, seq, index))
            offset += (length + 3) & ~3
    return out


@pytest.fixture(name="receiver")
def fixture_receiver():
    with _socket() as sock:
        yield Receiver(sock)


def test_a_dump_reads_whole_and_nothing_is_left(receiver):
    _ask_link(receiver.sock, 1, F_DUMP)
    seen = []
    while not seen or seen[-1][0] != NLMSG_DONE:
        seen += _messages(receiver.datagrams())
    assert sorted(index for kind, _, index in seen if index) == sorted(i for i, _ in socket.if_nameindex())
    assert receiver.datagrams(wait=False) == []  # an empty socket: no wait, nothing


def test_queued_datagrams_come_one_per_call_in_order(receiver):
    lo = socket.if_nametoindex("lo")
    for seq in range(1, 6):  # five answers, a datagram each, queued before any read
        _ask_link(receiver.sock, seq, 0, lo)
    first = receiver.datagrams()
    assert len(first) == 1
    while len(first) < 5:
        first += receiver.datagrams(wait=False)
    assert [(seq, index) for _, seq, index in _messages(first)] == [(seq, lo) for seq in range(1, 6)]
    assert receiver.datagrams(wait=False) == []


def test_a_datagram_larger_than_the_buffer_is_an_error_not_a_cut_reply(receiver):
    receiver.SLOT = 16  # smaller than any answer
    receiver.buffer = bytearray(16)
    _ask_link(receiver.sock, 1, 0, socket.if_nametoindex("lo"))
    with pytest.raises(OSError, match="larger than the receive buffer"):
        receiver.datagrams()
