"""The one IPVS client: a generic-netlink socket that reads the table and applies plans.

Every IPVS change of the pack (the ``ipvs`` states and functions, the health runner's
weights, drains) is a plan of ``lvstun.ipvs.plan`` ops applied by :meth:`Client.apply`;
every read is :meth:`Client.read`. Messages come from ``lvstun.genl``.

Writes are batched: many requests in one ``send`` (up to ``BATCH`` bytes), without
acknowledgements. The kernel handles a netlink datagram's messages one after the other
inside that ``send`` and reports each refused one with an error message carrying its
sequence number, so once ``send`` returns, the errors of the batch are already queued
on the socket: they are collected without waiting, and a request without an error was
applied. 11,000 entries are about 40 system calls (a send and an empty read per 64 KiB)
instead of 22,000 (ipvsadm-restore: a request and its acknowledgement per line).

CLI Example (what ``ipvs.list`` does):

.. code-block:: python

    with Client() as ipvs:
        services = ipvs.read(stats=False)
"""

import errno
import os
import socket
import struct

from . import genl
from .dumpchain import NLMSG_DONE, NLMSG_ERROR, SLOT, DumpChains, messages
from .ipvs import join_hostport, parse_service, service_spec, service_values

NETLINK_GENERIC = 16
F_REQUEST, F_ACK, F_DUMP = 0x1, 0x4, 0x300
F_CREATE, F_EXCL, F_REPLACE = 0x400, 0x200, 0x100
SOL_NETLINK, NETLINK_CAP_ACK = 270, 10
GENL_ID_CTRL, CTRL_CMD_GETFAMILY, CTRL_ATTR_FAMILY_ID, CTRL_ATTR_FAMILY_NAME = 0x10, 3, 1, 2
BATCH = 64 << 10  # bytes of requests per send (the socket's send buffer takes ~200 KiB)
RCVBUF = 8 << 20
FEW = 64  # services read one by one rather than from a dump of every service


class IPVSError(OSError):
    """The kernel refused an IPVS request (``errno`` is its code)."""


def explain(code, action, scheduler=None):
    """A refused request's reason, in words: ``action`` names the step."""
    if code == errno.EEXIST:
        return f"{action}: it exists already"
    if code in (errno.ESRCH, errno.ENOENT) and scheduler and action.startswith(("add service", "edit service")):
        return f"{action}: scheduler {scheduler!r} is not available: load ip_vs_{scheduler}"
    if code == errno.ESRCH:
        return f"{action}: no such virtual service"
    if code == errno.ENOENT:
        return f"{action}: no such destination"
    if code == errno.EINVAL:
        return f"{action}: the kernel rejected it as invalid (EINVAL)"
    return f"{action}: {os.strerror(code)}"


class Receiver:
    """Reads the datagrams queued on a netlink socket, one per ``recv``. (Several per
    ``recvmmsg`` saved system calls on the lab's UML kernel, where each costs ~60 us;
    on Debian's stock kernel it did not help: 0.99x the scrape and the re-apply, the
    first apply 10 % slower, so it went: README, "Performance on the kernel users run".)
    """

    SLOT = SLOT  # bytes per datagram

    def __init__(self, sock):
        self.sock = sock
        self.buffer = bytearray(self.SLOT)

    def datagrams(self, wait=True):
        """The next datagram queued on the socket as bytes, in a list (waiting for one
        when ``wait``; else an empty list when none is queued)."""
        flags = socket.MSG_TRUNC | (0 if wait else socket.MSG_DONTWAIT)  # MSG_TRUNC: the datagram's whole size
        try:
            size = self.sock.recv_into(self.buffer, self.SLOT, flags)
        except BlockingIOError:
            return []
        if size > self.SLOT:
            raise OSError(errno.EMSGSIZE, "a netlink datagram larger than the receive buffer")
        return [bytes(self.buffer[:size])]


_VERBS = {"add_service": "add service", "edit_service": "edit service", "del_service": "delete service",
          "add_dest": "add destination", "edit_dest": "edit destination", "del_dest": "delete destination"}


