"""The ipvs states on the director's real kernel: test=True predicts exactly and changes
nothing, apply matches the prediction, a second apply changes nothing, hand-made drift
is repaired and reported, and services the state does not own are left alone."""

import json

import pytest

from tests.lab.ipvs_helpers import call, clear, ipvsadm_save

# The health beacons would re-weight or fail this module's own tables and tunnels.
pytestmark = pytest.mark.usefixtures("health_paused")

SVC = "tcp:10.10.24.88:80"
WANT = {SVC: {"scheduler": "wrr", "destinations": {"10.10.24.21:80": {"weight": 1},
                                                    "10.10.24.22:80": {"weight": 10},
                                                    "10.10.24.23:80": {"weight": 0}}}}
WANT_SAVE = sorted([
    "-A -t 10.10.24.88:80 -s wrr",
    "-a -t 10.10.24.88:80 -r 10.10.24.21:80 -i -w 1 --tun-type ipip",
    "-a -t 10.10.24.88:80 -r 10.10.24.22:80 -i -w 10 --tun-type ipip",
    "-a -t 10.10.24.88:80 -r 10.10.24.23:80 -i -w 0 --tun-type ipip",
])


def state(lab, fun, test=False, **kwargs):
    args = [f"{k}={json.dumps(v)}" for k, v in kwargs.items()]
    ret = call(lab, "state.single", fun, *args, f"test={test}")
    assert isinstance(ret, dict) and len(ret) == 1, ret
    return next(iter(ret.values()))


@pytest.fixture(name="table")
def fixture_table(lab):
    clear(lab)
    cachedir = call(lab, "config.get", "cachedir")  # the ownership records live here
    # Only the IPVS ownership records: the host's others (host-originals) stay its own.
    assert cachedir and lab.capture("director", "sh", "-c", f"rm -f {cachedir}/lvs/ipvs-managed-*")[0] == 0
    yield lab
    clear(lab)


def test_managed_predicts_applies_and_is_idempotent(table):
    predicted = state(table, "ipvs.managed", test=True, name="web", services=WANT)
    assert predicted["result"] is None and ipvsadm_save(table) == []
    assert predicted["changes"][SVC] == {"old": None, "new": {"scheduler": "wrr", "flags": [], "persistent": 0}}
    applied = state(table, "ipvs.managed", name="web", services=WANT)
    assert applied["result"] is True and applied["changes"] == predicted["changes"]
    assert ipvsadm_save(table) == WANT_SAVE
    again = state(table, "ipvs.managed", name="web", services=WANT)
    assert (again["result"], again["changes"]) == (True, {})
    assert state(table, "ipvs.managed", test=True, name="web", services=WANT)["result"] is True


def test_managed_repairs_hand_made_drift(table):
    state(table, "ipvs.managed", name="web", services=WANT)
    table.capture("director", "ipvsadm", "-e", "-t", "10.10.24.88:80", "-r", "10.10.24.22:80", "-i", "-w", "3")
    table.capture("director", "ipvsadm", "-d", "-t", "10.10.24.88:80", "-r", "10.10.24.23:80")
    predicted = state(table, "ipvs.managed", test=True, name="web", services=WANT)
    assert predicted["result"] is None
    assert predicted["changes"] == {
        f"{SVC} -> 10.10.24.22:80": {"old": {"weight": 3}, "new": {"weight": 10}},
        f"{SVC} -> 10.10.24.23:80": {"old": None, "new": {"forward": "tunnel", "weight": 0, "u_threshold": 0,
                                                          "l_threshold": 0, "tun_type": "ipip", "tun_port": 0,
                                                          "tun_flags": []}},
    }
    repaired = state(table, "ipvs.managed", name="web", services=WANT)
    assert repaired["result"] is True and repaired["changes"] == predicted["changes"]
    assert ipvsadm_save(table) == WANT_SAVE


def test_managed_leaves_services_it_does_not_own_and_removes_its_own(table):
    table.capture("director", "ipvsadm", "-A", "-t", "10.10.24.77:443", "-s", "rr")  # e.g. kube-proxy's
    both = {**WANT, "udp:10.10.24.88:53": {"scheduler": "rr", "destinations": {"10.10.24.21:53": {}}}}
    state(table, "ipvs.managed", name="web", services=both)
    shrunk = {SVC: {"scheduler": "wrr", "destinations": {"10.10.24.21:80": {"weight": 1},
                                                         "10.10.24.22:80": {"weight": 10}}}}
    ret = state(table, "ipvs.managed", name="web", services=shrunk)
    assert ret["result"] is True
    assert ret["changes"]["udp:10.10.24.88:53"]["new"] is None  # owned, dropped: removed (idle)
    assert ret["changes"][f"{SVC} -> 10.10.24.23:80"]["new"] is None  # idle dest: deleted
    save = ipvsadm_save(table)
    assert "-A -t 10.10.24.77:443 -s rr" in save  # not owned: untouched
    assert not [line for line in save if "10.10.24.88:53" in line or "10.10.24.23" in line]


def test_service_and_dest_states_both_modes(table):
    ret = state(table, "ipvs.service_present", test=True, name=SVC, scheduler="rr")
    assert ret["result"] is None and ipvsadm_save(table) == []
    assert state(table, "ipvs.service_present", name=SVC, scheduler="rr")["result"] is True
    assert state(table, "ipvs.service_present", name=SVC, scheduler="rr")["changes"] == {}
    ret = state(table, "ipvs.dest_present", test=True, name="10.10.24.21:80", service=SVC, weight=4)
    assert ret["result"] is None and ret["changes"][f"{SVC} -> 10.10.24.21:80"]["new"]["weight"] == 4
    assert state(table, "ipvs.dest_present", name="10.10.24.21:80", service=SVC, weight=4)["result"] is True
    assert state(table, "ipvs.dest_present", name="10.10.24.21:80", service=SVC, weight=4)["changes"] == {}
    assert ipvsadm_save(table) == sorted(["-A -t 10.10.24.88:80 -s rr",
                                          "-a -t 10.10.24.88:80 -r 10.10.24.21:80 -i -w 4 --tun-type ipip"])
    ret = state(table, "ipvs.dest_absent", test=True, name="10.10.24.21:80", service=SVC)
    assert ret["result"] is None and len(ipvsadm_save(table)) == 2
    assert state(table, "ipvs.dest_absent", name="10.10.24.21:80", service=SVC, drain=True, timeout=5)["result"]
    assert state(table, "ipvs.dest_absent", name="10.10.24.21:80", service=SVC)["changes"] == {}
    assert state(table, "ipvs.service_absent", test=True, name=SVC)["result"] is None
    assert state(table, "ipvs.service_absent", name=SVC)["changes"][SVC]["new"] is None
    assert ipvsadm_save(table) == []
    assert state(table, "ipvs.service_absent", name=SVC)["changes"] == {}


def test_bad_input_fails_before_any_change(table):
    bad = {SVC: {"destinations": {"10.10.24.21:80": {"weight": 99999}}}}
    ret = state(table, "ipvs.managed", name="web", services=bad)
    assert ret["result"] is False and "weight 99999" in ret["comment"]
    assert ipvsadm_save(table) == []
