"""The pack's JSON documents in the cache: every record of ``lvstun.records`` (what a
state created, so that it removes only that; the runner's health record; a beacon's
verdicts) is kept here.

One JSON file per record under the minion's (or the master's) cache
(``<cachedir>/lvs/<name>.json``): it outlives a restart like the other cached data.

Written atomically and durably: a unique temporary file in the same folder, fsync'd,
then renamed over the record, the previous version kept as ``<name>.json.prev`` (by a
hard link, so that a reader always finds a record). A damaged record (empty, cut short,
not JSON) is reported in the log and replaced by the previous version when that one
reads, else by the default.

:func:`locked` serializes a read-decide-write sequence between the minion's processes
and threads (a state writing what a beacon's thread also writes): an advisory lock on
``<cachedir>/lvs/<name>.lock``.
"""

import contextlib
import errno
import fcntl
import json
import logging
import os
import tempfile
import threading
import time

log = logging.getLogger(__name__)


def path(opts, name):
    return os.path.join(opts["cachedir"], "lvs", f"{name.replace('/', '_')}.json")


LOCK_TIMEOUT = 60  # seconds: a holder only reads records and writes to the kernel
_THREAD_LOCKS = {}  # lock path -> threading.Lock: POSIX locks do not exclude a process's own threads
_THREAD_LOCKS_GUARD = threading.Lock()


def _reset_after_fork():
    # A child forked while one of its parent's threads held a lock must not inherit it held.
    global _THREAD_LOCKS_GUARD  # pylint: disable=global-statement
    _THREAD_LOCKS.clear()
    _THREAD_LOCKS_GUARD = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


@contextlib.contextmanager
def locked(opts, name, timeout=LOCK_TIMEOUT):
    """Hold the lock ``name`` of this minion: other threads of this process and other
    processes that take it wait for the holder (a POSIX record lock, which a forked
    child does not inherit); raise TimeoutError after ``timeout`` seconds."""
    target = os.path.join(opts["cachedir"], "lvs", f"{name.replace('/', '_')}.lock")
    with _THREAD_LOCKS_GUARD:
        local = _THREAD_LOCKS.setdefault(target, threading.Lock())
    if not local.acquire(timeout=timeout):
        raise TimeoutError(f"lvs: the lock {target} is held for over {timeout} s")
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as err:
                    if err.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"lvs: the lock {target} is held for over {timeout} s") from None
                    time.sleep(0.01)
            yield
        finally:
            os.close(fd)  # releases the record lock
    finally:
        local.release()


def _read(target, valid):
    with open(target, encoding="utf-8") as fh:
        data = json.load(fh, parse_constant=_no_constant)
    wrong = valid(data) if valid else []
    if wrong:
        raise ValueError(f"not the record's shape: {'; '.join(wrong[:3])}")
    return data


def _no_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def load(opts, name, default=None, valid=None):
    """The record ``name``, or ``default`` when there is none (or none that reads).
    ``valid(data)``: the problems of what was read (``lvstun.records``); a record with
    problems counts as damaged."""
    target = path(opts, name)
    try:
        return _read(target, valid)
    except FileNotFoundError:
        return default
    except (ValueError, UnicodeDecodeError) as err:
        try:
            previous = _read(f"{target}.prev", valid)
        except (OSError, ValueError, UnicodeDecodeError):
            log.error("lvs: record %s is damaged (%s) and has no readable previous version: starting from "
                      "an empty one", target, err)
            return default
        log.error("lvs: record %s is damaged (%s): using its previous version", target, err)
        return previous


def versions(opts, name, valid=None):
    """Both versions of the record ``name``, each ``(data, problem)``: ``(data, None)``
    when it reads and fits ``valid``, ``(None, "missing")`` or ``(None, why)`` otherwise:
    ``{"current": ..., "previous": ...}`` (for a reader that recovers by itself)."""
    out = {}
    for which, target in (("current", path(opts, name)), ("previous", f"{path(opts, name)}.prev")):
        try:
            out[which] = (_read(target, valid), None)
        except FileNotFoundError:
            out[which] = (None, "missing")
        except (OSError, ValueError, UnicodeDecodeError) as err:
            out[which] = (None, str(err))
    return out


def store(opts, name, data):
    """Write the record ``name``: a crash leaves the old or the new one, never a part."""
    target = path(opts, name)
    folder = os.path.dirname(target)
    os.makedirs(folder, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, allow_nan=False)  # strict JSON: NaN and infinities refused
            fh.flush()
            os.fsync(fh.fileno())
        if os.path.exists(target):
            keep = f"{temp}.prev"
            with contextlib.suppress(OSError):
                os.link(target, keep)
                os.replace(keep, f"{target}.prev")
        os.replace(temp, target)
    finally:
        for leftover in (temp, f"{temp}.prev"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)
    dirfd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)
