"""No "--- Logging error ---" tracebacks after the test summary (issue 11): Salt's deferred
log handler, bound to the stderr pytest captured, gets its records written to a file by
tests/conftest.py instead of flushing them into a closed stream at exit."""

import os
import subprocess
import sys

from tests.conftest import DAEMON_RECORDS, REPO

PROBE = '''
import logging

import salt._logging.impl


def test_a_daemon_record_arrives_before_logging_is_set_up():
    salt._logging.impl.setup_temp_handler()
    logging.getLogger("saltfactories.probe").error("late record from a daemon")
'''


def _pytest(tmp_path, *plugins):
    (tmp_path / "test_probe.py").write_text(PROBE)
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
            "-c", os.devnull, *plugins, str(tmp_path / "test_probe.py")]
    return subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=120, check=False)


def test_late_daemon_records_go_to_a_file_not_into_a_closed_stream(tmp_path):
    control = _pytest(tmp_path)
    assert control.returncode == 0, control.stdout + control.stderr
    assert "--- Logging error ---" in control.stderr  # what the hook prevents

    proc = _pytest(tmp_path, "-p", "tests.conftest")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Logging error" not in proc.stdout + proc.stderr
    assert DAEMON_RECORDS in proc.stdout
    with open(DAEMON_RECORDS, encoding="utf-8") as fh:
        assert "late record from a daemon" in fh.read()


def test_the_salt_daemons_of_a_test_run_are_launched_by_this_checkouts_python(salt_factories):
    """Each test session writes launcher scripts of its own (tests/conftest.py): a run
    from another checkout, with another virtualenv, never uses this one's (issue 25)."""
    import tempfile  # noqa: PLC0415

    script = salt_factories.get_salt_script_path("salt-master")
    assert os.path.dirname(os.path.dirname(script)) != tempfile.gettempdir()
    assert str(salt_factories.scripts_dir).startswith(os.path.join(tempfile.gettempdir(), "lvsf-"))
    assert salt_factories.python_executable == sys.executable
