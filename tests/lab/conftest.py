"""The lab, brought up once for every lab test (``lvs-lab up`` through its real CLI).

``LVS_LAB_KEEP=1`` (for developers) reuses a lab that is up and leaves it up.

A lab test skips only where this machine truly cannot run the lab (not root, no
user-mode Linux), and says why; under CI (``CI=true``) that is a failure instead.
"""

import json
import os
import shutil
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


EARLY_BOOT = {}  # "proc", "log": the seed's lab booting beside the tests before the first lab test
EARLY_BOOT_TIMEOUT = 900  # s


def pytest_collection_finish(session):
    """When the session has tests on the seed's lab, that lab boots (:func:`boot_seed`,
    in a process of its own) while the tests before the first of them run: those do not
    touch the lab, and a boot is mostly waiting on the lab's kernels."""
    if not any("lab" in getattr(item, "fixturenames", ()) for item in session.items) or _why_not():
        return
    if os.environ.get("LVS_LAB_KEEP") == "1" and lab_mod.Lab().hosts:
        return
    log = tempfile.NamedTemporaryFile("w+", prefix="lvs-lab-boot-", suffix=".log", delete=False)  # noqa: SIM115
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(REPO, "_utils"), REPO]))
    EARLY_BOOT.update(log=log, proc=subprocess.Popen(
        [sys.executable, "-c", "import tests.lab.conftest as c; c.boot_seed()"], cwd=REPO, env=env,
        stdout=log, stderr=subprocess.STDOUT))


def _early_boot_done():
    """Wait for the early boot, if one was started; whether it brought the seed's lab up
    (its output is shown when it did not)."""
    proc = EARLY_BOOT.get("proc")
    if proc is None or "up" in EARLY_BOOT:
        return EARLY_BOOT.get("up", False)
    try:
        proc.wait(timeout=EARLY_BOOT_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log = EARLY_BOOT["log"]
    log.seek(0)
    output = log.read()
    log.close()
    os.unlink(log.name)
    EARLY_BOOT["up"] = proc.returncode == 0
    assert proc.returncode == 0, f"the seed's lab did not come up (exit {proc.returncode}):\n{output}"
    sys.stderr.write(output)
    return True


@pytest.fixture(scope="session", autouse=True)
def _after_the_early_boot():
    """No lab test runs (nor brings a lab up or down) while the seed's lab boots."""
    _early_boot_done()


@pytest.fixture(scope="session", name="lab")
def fixture_lab():
    require_lab()
    keep = os.environ.get("LVS_LAB_KEEP") == "1"
    if keep and lab_mod.Lab().hosts and "proc" not in EARLY_BOOT:  # a developer's lab, left up
        yield lab_mod.Lab()
        return
    if not _early_boot_done():
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
    ``lvs-lab up --site two_vips`` in place of the seed's lab; left up for the modules
    that use it, brought down at the end."""
    require_lab()
    keep = os.environ.get("LVS_LAB_KEEP") == "1"
    if keep and "director2" in lab_mod.Lab().hosts:
        yield lab_mod.Lab()
        return
    if lab_mod.Lab().hosts:
        assert run_cli("down").returncode == 0
    proc = run_cli("up", "--site", "two_vips")
    assert proc.returncode == 0, f"lvs-lab up --site two_vips failed:\n{proc.stdout}\n{proc.stderr}"
    short_fin_timeouts(lab_mod.Lab())
    yield lab_mod.Lab()
    if lab_mod.Lab().hosts and not keep:
        run_cli("down")
