"""Rolling maintenance (``salt-run lvs.rolling``) on the seed's site, through the lab's
real master, runner and directors: rs1 and rs2 each given an SLS and rebooted in turn
(Salt's ``system.reboot``: the lab's init reboots its kernel) under steady load lose no
request and never have more than one backend out (two hosts show the hand-over from one
to the next; each further host is the same step again, 45 s of CI); a host whose service does not
come back after its reboot stops the rolling with that host drained and the next one
untouched. A rebooted host comes back fully configured (its highstate at boot)."""

import threading
import time

from lvs_lab import health as hh
from lvs_lab import load
from tests.lab.site_helpers import changes_by_minion

EVERY = {"10.10.24.21": 1, "10.10.24.22": 1, "10.10.24.23": 1}
ROLLED = ("rs1", "rs2")
ACTION = "lvs.realserver"  # the real servers' own role, applied again: an action that changes nothing


def test_a_rolling_reboot_under_load_fails_no_request_and_has_one_backend_out_at_a_time(healthy):
    lab = healthy
    booted = {minion: hh.boot_id(lab, minion) for minion in (*ROLLED, "rs3")}
    samples, stop = [], threading.Event()

    def sample():
        while not stop.is_set():
            samples.append(hh.weights(lab))
            time.sleep(0.3)

    sampler = threading.Thread(target=sample)
    sampler.start()
    steady = load.start_steady(lab, 600, 0.1)  # until the rolling ends
    began = time.monotonic()
    try:
        result = lab.salt_run("lvs.rolling", f"targets={','.join(ROLLED)}", f"action={ACTION}", "reboot=True",
                              "timeout=120", timeout=900)[lab.site().name]
    finally:
        took = time.monotonic() - began
        time.sleep(2)  # the load goes on a little past the last undrain
        steady.stop()
        results = steady.result(timeout=400)
        stop.set()
        sampler.join()
    print(f"rolling of {', '.join(ROLLED)} ({ACTION}, reboot): {result}; {took:.0f} s; {len(results)} requests")
    assert result["done"] == list(ROLLED), result
    rebooted = {minion: hh.boot_id(lab, minion) for minion in booted}
    assert all(rebooted[m] != booted[m] for m in ROLLED), (booted, rebooted)  # each kernel booted again
    assert rebooted["rs3"] == booted["rs3"]  # not a target: untouched
    assert [r for r in results if not r[2]] == []  # no failed request
    out = [sorted(a for a, w in s.items() if w == 0) for s in samples]
    assert all(len(o) <= 1 for o in out), [o for o in out if len(o) > 1]
    assert {a for o in out for a in o} == {hh.address(lab, minion) for minion in ROLLED}  # each out in turn
    assert hh.weights(lab) == EVERY
    # Each came back from its power cycle fully configured by its highstate at boot: one
    # more apply finds nothing to do (a restarted director and router: test_site_seed).
    assert changes_by_minion(lab.apply(minions=list(ROLLED))) == {minion: {} for minion in ROLLED}


def test_a_host_whose_service_does_not_return_after_its_reboot_stops_the_rolling_there(healthy):
    lab = healthy
    rs3 = hh.boot_id(lab, "rs3")
    hh.service_at_boot(lab, "rs2", starts=False)
    try:
        result = lab.salt_run("lvs.rolling", "targets=rs2,rs3", "reboot=True", "timeout=15", "reboot_timeout=120",
                              timeout=600)[lab.site().name]
        assert result["step"] == "healthy" and result["done"] == [] and "rs2" in result["at"], result
        weights = hh.weights(lab)
        assert weights["10.10.24.22"] == 0 and weights["10.10.24.23"] == 1 and weights["10.10.24.21"] == 1
        drained = hh.record(lab).get("maintenance", {})
        assert list(drained) == ["rs2"], drained  # rs3 never touched
        assert hh.boot_id(lab, "rs3") == rs3
        served = hh.client_send(lab, 6)
        assert served["failed"] == 0 and set(served["answers"]) == {"rs1", "rs3"}, served  # the site serves
    finally:
        hh.service_at_boot(lab, "rs2")
        lab.salt_run("lvs.undrain", "rs2")
    hh.wait_for(lambda: hh.weights(lab) == EVERY, hh.RESTORE)
