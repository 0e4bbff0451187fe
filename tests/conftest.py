"""Test layers by folder: tests/unit (pure logic), tests/functional (real Salt on this
host), tests/lab (real kernels: the lab). Run the fast layers with ``-m "not lab"``."""

import logging
import os
import pathlib
import shutil
import sys
import tempfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The shared code of the Salt modules (the package lvstun), importable as on a minion.
sys.path.insert(0, os.path.join(REPO, "_utils"))

LAYERS = ("unit", "functional", "lab")


def pytest_collection_modifyitems(items):
    for item in items:
        parts = os.path.relpath(str(item.fspath), os.path.join(REPO, "tests")).split(os.sep)
        if parts[0] in LAYERS:
            item.add_marker(getattr(pytest.mark, parts[0]))


@pytest.fixture(scope="session")
def salt_factories_default_root_dir():
    """pytest-salt-factories' root folder, one per test session (short: unix sockets
    live there). Its default, the system's temp folder, is shared by every checkout on
    the machine, and the daemons' launcher scripts it writes there once name the first
    checkout's Python: a second checkout's tests would run another Salt without a word."""
    root = tempfile.mkdtemp(prefix="lvsf-")
    yield pathlib.Path(root)
    shutil.rmtree(root, ignore_errors=True)


DAEMON_RECORDS = os.path.join(tempfile.gettempdir(), "salt-lvs-tun-tests-daemon-records.log")


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """Salt keeps the log records that reach this process before its logging is set up
    (the daemons' records that salt-factories forwards, shutdown messages included) in a
    deferred handler bound to the stderr pytest had captured, and flushes them at exit
    into that closed stream: dozens of "--- Logging error ---" tracebacks after the
    summary. They go to a file instead, named in one line."""
    impl = sys.modules.get("salt._logging.impl")
    deferred = impl.get_temp_handler() if impl else None
    if deferred is None:
        return
    to_file = logging.FileHandler(DAEMON_RECORDS, mode="w", encoding="utf-8")
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.root.removeHandler(deferred)
    deferred.sync_with_handlers([to_file])
    to_file.close()
    if os.path.getsize(DAEMON_RECORDS):
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"Salt daemons' records received before logging was set up: {DAEMON_RECORDS}")


def pytest_report_header():
    """The versions this run tests (pinned by constraints.txt)."""
    import importlib.metadata  # noqa: PLC0415

    found = []
    for name in ("salt", "pyroute2", "netaddr", "pytest-salt-factories"):
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} missing")
    return "lvs: " + ", ".join(found)
