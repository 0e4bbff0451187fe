"""The lab's application: a small web server on each real server that names itself.

``GET /`` answers ``served by <name>``; ``GET /bytes/N`` answers N bytes (large
responses, for the MTU tests). It listens on every address, so it answers on the VIP
that the real server holds on its tunnel device.
"""

import argparse
import http.server
import socketserver


def make_handler(name):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self):  # noqa: N802 (http.server's naming)
            if self.path.startswith("/bytes/"):
                body = b"x" * min(int(self.path.rsplit("/", 1)[1] or 0), 10_000_000)
            else:
                body = f"served by {name}\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Served-By", name)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return Handler


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    allow_reuse_address = True
    daemon_threads = True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, default=80)
    args = parser.parse_args()
    with _Server(("0.0.0.0", args.port), make_handler(args.name)) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()
