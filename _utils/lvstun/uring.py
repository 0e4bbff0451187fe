"""A small io_uring (Linux 5.6+, through ``ctypes``): one chain of socket sends and
receives submitted and reaped in a single system call.

The IPVS client (``lvstun.ipvsclient``) runs its per-service destination dumps in such
chains: a scrape of 1,000 services is then some 60 system calls instead of 2,000, which
matters where a system call is expensive (~60 us on a UML kernel). Where io_uring is
missing or refused (an old kernel, ``kernel.io_uring_disabled``, a container's seccomp
profile), :class:`Ring` raises OSError and the client makes one call per step instead.

CLI Example (a send and a receive, the second after the first):

.. code-block:: python

    ring = Ring(8)
    results = ring.run([(OP_SEND, fd, address, length, 0), (OP_RECV, fd, buffer, size, 0)])
"""

import ctypes
import errno
import mmap
import os
import struct

SYS_SETUP, SYS_ENTER = 425, 426  # io_uring_setup, io_uring_enter (the same numbers on every architecture)
OP_SEND, OP_RECV = 26, 27  # IORING_OP_SEND, IORING_OP_RECV
SQE_IO_LINK = 1 << 2  # the next entry starts when this one ended well; a failure cancels the rest
ENTER_GETEVENTS = 1
OFF_SQ_RING, OFF_CQ_RING, OFF_SQES = 0, 0x8000000, 0x10000000
FEAT_SINGLE_MMAP = 1
# struct io_uring_params: 10 u32 (sq_entries ... resv[3]), io_sqring_offsets, io_cqring_offsets
PARAMS = struct.Struct("=10I8IQ8IQ")
SQE = struct.Struct("=BBHiQQIIQHHiQQ")  # struct io_uring_sqe (64 bytes)
CQE = struct.Struct("=QiI")  # struct io_uring_cqe: user_data, res, flags
U32 = struct.Struct("=I")
RETRIES = 100  # io_uring_enter refusing for now (EAGAIN, EBUSY) this many times in a run is an error


class Ring:
    """One io_uring instance of ``entries`` submission slots (a power of two)."""

    def __init__(self, entries):
        libc = ctypes.CDLL(None, use_errno=True)
        self._syscall = libc.syscall
        self._syscall.restype = ctypes.c_long
        params = ctypes.create_string_buffer(PARAMS.size)
        fd = self._syscall(ctypes.c_long(SYS_SETUP), ctypes.c_long(entries), params)
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, f"io_uring_setup: {os.strerror(code)}")
        self.fd = fd
        try:
            fields = PARAMS.unpack(params.raw)
            self.entries, cq_entries, _, _, _, features = fields[:6]
            sq_off, cq_off = fields[10:19], fields[19:28]
            sq_size = sq_off[6] + self.entries * U32.size  # array + its entries
            cq_size = cq_off[5] + cq_entries * CQE.size  # cqes + its entries
            if features & FEAT_SINGLE_MMAP:
                self._sq = self._cq = self._map(max(sq_size, cq_size), OFF_SQ_RING)
            else:
                self._sq, self._cq = self._map(sq_size, OFF_SQ_RING), self._map(cq_size, OFF_CQ_RING)
            self._sqes = self._map(self.entries * SQE.size, OFF_SQES)
        except BaseException:
            self.close()
            raise
        self._generation = 0  # tells this run's completions from a failed run's late ones
        self._sq_tail, self._sq_mask, self._sq_array = sq_off[1], sq_off[2], sq_off[6]
        self._cq_head, self._cq_tail, self._cq_mask, self._cqes = cq_off[0], cq_off[1], cq_off[2], cq_off[5]

    def _map(self, size, offset):
        return mmap.mmap(self.fd, size, mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0),
                         mmap.PROT_READ | mmap.PROT_WRITE, offset=offset)

    def close(self):
        for name in ("_sqes", "_cq", "_sq"):
            area = self.__dict__.pop(name, None)
            if area is not None and not area.closed:
                area.close()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def run(self, ops):
        """Run ``ops`` (``[(opcode, fd, address, length, msg_flags)]``, at most
        ``entries``) as one chain, each after the previous ended well; return each
        one's result (a byte count, or ``-errno``; ``-ECANCELED`` after a failure)."""
        if not 0 < len(ops) <= self.entries:
            raise ValueError(f"a chain of 1 to {self.entries} steps, not {len(ops)}")
        mask = U32.unpack_from(self._sq, self._sq_mask)[0]
        tail = U32.unpack_from(self._sq, self._sq_tail)[0]
        last = len(ops) - 1
        self._generation = (self._generation + 1) & 0xFFFFFFFF
        tag = self._generation << 32
        for i, (opcode, fd, address, length, flags) in enumerate(ops):
            index = (tail + i) & mask
            SQE.pack_into(self._sqes, index * SQE.size, opcode, SQE_IO_LINK if i < last else 0, 0, fd, 0,
                          address, length, flags, tag | i, 0, 0, 0, 0, 0)
            U32.pack_into(self._sq, self._sq_array + index * U32.size, index)
        U32.pack_into(self._sq, self._sq_tail, (tail + len(ops)) & 0xFFFFFFFF)  # the system call orders the stores
        results, submit, refused = [None] * len(ops), len(ops), 0
        while True:
            self._reap(results, tag)
            waiting = results.count(None)
            if not waiting:
                return results
            done = self._syscall(ctypes.c_long(SYS_ENTER), ctypes.c_long(self.fd), ctypes.c_long(submit),
                                 ctypes.c_long(waiting), ctypes.c_long(ENTER_GETEVENTS), None, ctypes.c_long(0))
            if done < 0:
                code = ctypes.get_errno()
                refused += code != errno.EINTR
                if code not in (errno.EINTR, errno.EAGAIN, errno.EBUSY) or refused > RETRIES:
                    raise OSError(code, f"io_uring_enter: {os.strerror(code)}")
            else:
                submit -= done

    def _reap(self, results, tag):
        head = U32.unpack_from(self._cq, self._cq_head)[0]
        tail = U32.unpack_from(self._cq, self._cq_tail)[0]
        mask = U32.unpack_from(self._cq, self._cq_mask)[0]
        while head != tail:
            user_data, res, _ = CQE.unpack_from(self._cq, self._cqes + (head & mask) * CQE.size)
            if user_data >> 32 == tag >> 32 and (user_data & 0xFFFFFFFF) < len(results):
                results[user_data & 0xFFFFFFFF] = res
            head = (head + 1) & 0xFFFFFFFF
        U32.pack_into(self._cq, self._cq_head, head)
