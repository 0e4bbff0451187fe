"""``lvs-lab down`` leaves nothing behind (runs last: pytest orders files by name)."""

import contextlib
import os
import subprocess

from tests.lab.conftest import run_cli


def _reap_own_children():
    """Kernels this test process booted itself (host restarts) and ``down`` killed are its
    own zombies until it waits for them: that is the test's duty, not a lab leftover."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def test_down_leaves_no_process_namespace_device_mount_or_folder(lab):
    proc = run_cli("down")
    assert proc.returncode == 0, proc.stderr
    _reap_own_children()
    processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert [line for line in processes.splitlines() if "linux.uml" in line or lab.state_dir in line] == []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert "lvslab" not in netns
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    assert [line for line in links.splitlines() if ": lab" in line] == []
    with open("/proc/mounts", encoding="utf-8") as fh:
        assert [line for line in fh if "lvslab" in line or lab.state_dir in line] == []
    assert not os.path.exists(lab.state_dir)
