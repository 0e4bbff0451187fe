"""Helpers for lab tests that drive the director's IPVS table through Salt and check it
with ipvsadm (an independent reader of the kernel's table)."""

from salt.exceptions import CommandExecutionError  # noqa: F401 (re-exported for tests)

DIRECTOR = "director"


def call(lab, fun, *args, minion=DIRECTOR, **kwargs):
    """``salt MINION FUN ARGS`` on the lab's master; return the minion's return."""
    argv = [minion, fun, *map(str, args), *(f"{k}={v}" for k, v in kwargs.items())]
    returns = lab.salt_json(*argv, timeout=300)
    assert minion in returns, f"{minion} did not return for {fun}: {returns}"
    return returns[minion]


def ipvsadm_save(lab):
    code, out, err = lab.capture(DIRECTOR, "ipvsadm-save", "-n")
    assert code == 0, err
    return sorted(line for line in out.splitlines() if line.strip())


def clear(lab):
    code, _, err = lab.capture(DIRECTOR, "ipvsadm", "-C")
    assert code == 0, err
