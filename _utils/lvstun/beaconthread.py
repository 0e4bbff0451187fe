"""A beacon's own thread, for work that must run more often than Salt calls beacons
(once a second at most, from the minion's loop) and must not wait for that loop: the
directors' path checks (``lvs_paths``) and the router's probes of its directors
(``lvs_directors``).

The beacon calls :meth:`BeaconThread.keep` at each of its calls with the newest
settings and its loader context (Salt's dunders live there: the thread calls Salt
through it); the thread runs ``target(thread)``, which takes its rounds' settings from
:meth:`rounds` and ends when they end: the beacon has not called
for ``stale`` seconds (disabled, the minion stopping) or said ``stop``, or once
:meth:`stop` was called: the beacon's ``close``, which Salt calls when the beacon is
deleted (``lvs.clean`` then removes what the thread kept up, and nothing puts it back).
The target waits between rounds with :meth:`sleep`, which :meth:`stop` cuts short. What
the thread reports goes through :meth:`report`, and the beacon returns it as events
(:meth:`reports`).
"""

import queue
import threading
import time


class BeaconThread:
    def __init__(self, name, target, stale=10.0):
        self.name, self.target, self.stale = name, target, stale
        self._lock = threading.Lock()
        self._thread = None
        self._seen, self._stop = 0.0, False
        self._settings = self._context = None
        self._reports = queue.Queue()
        self._wake = threading.Event()

    def keep(self, settings, context, stop=False):
        """The beacon's call: ``settings`` (None keeps the last ones: an invalid pillar,
        say), ``context`` (``contextvars.copy_context()``); ``stop`` ends the thread."""
        with self._lock:
            self._seen, self._stop = time.monotonic(), stop
            if stop:
                self._wake.set()
            else:
                self._wake.clear()
            if settings is not None:
                self._settings = settings
            self._context = context
            if not stop and self._settings is not None and self._thread is None:
                self._thread = threading.Thread(target=self.target, args=(self,), name=self.name, daemon=True)
                self._thread.start()

    def current(self):
        """``(settings, context)`` for the next round, or None: the thread ends now."""
        with self._lock:
            if self._stop or time.monotonic() - self._seen > self.stale:
                self._thread = None
                return None
            return self._settings, self._context

    def rounds(self):
        """``(settings, context)`` for each round, until the thread must end."""
        while (current := self.current()) is not None:
            yield current

    def stop(self, wait=10.0):
        """End the thread and wait (at most ``wait`` seconds) for its round to finish."""
        with self._lock:
            self._stop, thread = True, self._thread
            self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(wait)

    def sleep(self, seconds):
        """Wait between two rounds; cut short by :meth:`stop`."""
        self._wake.wait(max(0.0, seconds))

    def running(self):
        with self._lock:
            return self._thread is not None

    def report(self, event):
        self._reports.put(event)

    def reports(self):
        """What the thread reported since the last call."""
        out = []
        while not self._reports.empty():
            out.append(self._reports.get_nowait())
        return out
