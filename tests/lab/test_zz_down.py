"""``lvs-lab down`` leaves nothing behind (runs last: pytest orders files by name)."""

import os
import subprocess

from tests.lab.conftest import run_cli


def test_down_leaves_no_process_namespace_device_mount_or_folder(lab):
    proc = run_cli("down")
    assert proc.returncode == 0, proc.stderr
    processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert [line for line in processes.splitlines() if "linux.uml" in line or lab.state_dir in line] == []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert "lvslab" not in netns
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    assert [line for line in links.splitlines() if ": lab" in line] == []
    with open("/proc/mounts", encoding="utf-8") as fh:
        assert [line for line in fh if "lvslab" in line or lab.state_dir in line] == []
    assert not os.path.exists(lab.state_dir)
