"""The lab, brought up once for every lab test (``lvs-lab up`` through its real CLI).

``LVS_LAB_KEEP=1`` (for developers) reuses a lab that is up and leaves it up.

A lab test skips only where this machine truly cannot run the lab (not root, no
user-mode Linux), and says why; under CI (``CI=true``) that is a failure instead.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from lvs_lab import health as hh
from lvs_lab import lab as lab_mod
from tests.lab.site_helpers import site_tree, snapshot

LVS_LAB = os.path.join(os.path.dirname(sys.executable), "lvs-lab")
PRISTINE = "pristine-snapshot.json"  # in the lab's state folder
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def pristine(lab):
    """{host: snapshot} of the lab's hosts before the pack's first apply (None when this
    lab was not brought up by the test session)."""
    path = os.path.join(lab.state_dir, PRISTINE)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _why_not():
    if os.geteuid() != 0:
        return "the lab needs root (namespaces, tap devices)"
    if not os.path.exists(lab_mod.UML):
        return f"{lab_mod.UML} is missing (apt-get install user-mode-linux; scripts/bootstrap does)"
    if not shutil.which("ip"):
        return "iproute2 is missing"
    return None


FIN_TIMEOUT = 10  # s a finished connection stays in a lab director's table (the kernel's default: 120)


def short_fin_timeouts(lab):
    """Finished connections leave the directors' tables after FIN_TIMEOUT seconds, not
    the kernel's 120: a test that waits for a real server to be idle (a drain, a removal)
    does not wait for every earlier test's connections (the tests' traffic is short)."""
    for director in (h.minion_id for h in lab.site().directors):
        code, _, err = lab.capture(director, "ipvsadm", "--set", "0", str(FIN_TIMEOUT), "0")
        assert code == 0, err


def run_cli(*args, timeout=900):
    """Run ``lvs-lab ARGS``; return the CompletedProcess (text)."""
    return subprocess.run([LVS_LAB, *args], capture_output=True, text=True, timeout=timeout, check=False)


def require_lab():
    """Skip (saying why) where this machine cannot run the lab; under CI, fail instead."""
    reason = _why_not()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"the lab cannot run on this CI machine: {reason}")
        pytest.skip(f"lab tests skipped: {reason}")


def boot_seed():
    """``lvs-lab up`` (in place of any lab), each host's pristine snapshot, then the seed
    applied and serving: the lab that the session's lab tests share."""
    if lab_mod.Lab().hosts:
        run_cli("down")
    proc = run_cli("up", "--no-apply")
    sys.stderr.write(proc.stderr)
    assert proc.returncode == 0, f"lvs-lab up failed:\n{proc.stdout}\n{proc.stderr}"
    lab = lab_mod.Lab()
    # Each host as its installer left it, before the pack's first apply (the clean tests).
    with open(os.path.join(lab.state_dir, PRISTINE), "w", encoding="utf-8") as fh:
        json.dump(snapshot(lab), fh)
    lab.set_pillar(site_tree())  # the seed, as the lab tests serve it (a shorter hold)
    lab.apply()
    lab.wait_serving(lab_mod.SERVING_TIMEOUT)
    short_fin_timeouts(lab)


def boot_two_vips():
    """``lvs-lab up --site two_vips`` in place of the seed's lab (the second example
    site, built from scratch), with the tests' short FIN timeouts."""
    if lab_mod.Lab().hosts:
        assert run_cli("down").returncode == 0
    proc = run_cli("up", "--site", "two_vips")
    assert proc.returncode == 0, f"lvs-lab up --site two_vips failed:\n{proc.stdout}\n{proc.stderr}"
    short_fin_timeouts(lab_mod.Lab())


