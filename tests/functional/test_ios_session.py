"""The lvs_ios proxy's one SSH session, shared by the proxy's job threads and Salt's
keep-alive, against the IOS-like server (``fake_ios``) on a busy host: the server takes
its time over each packet it receives, as a loaded CI machine or a busy device does.

The proxy module is loaded from the checkout and driven as the salt-proxy drives it
(``init``, the jobs' calls, the keep-alive's ``alive`` then ``shutdown`` and ``init``
when it says the session is down, as ``status.proxy_reconnect`` does)."""

import importlib.util
import os
import threading
import time

import asyncssh.editor
import pytest

from .fake_ios import FakeIOS

pytest.importorskip("netmiko", reason="the lvs_ios proxy needs netmiko (pip install .[ios])")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUSY = 0.02  # seconds the device spends before it handles each packet it receives
NAT = "ip nat inside source static 10.10.24.88 112.2.21.88"


@pytest.fixture(name="busy_device")
def fixture_busy_device(monkeypatch):
    handle = asyncssh.editor.SSHLineEditor.process_input

    def slowly(self, data, datatype):
        time.sleep(BUSY)  # the server's loop is blocked meanwhile, as a busy device's CLI is
        return handle(self, data, datatype)

    monkeypatch.setattr(asyncssh.editor.SSHLineEditor, "process_input", slowly)
    with FakeIOS() as server:
        yield server


@pytest.fixture(name="proxy")
def fixture_proxy(busy_device):
    spec = importlib.util.spec_from_file_location("lvs_ios_under_test", os.path.join(REPO, "_proxy", "lvs_ios.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    opts = {"proxy": {"proxytype": "lvs_ios", "host": "127.0.0.1", "port": busy_device.port,
                      "username": "admin", "password": "secret", "secret": "enable", "timeout": 2}}
    module.init(opts)
    yield module, opts
    module.shutdown(opts)


def keep_alive(module, opts):
    """What Salt's scheduled ``status.proxy_reconnect`` does with the proxy."""
    if not module.alive(opts):
        module.shutdown(opts)
        module.init(opts)


def test_every_command_after_a_keep_alive_reads_the_device_answer(proxy, busy_device):
    module, opts = proxy
    for _ in range(8):
        keep_alive(module, opts)
        answer = module.show("show running-config")
        assert "hostname edge1" in answer and answer.rstrip().endswith("end"), answer
    assert busy_device.device.sessions == 1  # one session served them all


def test_the_keep_alive_never_closes_a_session_a_job_is_using(proxy, busy_device):
    """Jobs run while the keep-alive checks the session as fast as it can; the device
    drops the session at every fourth round's check, so jobs keep reopening it."""
    module, opts = proxy
    dev = busy_device.device
    stop = threading.Event()
    checks = []

    def keeper():
        while not stop.is_set():
            keep_alive(module, opts)
            checks.append(1)
            time.sleep(0.005)

    thread = threading.Thread(target=keeper)
    thread.start()
    failures = []
    try:
        for round_ in range(12):
            dropped = round_ % 4 == 3
            dev.drop_on = "show startup-config" if dropped else None
            try:
                module.show("show startup-config")
            except Exception as err:  # pylint: disable=broad-except
                if not dropped:
                    failures.append(f"round {round_}: show startup-config: {err}")
            dev.drop_on = None
            line = NAT if round_ % 2 == 0 else f"no {NAT}"
            done = module.configure([[line]])
            if done["error"] is not None:
                failures.append(f"round {round_}: {line}: {done['error']}")
            try:
                module.save()
                answer = module.show("show running-config")
            except Exception as err:  # pylint: disable=broad-except
                failures.append(f"round {round_}: save/show: {err}")
                continue
            if (NAT in answer) != (round_ % 2 == 0):
                failures.append(f"round {round_}: the running config does not show {line!r}")
    finally:
        stop.set()
        thread.join()
    assert failures == [], failures
    assert len(checks) > 12, checks  # the keep-alive really ran beside the jobs
    assert dev.startup == dev.running_config()
