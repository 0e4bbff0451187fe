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


def test_lvs_lab_exec_into_a_closed_pipe_ends_quietly():
    """``lvs-lab exec HOST -- CMD | head`` ends without a BrokenPipeError traceback."""
    import os  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    script = ("import sys, lvs_lab.cli as cli\n"
              "class Lab:\n"
              "    def exec(self, name, argv):\n"
              "        for _ in range(100000):\n"
              "            sys.stdout.buffer.write(b'x' * 100 + b'\\n')\n"
              "        return 0\n"
              "cli._up_lab = Lab\n"
              "sys.exit(cli.main(['exec', 'rs1', '--', 'yes']))\n")
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run(f"{sys.executable} -c \"$SCRIPT\" | head -c 10 > /dev/null; echo \"${{PIPESTATUS[0]}}\"",
                          shell=True, executable="/bin/bash", capture_output=True, text=True, cwd=repo,
                          env={**os.environ, "SCRIPT": script}, timeout=60, check=False)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert proc.stdout.strip() == "141"