class Boot:
    """One of this module's boot functions, run in a process of its own while tests that
    do not touch the lab run (a boot mostly waits on the lab's kernels)."""

    TIMEOUT = 900  # s

    def __init__(self, function):
        self.function, self.proc, self.log, self.up = function, None, None, None

    def start(self):
        self.log = tempfile.NamedTemporaryFile("w+", prefix="lvs-lab-boot-", suffix=".log", delete=False)  # noqa: SIM115
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(REPO, "_utils"), REPO]))
        self.proc = subprocess.Popen([sys.executable, "-c", f"import tests.lab.conftest as c; c.{self.function}()"],
                                     cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def stop(self):
        """End a boot still running (the session ends before a test waited for it): the
        lab is left half up, for the next session's boot to take down."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait()

    def done(self):
        """Wait for the boot, if one was started; whether it brought its lab up (its
        output is shown, and the test fails, when it did not)."""
        if self.proc is None or self.up is not None:
            return bool(self.up)
        try:
            self.proc.wait(timeout=self.TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.seek(0)
        output = self.log.read()
        self.log.close()
        os.unlink(self.log.name)
        self.up = self.proc.returncode == 0
        assert self.up, f"{self.function} did not bring its lab up (exit {self.proc.returncode}):\n{output}"
        sys.stderr.write(output)
        return True


SEED_BOOT = Boot("boot_seed")
TWO_VIPS_BOOT = Boot("boot_two_vips")
START_TWO_VIPS_AFTER = {}  # "nodeid": the test after which the two-VIP lab boots (the unit tests follow it)


def _layer(item):
    return os.path.relpath(str(item.fspath), os.path.join(REPO, "tests")).split(os.sep)[0]


def _kept(host):
    """A developer's lab, up with ``host``, to be used as it is (``LVS_LAB_KEEP=1``)."""
    return os.environ.get("LVS_LAB_KEEP") == "1" and host in lab_mod.Lab().hosts


def pytest_collection_modifyitems(items):
    """The unit tests run where the two-VIP site's lab boots (between the last test on
    the seed's lab and the first on the two-VIP one): they take no lab, and the boot
    mostly waits on its kernels."""
    first = next((i for i, item in enumerate(items) if "two_vips" in item.fixturenames), None)
    if not first or _why_not():
        return
    unit = [item for item in items[first:] if _layer(item) == "unit"]
    if unit:
        items[first:] = unit + [item for item in items[first:] if _layer(item) != "unit"]
        START_TWO_VIPS_AFTER["nodeid"] = items[first - 1].nodeid


def pytest_collection_finish(session):
    """When the session has tests on the seed's lab, that lab boots (:func:`boot_seed`)
    while the tests before the first of them run (the functional tests)."""
    if session.config.option.collectonly:
        return
    if any("lab" in item.fixturenames for item in session.items) and not _why_not() and not _kept("router"):
        SEED_BOOT.start()


def pytest_runtest_logfinish(nodeid):
    """Once the last test on the seed's lab is done (its fixtures' teardowns included),
    the two-VIP site's lab boots while the unit tests run."""
    if nodeid == START_TWO_VIPS_AFTER.get("nodeid") and not _kept("director2"):
        SEED_BOOT.done()
        TWO_VIPS_BOOT.start()


def pytest_sessionfinish():
    for boot in (SEED_BOOT, TWO_VIPS_BOOT):
        boot.stop()


@pytest.fixture(scope="session", autouse=True)
def _after_the_seed_boot():
    """No lab test runs (nor brings a lab up or down) while the seed's lab boots."""
    SEED_BOOT.done()


@pytest.fixture(scope="session", name="lab")
def fixture_lab():
    require_lab()
    keep = os.environ.get("LVS_LAB_KEEP") == "1"
    if keep and lab_mod.Lab().hosts and SEED_BOOT.proc is None:  # a developer's lab, left up
        yield lab_mod.Lab()
        return
    if not SEED_BOOT.done():
        boot_seed()
    yield lab_mod.Lab()
    if lab_mod.Lab().hosts and not keep:
        run_cli("down")


@pytest.fixture(scope="module", name="health_paused")
def fixture_health_paused(lab):
    """The health beacons paused on every minion: for tests that build IPVS tables or
    tunnels of their own, which the reactor would otherwise re-weight or see as failed."""
    lab.salt_json("*", "beacons.disable")
    time.sleep(8)  # runner calls already queued in the reactor finish
    yield lab
    lab.salt_json("*", "beacons.enable")


@pytest.fixture(name="healthy")
def fixture_healthy(lab):
    """Every backend of the seed's site serving before and after each test."""
    every = {"10.10.24.21": 1, "10.10.24.22": 1, "10.10.24.23": 1}
    hh.wait_for(lambda: hh.weights(lab) == every, hh.RESTORE)
    yield lab
    for minion in ("rs1", "rs2", "rs3"):
        lab.capture(minion, "sh", "-c", "while iptables-legacy -D INPUT -p tcp --dport 80 -j REJECT "
                                        "--reject-with tcp-reset 2>/dev/null; do :; done")
    lab.salt_run("lvs.undrain", "rs1")
    lab.salt_run("lvs.undrain", "rs2")
    hh.wait_for(lambda: hh.weights(lab) == every, hh.RESTORE)


@pytest.fixture(scope="session", name="two_vips")
def fixture_two_vips():
    """The second example site (pillar/lvs/two_vips.sls), built from scratch by
    ``lvs-lab up --site two_vips`` in place of the seed's lab (booted while the unit tests
    ran, when they run in this session); left up for the modules that use it, brought
    down at the end."""
    require_lab()
    keep = os.environ.get("LVS_LAB_KEEP") == "1"
    if keep and "director2" in lab_mod.Lab().hosts and TWO_VIPS_BOOT.proc is None:
        yield lab_mod.Lab()
        return
    if not TWO_VIPS_BOOT.done():
        boot_two_vips()
    yield lab_mod.Lab()
    if lab_mod.Lab().hosts and not keep:
        run_cli("down")
