"""The lab agent's wire protocol, over loopback: output channels, stdin, exit codes."""

import io
import socket
import threading

import pytest

from lvs_lab import agent


@pytest.fixture(name="address")
def fixture_address():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = agent._Server(("127.0.0.1", port), agent._Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield port
    server.shutdown()
    server.server_close()


def _run(port, argv, stdin=b""):
    out, err = io.BytesIO(), io.BytesIO()
    code = agent.run("127.0.0.1", argv, stdin=stdin, out=out, err=err, port=port)
    return code, out.getvalue(), err.getvalue()


def test_stdout_stderr_and_exit_code_pass_through(address):
    code, out, err = _run(address, ["sh", "-c", "echo to-out; echo to-err >&2; exit 7"])
    assert (code, out, err) == (7, b"to-out\n", b"to-err\n")


def test_stdin_is_delivered(address):
    assert _run(address, ["cat"], stdin=b"\x00binary\xff")[:2] == (0, b"\x00binary\xff")


def test_large_output_arrives_whole(address):
    code, out, _ = _run(address, ["head", "-c", "3000000", "/dev/zero"])
    assert code == 0 and len(out) == 3_000_000


def test_missing_program_is_exit_127(address):
    code, out, err = _run(address, ["/nonexistent/program"])
    assert code == 127 and out == b"" and b"/nonexistent/program" in err