def _step_words(op, svc, dest):
    """A step of a plan in words: ``add destination 10.10.24.21:80 of tcp:10.10.24.88:80``."""
    if dest is None:
        return f"{_VERBS[op]} {service_spec(svc)}"
    return f"{_VERBS[op]} {join_hostport(dest['address'], dest['port'])} of {service_spec(svc)}"


class GenericNetlink:
    """One raw generic-netlink socket for one family (``name``): the requests, their
    replies and errors. ``hint`` says what to load when the kernel lacks the family."""

    def __init__(self, name, hint):
        self.seq = 0
        self._open()
        try:
            self.family = self._family(name, hint)
        except BaseException:
            self.sock.close()
            raise

    def _open(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
        try:
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, 33, RCVBUF)  # SO_RCVBUFFORCE (root)
            except OSError:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            self.sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)  # errors without the request echoed
            self.sock.bind((0, 0))
            self.receiver = Receiver(self.sock)
        except BaseException:
            self.sock.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.sock.close()

    def _messages(self, wait=True):
        """Yield (type, seq, payload bytes) for each message of the datagrams queued on
        the socket (waiting for one when ``wait``; none when nothing is queued)."""
        for data in self.receiver.datagrams(wait):
            yield from messages(data)

    def _request(self, family, cmd, attrs, flags):
        """``(seq, request bytes)``: the next request of this socket."""
        self.seq += 1
        return self.seq, genl.request(family, cmd, attrs, flags, self.seq)

    @staticmethod
    def _error(payload):
        return -struct.unpack_from("=i", payload, 16)[0]

    def _replies(self, family, cmd, attrs, flags):
        """Send one request; yield ``(type, payload)`` of each reply to it, raising
        IPVSError when the kernel answers with an error."""
        seq, request = self._request(family, cmd, attrs, flags)
        self.sock.send(request)
        while True:
            for kind, rseq, payload in self._messages():
                if rseq != seq:
                    continue
                if kind == NLMSG_ERROR and self._error(payload):
                    code = self._error(payload)
                    raise IPVSError(code, os.strerror(code))
                yield kind, payload  # an NLMSG_ERROR of 0 is an acknowledgement

    def _family(self, name, hint):
        """The generic-netlink family id of ``name`` (the controller's answer)."""
        attrs = genl.nla(CTRL_ATTR_FAMILY_NAME, name.encode() + b"\0")
        try:
            _, payload = next(self._replies(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, attrs, F_REQUEST))
        except IPVSError as err:
            raise IPVSError(err.errno, f"no {name} netlink family ({err.strerror}): {hint}") from None
        return struct.unpack("=H", genl.top(payload)[CTRL_ATTR_FAMILY_ID][:2])[0]

    def dump_of(self, cmd, attrs=b""):
        """The raw replies of a dump request (``cmd``: the family's command number)."""
        out = []
        for kind, payload in self._replies(self.family, cmd, attrs, F_REQUEST | F_DUMP):
            if kind == NLMSG_DONE:
                return out
            out.append(payload)
        return out

    def ack_of(self, cmd, attrs=b""):
        """One request that changes something, answered by an acknowledgement (or an
        IPVSError)."""
        for kind, _ in self._replies(self.family, cmd, attrs, F_REQUEST | F_ACK):
            if kind == NLMSG_ERROR:  # the acknowledgement (an error of 0)
                return


