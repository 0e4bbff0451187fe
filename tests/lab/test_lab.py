"""The lab itself: hosts on real kernels with ip_vs and ipip, Salt daemons, exec, salt."""

import json

import pytest

from lvs_lab import uml
from tests.lab.conftest import run_cli

SITE_MINIONS = ["director", "router", "rs1", "rs2", "rs3"]


def test_every_minion_answers_the_labs_master(lab):
    assert lab.minions == SITE_MINIONS
    proc = run_cli("salt", "--", "*", "test.ping", "--out=json", "--static")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {mid: True for mid in SITE_MINIONS}


def test_state_apply_runs_on_every_minion(lab):
    returns = lab.apply()
    assert sorted(returns) == SITE_MINIONS
    for mid, states in returns.items():
        by_id = {state["__id__"]: state for state in states.values()}
        assert by_id["lvs-site-valid"]["result"] is True, (mid, states)


def test_exec_passes_output_and_exit_code_through(lab):
    proc = run_cli("exec", "rs1", "--", "sh", "-c", "echo out-$(hostname); echo err >&2; exit 3")
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "out-rs1\n", "err\n")
    proc = run_cli("exec", "client", "--", "sh", "-c", "ip -4 -o addr show eth0; exit 4")
    assert proc.returncode == 4 and "112.2.21.1/24" in proc.stdout


@pytest.mark.parametrize("host", ["director", "rs1", "rs2", "rs3"])
def test_lvs_hosts_run_their_own_kernel_with_ip_vs_and_ipip(lab, host):
    code, out, err = lab.capture(host, "sh", "-c", "uname -r; cat /proc/sys/kernel/random/boot_id; "
                                 "head -1 /proc/net/ip_vs; ip -o link show tunl0")
    assert code == 0, err
    release, boot_id, ipvs, tunl0 = out.splitlines()
    assert release == uml.kernel_release()  # the user-mode-linux kernel, whatever the machine runs
    assert ipvs.startswith("IP Virtual Server version")
    assert "tunl0@NONE" in tunl0
    with open("/proc/sys/kernel/random/boot_id", encoding="utf-8") as fh:
        host_boot_id = fh.read().strip()
    assert boot_id != host_boot_id  # a kernel of its own, not the machine's


def test_hosts_are_isolated_and_wired_as_the_site_says(lab):
    addresses = {}
    for host in ("director", "rs1", "rs2", "rs3"):
        code, out, _ = lab.capture(host, "ip", "-4", "-o", "addr", "show", "eth0")
        assert code == 0
        addresses[host] = out.split()[3]
    assert addresses == {"director": "10.10.24.2/24", "rs1": "10.10.24.21/24", "rs2": "10.10.24.22/24",
                         "rs3": "10.10.24.23/24"}
    # The site's LAN is real: rs3 reaches the router's LAN address and the director.
    code, out, err = lab.capture("rs3", "python3", "-c", "import socket;s=socket.socket();s.settimeout(3);"
                                 "print(s.connect_ex(('10.10.24.2', 7)))")
    assert code == 0, err  # connection refused (111) proves the director answered on the LAN
    assert out.strip() == "111"
