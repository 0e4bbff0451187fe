"""The thread a beacon keeps running between its calls (``lvstun.beaconthread``)."""

import time

from lvstun.beaconthread import BeaconThread


def counting(worker):
    """A target that counts rounds with the settings it is given and reports each."""
    for settings, context in worker.rounds():
        worker.report((settings, context))
        time.sleep(0.01)


def wait_until(check, seconds=5):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.01)
    return False


def test_starts_on_the_first_call_with_settings_and_follows_the_newest():
    worker = BeaconThread("t", counting, stale=5)
    worker.keep(None, "ctx")
    assert not worker.running()  # nothing to run with yet
    worker.keep("first", "ctx1")
    assert worker.running()
    assert wait_until(lambda: ("first", "ctx1") in worker.reports())
    worker.keep(None, "ctx2")  # an invalid pillar: the last settings stay
    assert wait_until(lambda: ("first", "ctx2") in worker.reports())
    worker.keep("second", "ctx3")
    assert wait_until(lambda: ("second", "ctx3") in worker.reports())
    worker.keep(None, "ctx", stop=True)
    assert wait_until(lambda: not worker.running())


def test_ends_when_the_beacon_stops_calling_and_starts_again_at_its_next_call():
    worker = BeaconThread("t", counting, stale=0.2)
    worker.keep("s", "c")
    assert worker.running()
    assert wait_until(lambda: not worker.running(), 3)
    worker.reports()
    worker.keep("s", "c")
    assert worker.running()
    assert wait_until(lambda: worker.reports())
    worker.keep("s", "c", stop=True)
    assert wait_until(lambda: not worker.running())


def test_stop_cuts_the_sleep_short_and_waits_for_the_round():
    rounds = []

    def slow(worker):
        for _ in worker.rounds():
            time.sleep(0.2)  # a round in progress when stop() is called
            rounds.append(time.monotonic())
            worker.sleep(3600)

    worker = BeaconThread("t", slow, stale=60)
    worker.keep("s", "c")
    time.sleep(0.05)
    started = time.monotonic()
    worker.stop()
    assert not worker.running()
    assert len(rounds) == 1  # the round in progress finished before stop() returned
    assert time.monotonic() - started < 2