class Client(GenericNetlink):
    """One raw generic-netlink socket for the IPVS family."""

    def __init__(self):
        self._chains = None  # DumpChains once a read needs them; False where io_uring is not available
        self._known = genl.KnownServices()  # the services a scrape reads every time
        super().__init__("IPVS", "is the ip_vs kernel module loaded?")

    def close(self):
        super().close()
        if self._chains:
            self._chains.close()
        self._chains = None

    # -------------------------------------------------------------- transport
    def dump(self, cmd, attrs=b""):
        """The raw replies of a dump request (``cmd`` a name of ``genl.COMMANDS``)."""
        return self.dump_of(genl.CMD[cmd], attrs)

    def dumps(self, cmd, attrs_list):
        """The raw replies of one dump per attribute set of ``attrs_list`` (a list each),
        run as io_uring chains where the kernel has io_uring (``lvstun.dumpchain``)."""
        out = []
        while len(out) < len(attrs_list):
            chains = self._dump_chains() if len(attrs_list) - len(out) > 1 else None
            if not chains:
                out.append(self.dump(cmd, attrs_list[len(out)]))
                continue
            requests = []
            for attrs in attrs_list[len(out):len(out) + chains.dumps]:
                requests.append(self._request(self.family, genl.CMD[cmd], attrs, F_REQUEST | F_DUMP))
            try:
                done, clean = chains.run(self.sock, requests)
            except OSError:  # the ring itself failed: no more chains for this client
                chains.close()
                self._chains, done, clean = False, [], False
            out += done
            if not clean:  # a dump that did not end as expected: a new socket, and that one as usual
                self.sock.close()
                self._open()
                out.append(self.dump(cmd, attrs_list[len(out)]))
        return out

    def _dump_chains(self):
        if self._chains is None:
            try:
                self._chains = DumpChains()
            except OSError:  # no io_uring here: one request at a time
                self._chains = False
        return self._chains

    def ask(self, cmd, attrs=b""):
        """One request answered by one reply (GET_CONFIG, GET_SERVICE of one): its raw payload."""
        return next(self._replies(self.family, genl.CMD[cmd], attrs, F_REQUEST))[1]

    def ask_ack(self, cmd, attrs=b""):
        """One request that changes something, answered by an acknowledgement (or an
        IPVSError)."""
        self.ack_of(genl.CMD[cmd], attrs)

    def send(self, requests):
        """Send ``(cmd, attrs, flags, label)`` requests in batches; return ``[(label,
        errno)]`` for those the kernel refused (every one is attempted)."""
        failed, labels, batch = [], {}, bytearray()
        for cmd, attrs, flags, label in requests:
            seq, request = self._request(self.family, genl.CMD[cmd], attrs, F_REQUEST | flags)
            labels[seq] = label
            batch += request
            if len(batch) >= BATCH:
                self._send_batch(batch, labels, failed)
                batch = bytearray()
        if batch:
            self._send_batch(batch, labels, failed)
        return failed

    def _send_batch(self, batch, labels, failed):
        self.sock.send(batch)
        # The kernel handled every message within send(): the errors are queued already.
        while True:
            try:
                got = False
                for kind, seq, payload in self._messages(wait=False):
                    got = True
                    if kind == NLMSG_ERROR and seq in labels:
                        code = self._error(payload)
                        if code:
                            failed.append((labels[seq], code))
                if not got:
                    break
            except OSError as err:
                if err.errno == errno.ENOBUFS:
                    raise IPVSError(errno.ENOBUFS, "the kernel refused so many requests that their error "
                                                   "reports overflowed the socket; re-read the table") from None
                raise
        labels.clear()

    # -------------------------------------------------------------- sync daemons
    def daemons(self):
        """The running connection sync daemons: ``[{"state", "interface", "sync_id", "group"}]``."""
        return sorted((genl.daemon_record(p) for p in self.dump("get_daemon")), key=lambda d: d["state"])

    def start_daemon(self, state, interface, sync_id, group=None):
        """Start the ``state`` (master, backup) sync daemon on ``interface`` (``group``:
        its multicast group; default the kernel's)."""
        self.ask_ack("new_daemon", genl.daemon(state, interface, sync_id, group))

    def stop_daemon(self, state):
        self.ask_ack("del_daemon", genl.daemon(state))

    # -------------------------------------------------------------- the table
    def _service_replies(self, only):
        """The GET_SERVICE replies of the table, or of ``only``'s specs (a few are asked
        for one by one, without dumping the service list; then only those found)."""
        if only is not None and len(only) <= FEW:
            found = (self._service_reply(parse_service(spec)) for spec in only)
            return [payload for payload in found if payload is not None]
        return self.dump("get_service")

    def _services(self, only, stats):
        """The service records (without destinations) of the table, or of ``only``'s specs."""
        services = [genl.service_record(payload, stats) for payload in self._service_replies(only)]
        return services if only is None else [svc for svc in services if service_spec(svc) in only]

    def _with_dests(self, services):
        """``[(service, its destinations' replies)]``: one dump each (as io_uring chains)."""
        return zip(services, self.dumps("get_dest", [genl.service_key(svc) for svc in services]), strict=True)

    def read(self, only=None, stats=True):
        """The table as ``ipvs.list`` records, sorted; ``only``: the specs to read (the
        others' destinations are not dumped)."""
        services = self._services(only, stats)
        for svc, dests in self._with_dests(services):
            svc["destinations"] = sorted(genl.dest_records(dests, svc["af"], stats),
                                         key=lambda d: (d["address"], d["port"]))
        return sorted(services, key=service_spec)

    def read_settings(self, only=None, wanted=None):
        """``{spec: (service values, {(address, port): dest values})}`` of the services
        (or those of ``only``): what ``lvstun.ipvs.unchanged`` compares, read without
        building records (``lvstun.genl.dest_settings``). ``wanted``: a table of
        ``lvstun.ipvs.wanted``: a service whose reply holds the settings it wants, or
        whose destinations' replies are byte for byte the ones it wants, is answered
        with those, undecoded (``lvstun.genl.ServiceHeads``, ``lvstun.genl.replies_hold``)."""
        heads = genl.ServiceHeads(wanted) if wanted else None
        rows = []  # (spec, service values, IP version, key attribute)
        for payload in self._service_replies(only):
            row = heads.match(payload) if heads else None
            if row is None:
                svc = genl.service_record(payload, False)
                row = (service_spec(svc), service_values(svc), svc["af"], genl.service_key(svc))
            if only is None or row[0] in only:
                rows.append(row)
        out = {}
        for (spec, values, af, _), dests in zip(rows, self.dumps("get_dest", [row[3] for row in rows]), strict=True):
            want = wanted.get(spec) if wanted else None
            if want is not None and want[1] is not None and genl.replies_hold(dests, want[1]):
                held = want[1]
            else:
                held = {key: settings for key, settings, _ in genl.dest_settings(dests, af)}
            out[spec] = (values, held)
        return out

    def read_counters(self):
        """What a scrape reads: ``[(service record, [genl.COUNTERS tuple of each
        destination])]`` for every service, in the kernel's order (no destination
        record is built; a service known from an earlier read by its reply's head,
        ``lvstun.genl.KnownServices``, is not decoded again: its record is shared)."""
        rows = [self._known.get(payload) for payload in self.dump("get_service")]
        return [(svc, genl.dest_counters(dests, svc["af"]))
                for (svc, _), dests in zip(rows, self.dumps("get_dest", [key for _, key in rows]), strict=True)]

    def _service_reply(self, key):
        """One service's GET_SERVICE reply, or None when it does not exist."""
        try:
            return self.ask("get_service", genl.service_key(key))
        except IPVSError as err:
            if err.errno in (errno.ESRCH, errno.ENOENT):
                return None
            raise

    def apply(self, ops):
        """Apply a plan (``lvstun.ipvs.plan`` ops); return ``[(step, scheduler, errno)]``
        for the steps refused. Every step is attempted (a step's words are made only for
        those refused: a table's first apply sends thousands)."""
        requests, keys = [], {}
        for op, svc, *rest in ops:
            if op == "add_service":
                requests.append(("new_service", genl.service_full(svc), F_CREATE | F_EXCL, (op, svc, None)))
            elif op == "edit_service":
                requests.append(("set_service", genl.service_full(svc), F_REPLACE, (op, svc, None)))
            elif op == "del_service":
                requests.append(("del_service", genl.service_key(svc), 0, (op, svc, None)))
            else:
                dest = rest[0]
                cmd, body, flags = {
                    "add_dest": ("new_dest", genl.dest_full, F_CREATE | F_EXCL),
                    "edit_dest": ("set_dest", genl.dest_full, F_REPLACE),
                    "del_dest": ("del_dest", genl.dest_key, 0)}[op]
                key = keys.get(id(svc))
                if key is None:
                    key = keys[id(svc)] = (genl.service_key(svc), svc)  # (the record kept: its id stays its own)
                requests.append((cmd, key[0] + body(dest), flags, (op, svc, dest)))
        return [(_step_words(*label), label[1].get("scheduler") if label[0].endswith("_service") else None, code)
                for label, code in self.send(requests)]
