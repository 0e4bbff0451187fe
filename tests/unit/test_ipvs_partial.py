"""``ipvs.managed`` when the kernel refuses one step (an unavailable scheduler): it
reports the changes made apart from what failed, and owns the services it did create,
so that a later pillar without them removes them. A fake kernel table stands in for
netlink (the real one is tested in the lab)."""

import copy

import pytest
from salt.exceptions import CommandExecutionError

import lvstun.ipvs as rec
from tests.unit.checkout import load

UNAVAILABLE = "twos"  # the scheduler this fake kernel has no module for


class FakeKernel:
    def __init__(self):
        self.table = []

    def list(self, spec=None, stats=False):
        specs = None if spec is None else {spec} if isinstance(spec, str) else set(spec)
        return copy.deepcopy([s for s in self.table if specs is None or rec.service_spec(s) in specs])

    def settings(self, spec=None, wanted=None):
        """What ``ipvs.settings`` reads: the plans' values of each service and destination
        (always decoded: ``wanted`` only spares the real module's decoding)."""
        return {rec.service_spec(s): (rec.service_values(s), {(d["address"], d["port"]): rec.dest_values(d)
                                                              for d in s["destinations"]})
                for s in self.list(spec)}

    def apply_plan(self, ops):
        failed = []
        for op, svc, *rest in ops:
            services = {rec.service_spec(s): s for s in self.table}
            spec = rec.service_spec(svc)
            if op == "add_service" and svc["scheduler"] == UNAVAILABLE:
                failed.append(f"add service {spec}")
            elif op == "add_service":
                self.table.append({**copy.deepcopy(svc), "destinations": []})
            elif op == "del_service":
                self.table.remove(services[spec])
            elif spec not in services:
                failed.append(f"{op} of {spec}")
            elif op == "add_dest":
                services[spec]["destinations"].append({**copy.deepcopy(rest[0]), "active": 0, "inactive": 0})
            elif op == "del_dest":
                services[spec]["destinations"] = [d for d in services[spec]["destinations"]
                                                  if (d["address"], d["port"]) != (rest[0]["address"], rest[0]["port"])]
        if failed:
            raise CommandExecutionError(f"{len(failed)} of {len(ops)} steps failed: {failed}")
        return len(ops)


@pytest.fixture(name="state")
def fixture_state(tmp_path):
    module = load("ipvs_state_under_test", "_states", "ipvs.py")
    kernel = FakeKernel()
    module.__salt__ = {"ipvs.list": kernel.list, "ipvs.apply_plan": kernel.apply_plan, "ipvs.settings": kernel.settings}
    module.__opts__ = {"test": False, "cachedir": str(tmp_path)}
    return module, kernel


def _services(*schedulers):
    return {f"tcp:10.10.24.{88 + n}:80": {"scheduler": s, "destinations": {"10.10.24.21:80": {"weight": 1}}}
            for n, s in enumerate(schedulers)}


def test_a_refused_step_reports_only_what_was_done_and_owns_what_it_created(state):
    module, kernel = state
    ret = module.managed("lvs-site", _services("rr", UNAVAILABLE))
    assert ret["result"] is False and "not done: ['tcp:10.10.24.89:80'" in ret["comment"]
    assert sorted(ret["changes"]) == ["tcp:10.10.24.88:80", "tcp:10.10.24.88:80 -> 10.10.24.21:80"]
    # The pillar drops both: the service created before the failure goes (it is owned).
    ret = module.managed("lvs-site", {}, remove="delete")
    assert ret["result"] is True and list(ret["changes"]) == ["tcp:10.10.24.88:80"]
    assert kernel.table == []
