"""Progress on the terminal: each step with its duration, and the total."""

import contextlib
import sys
import time


class Progress:
    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.start = time.monotonic()

    def say(self, text):
        print(f"[{time.monotonic() - self.start:6.1f}s] {text}", file=self.stream, flush=True)

    @contextlib.contextmanager
    def step(self, text):
        began = time.monotonic()
        self.say(f"{text} ...")
        try:
            yield
        except BaseException:
            self.say(f"{text}: FAILED after {time.monotonic() - began:.1f}s")
            raise
        self.say(f"{text}: done in {time.monotonic() - began:.1f}s")
