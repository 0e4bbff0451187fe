"""The check-then-repair states' shared shape (lvstun.converge): a repair that fails
half-way reports the changes made apart from those not made."""

from salt.exceptions import CommandExecutionError

import lvstun.drift as drift
from lvstun.converge import converge

UP = drift.make("up", "eth0", True, False)
ADDRESS = drift.make("address", "eth0", "10.10.24.21/24", None)


def _ret():
    return {"name": "net", "changes": {}, "result": True, "comment": ""}


def test_a_failed_repair_reports_done_and_not_done_apart():
    held = [UP, ADDRESS]

    def apply():
        held.remove(UP)  # the link went up, then the kernel refused the address
        raise CommandExecutionError("the kernel refused 10.10.24.21/24")

    ret = converge(_ret(), False, lambda: list(held), apply, "the network")
    assert ret["result"] is False
    assert ret["changes"] == {"eth0 up": {"old": False, "new": True}}
    assert "not done: ['eth0 address 10.10.24.21/24']" in ret["comment"]


def test_test_mode_predicts_and_a_repair_verifies():
    held = [UP]
    predicted = converge(_ret(), True, lambda: list(held), held.clear, "the network")
    assert predicted["result"] is None and predicted["changes"] == {"eth0 up": {"old": False, "new": True}}
    applied = converge(_ret(), False, lambda: list(held), lambda: held.clear() or [UP], "the network")
    assert applied["result"] is True and applied["changes"] == predicted["changes"]
    assert converge(_ret(), False, lambda: list(held), held.clear, "the network")["changes"] == {}
