"""How a chained dump's datagram is split into messages (``lvstun.dumpchain``): the
one-pass split of messages alike gives what the step-by-step walk gives, or nothing."""

import random

import lvstun.dumpchain as dumpchain
import lvstun.genl as genl


def _message(kind, seq, body):
    return genl.NLMSG_HEADER.pack(genl.NLMSG_HEADER.size + len(body), kind, 2, seq, 99) + body


def _walked(data):
    return [message for _, _, message in dumpchain.messages(data)]


def test_messages_alike_are_split_in_one_pass_as_the_walk_splits_them():
    rng = random.Random(3)
    for _ in range(300):
        size = rng.choice([4, 20, 336, 337, 1000])
        count = rng.randint(1, 20)
        bodies = [bytes(rng.getrandbits(8) for _ in range(size)) for _ in range(count)]
        data = b"".join(_message(0x20, 7, body) + b"\0" * (-(16 + size) % 4) for body in bodies)
        heads, messages = dumpchain.alike(data)
        assert messages == _walked(data)
        assert heads == {(16 + size, 0x20, 2, 7, 99)}
        # Another sequence number, or another type, among them: seen in the headers.
        other = _message(0x20, 8, bodies[0]) + b"\0" * (-(16 + size) % 4)
        mixed = data + other
        heads, messages = dumpchain.alike(mixed)
        assert heads == {(16 + size, 0x20, 2, 7, 99), (16 + size, 0x20, 2, 8, 99)}
        assert messages == _walked(mixed)
        # The end of the dump after them: another length (not split here: the walk does
        # it), or the same length and its type in the headers.
        ended = dumpchain.alike(data + _message(3, 7, b"\0" * 4))
        assert ended is None if size != 4 else (3, 7) in {(kind, seq) for _, kind, _, seq, _ in ended[0]}
        assert dumpchain.alike(data[:-1]) is None
    assert dumpchain.alike(b"") is None
    assert dumpchain.alike(_message(3, 1, b"")[:10]) is None
