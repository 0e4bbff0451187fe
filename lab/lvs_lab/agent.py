"""A tiny command agent that runs inside each lab kernel, for ``lvs-lab exec``.

The lab's user-mode Linux hosts have no ssh; the guest init starts this agent on the
host's management address. The wire format is deliberately small:

* request: one JSON line ``{"argv": [...], "stdin": "<base64>"}``;
* reply: frames of ``<channel:1 byte><length:4 bytes big-endian><payload>`` where
  channel 1 is stdout, 2 is stderr and 0 ends the reply with the exit code as text.

The management network lives only inside the lab's own network namespace.
"""

import argparse
import base64
import json
import os
import socket
import socketserver
import struct
import subprocess
import sys
import threading

PORT = 7007
STDOUT, STDERR, EXIT = 1, 2, 0
_HEADER = struct.Struct(">BI")


def _send(sock, lock, channel, payload):
    with lock:
        sock.sendall(_HEADER.pack(channel, len(payload)) + payload)


class _Handler(socketserver.StreamRequestHandler):
    def handle(self):
        request = json.loads(self.rfile.readline())
        lock = threading.Lock()
        try:
            proc = subprocess.Popen(
                request["argv"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as err:
            _send(self.request, lock, STDERR, f"{request['argv'][0]}: {err.strerror}\n".encode())
            _send(self.request, lock, EXIT, b"127")
            return

        def pump(stream, channel):
            for chunk in iter(lambda: stream.read1(65536), b""):
                _send(self.request, lock, channel, chunk)

        pumps = [
            threading.Thread(target=pump, args=(proc.stdout, STDOUT)),
            threading.Thread(target=pump, args=(proc.stderr, STDERR)),
        ]
        for thread in pumps:
            thread.start()
        proc.stdin.write(base64.b64decode(request.get("stdin", "")))
        proc.stdin.close()
        for thread in pumps:
            thread.join()
        _send(self.request, lock, EXIT, str(proc.wait()).encode())


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def serve(address, port=PORT):
    """Serve commands on ``address:port`` until killed."""
    with _Server((address, port), _Handler) as server:
        server.serve_forever()


def _recv_exactly(sock, size):
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("lab agent closed the connection before the exit code")
        data += chunk
    return data


def run(address, argv, stdin=b"", out=None, err=None, port=PORT, timeout=None, connect=None):
    """Run ``argv`` through the agent at ``address``; stream its output; return its exit code.

    ``out``/``err`` are binary streams (default: this process's stdout/stderr);
    ``connect`` opens the connection (default ``socket.create_connection``).
    """
    out = out or sys.stdout.buffer
    err = err or sys.stderr.buffer
    connect = connect or socket.create_connection
    with connect((address, port), timeout=10) as sock:
        sock.settimeout(timeout)
        request = {"argv": list(argv), "stdin": base64.b64encode(stdin).decode()}
        sock.sendall(json.dumps(request).encode() + b"\n")
        while True:
            channel, length = _HEADER.unpack(_recv_exactly(sock, _HEADER.size))
            payload = _recv_exactly(sock, length)
            if channel == EXIT:
                return int(payload)
            stream = out if channel == STDOUT else err
            stream.write(payload)
            stream.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="management address to listen on")
    parser.add_argument("--port", type=int, default=PORT)
    args = parser.parse_args()
    os.chdir("/")
    serve(args.listen, args.port)


if __name__ == "__main__":
    main()
