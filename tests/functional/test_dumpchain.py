"""io_uring chains (``lvstun.uring``) and netlink dumps run in them
(``lvstun.dumpchain``) on this host's kernel, through route-netlink sockets (this kernel
has no ip_vs; the lab's kernels run the IPVS client's chains): every dump read whole,
the same as dumped one by one, and every way a chain can go wrong seen as such."""

import ctypes
import errno
import os
import socket
import struct

import pytest

from lvstun import dumpchain, uring

pytestmark = pytest.mark.functional

RTM_GETLINK, RTM_GETNEXTHOP = 18, 106
F_REQUEST, F_DUMP = 0x1, 0x300


@pytest.fixture(autouse=True)
def _io_uring():
    try:
        uring.Ring(2).close()
    except OSError as err:  # the lab's kernels have it: the lab tests run the IPVS client's chains there
        reason = f"io_uring is not available on this host ({err}): the chains cannot be tested here"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(name="ring")
def fixture_ring():
    ring = uring.Ring(8)
    yield ring
    ring.close()


def test_a_chain_runs_in_order_and_a_failure_cancels_the_rest(ring):
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with left, right:
        out = bytearray(b"one two")
        into = bytearray(64)
        src = ctypes.addressof(ctypes.c_char.from_buffer(out))
        dst = ctypes.addressof(ctypes.c_char.from_buffer(into))
        results = ring.run([(uring.OP_SEND, left.fileno(), src, 3, 0),
                            (uring.OP_RECV, right.fileno(), dst, 64, 0),
                            (uring.OP_SEND, left.fileno(), src + 4, 3, 0),
                            (uring.OP_RECV, right.fileno(), dst + 3, 64, 0)])
        assert results == [3, 3, 3, 3] and bytes(into[:6]) == b"onetwo"
        results = ring.run([(uring.OP_RECV, right.fileno(), dst, 64, socket.MSG_DONTWAIT),  # nothing queued
                            (uring.OP_SEND, left.fileno(), src, 3, 0)])
        assert results == [-errno.EAGAIN, -errno.ECANCELED]
        with pytest.raises(BlockingIOError):
            right.recv(64, socket.MSG_DONTWAIT)
        with pytest.raises(ValueError):
            ring.run([(uring.OP_RECV, right.fileno(), dst, 64, 0)] * 9)


def _route_socket():
    """A route-netlink socket that has read one answer into a 32 KiB buffer: the kernel
    sizes a socket's dump datagrams by the largest read so far (a new socket's first
    dump comes in page-sized datagrams; the IPVS client's first read is its family's)."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    sock.bind((0, 0))
    body = struct.pack("=BxHiII", 0, 0, socket.if_nametoindex("lo"), 0, 0)
    sock.send(struct.pack("=IHHII", 16 + len(body), RTM_GETLINK, F_REQUEST, 99, 0) + body)
    sock.recv(dumpchain.SLOT)
    return sock


def _request(kind, seq):
    body = struct.pack("=BxHiII", 0, 0, 0, 0, 0)  # ifinfomsg / nhmsg-sized header, all zero: dump everything
    return seq, struct.pack("=IHHII", 16 + len(body), kind, F_REQUEST | F_DUMP, seq, 0) + body


def _one_by_one(kind):
    """The reply messages of one dump, read with plain recv (the witness)."""
    with _route_socket() as sock:
        _, request = _request(kind, 1)
        sock.send(request)
        out = []
        while True:
            for mkind, _, message in dumpchain.messages(sock.recv(1 << 16)):
                if mkind == dumpchain.NLMSG_DONE:
                    return out
                assert mkind != dumpchain.NLMSG_ERROR, "the witness dump failed"
                out.append(message)


def _body(message):
    return message[16:]  # without the header (its seq differs)


def test_dumps_in_chains_read_what_dumps_one_by_one_read():
    links = [_body(m) for m in _one_by_one(RTM_GETLINK)]
    assert links, "this host has interfaces"
    chains = dumpchain.DumpChains(dumps=4)
    try:
        with _route_socket() as sock:
            for start in (1, 5):  # two chains on the same socket, one after the other
                requests = [_request(RTM_GETLINK, seq) for seq in range(start, start + 4)]
                done, clean = chains.run(sock, requests)
                assert clean and len(done) == 4
                assert all([_body(m) for m in replies] == links for replies in done)
    finally:
        chains.close()


def test_an_empty_dump_ends_the_chain_cleanly_and_the_rest_never_ran():
    if _one_by_one(RTM_GETNEXTHOP):
        pytest.fail("this host has nexthop objects: the empty dump this test needs is not empty")
    chains = dumpchain.DumpChains(dumps=4)
    try:
        with _route_socket() as sock:
            requests = [_request(RTM_GETLINK, 1), _request(RTM_GETNEXTHOP, 2), _request(RTM_GETLINK, 3)]
            done, clean = chains.run(sock, requests)
            assert clean and len(done) == 2 and done[1] == [] and done[0]
            with pytest.raises(BlockingIOError):  # nothing of the third dump: it never ran
                sock.recv(1 << 16, socket.MSG_DONTWAIT)
            done, clean = chains.run(sock, requests[2:])  # the socket goes on
            assert clean and [_body(m) for m in done[0]] == [_body(m) for m in _one_by_one(RTM_GETLINK)]
    finally:
        chains.close()


def test_a_dump_longer_than_a_datagram_ends_the_trusted_part():
    chains = dumpchain.DumpChains(dumps=4, slot=64)  # every reply datagram is cut
    try:
        with _route_socket() as sock:
            done, clean = chains.run(sock, [_request(RTM_GETLINK, seq) for seq in range(1, 4)])
            assert (done, clean) == ([], False)
    finally:
        chains.close()
