"""``lvs-lab down`` leaves nothing behind (runs last: pytest orders files by name)."""

import os
import subprocess

from lvs_lab.system import reap_children
from tests.lab.conftest import run_cli


def test_down_leaves_no_process_namespace_device_mount_or_folder(lab):
    proc = run_cli("down")
    assert proc.returncode == 0, proc.stderr
    # Kernels this process booted itself (host restarts) are its zombies once ``down``
    # killed them, until it waits for them: its duty, not a lab leftover.
    reap_children()
    processes = subprocess.run(["ps", "-eo", "stat=,ppid=,args="], capture_output=True, text=True,
                               check=True).stdout
    left = [line for line in processes.splitlines() if "linux.uml" in line or lab.state_dir in line]
    # A zombie is a dead process waiting for its parent to read its status; it holds no
    # resource. Zombies that reached PID 1 (the helpers of a killed kernel, kernels
    # booted by ``lvs-lab up``) are PID 1's to reap, on its own schedule.
    assert [line for line in left if not (line.startswith("Z") and line.split()[1] == "1")] == []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert "lvslab" not in netns
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    assert [line for line in links.splitlines() if ": lab" in line] == []
    with open("/proc/mounts", encoding="utf-8") as fh:
        assert [line for line in fh if "lvslab" in line or lab.state_dir in line] == []
    assert not os.path.exists(lab.state_dir)
