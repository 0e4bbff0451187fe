"""Salt's standard proxy metaproxy, with its start-up sync moved off the event loop.

In Salt 3008.4 a salt-proxy connected to a master never finishes starting: the standard
metaproxy's ``post_master_init`` (a coroutine on the minion's event loop) calls
``saltutil.sync_all``, whose file client then waits for a reply that the blocked loop
can never deliver; after 180 s the proxy gives up (reproduced with Salt's own dummy
proxy). This metaproxy runs the standard one with that call deferred, then performs
the same sync in a worker thread, awaited, once the loop is free. Everything else is
the standard proxy's.

Use it in the proxy's configuration (the pack must be installed on the proxy's host,
``pip install salt-lvs-tun[ios]``: a metaproxy is loaded before any sync):

.. code-block:: yaml

    # /etc/salt/proxy
    metaproxy: lvs_proxy

It wraps internals of the standard metaproxy: its ``post_master_init`` (a coroutine
of ``(self, master)`` that loads the proxy's modules through ``self._load_modules`` and
then calls ``saltutil.sync_all``) and the functions it delegates to. It checks exactly
that before the proxy starts (:func:`check_internals`), whatever the release's number:
a release whose internals differ stops the proxy with a message saying what changed
(tested first on 3008.4; 3008.5's code is the same); a release that no longer syncs at
start does not need the workaround, which then only says so. The hang itself:
``scripts/repro-proxy-start-hang``.
"""

import asyncio
import inspect
import logging

from salt.metaproxy import proxy as _standard

log = logging.getLogger(__name__)
_SYNC = "saltutil.sync_all"
TESTED_ON = ("3008.4", "3008.5")  # releases whose proxy start this was run against (informative)
# What the workaround takes from the standard metaproxy: name -> (coroutine?, parameters).
DELEGATES = {
    "post_master_init": (True, ["self", "master"]),
    "target": (False, ["cls", "minion_instance", "opts", "data", "connected", "creds_map"]),
    "thread_return": (False, ["cls", "minion_instance", "opts", "data"]),
    "thread_multi_return": (False, ["cls", "minion_instance", "opts", "data"]),
    "handle_payload": (True, ["self", "payload"]),
    "handle_decoded_payload": (True, ["self", "data"]),
    "target_load": (False, ["self", "load"]),
    "tune_in": (False, ["self", "start"]),
}


def check_internals(standard=_standard):
    """Raise RuntimeError when the standard metaproxy lacks what this workaround wraps
    (a function, its parameters, whether it is a coroutine); return whether its start
    still loads the proxy's modules and syncs them (the hang): False means the workaround
    is not needed on this release."""
    problems = []
    for name, (coroutine, params) in DELEGATES.items():
        func = getattr(standard, name, None)
        if not callable(func):
            problems.append(f"{name} is gone")
            continue
        if inspect.iscoroutinefunction(func) != coroutine:
            problems.append(f"{name} is {'no longer' if coroutine else 'now'} a coroutine")
        have = list(inspect.signature(func).parameters)
        if have != params:
            problems.append(f"{name} takes ({', '.join(have)}), not ({', '.join(params)})")
    if problems:
        raise RuntimeError(
            "metaproxy lvs_proxy wraps Salt's standard proxy metaproxy, which changed in this release: "
            f"{'; '.join(problems)}. Run scripts/repro-proxy-start-hang of salt-lvs-tun: if the standard "
            "one starts, use 'metaproxy: proxy'; otherwise this workaround must be adapted (docs/pillar.md)")
    source = inspect.getsource(standard.post_master_init)
    return "_load_modules" in source and _SYNC.split(".")[1] in source


async def post_master_init(self, master):
    try:
        needed = check_internals()
    except RuntimeError as err:
        log.critical("%s", err)
        raise
    if not needed:
        log.warning("lvs_proxy: this Salt's proxy start no longer syncs its modules on the event loop: "
                    "'metaproxy: proxy' will do (scripts/repro-proxy-start-hang)")
        await _standard.post_master_init(self, master)
        return
    load_modules = self._load_modules
    deferred = {}

    def load_and_defer_sync(*args, **kwargs):
        loaded = load_modules(*args, **kwargs)
        functions = loaded[0]
        if not deferred:
            deferred["sync_all"] = functions[_SYNC]
            functions[_SYNC] = lambda *a, **kw: {}
        return loaded

    self._load_modules = load_and_defer_sync
    try:
        await _standard.post_master_init(self, master)
    finally:
        self._load_modules = load_modules
        if deferred:
            self.functions[_SYNC] = deferred["sync_all"]
    if deferred:
        saltenv = self.opts["saltenv"]
        synced = await asyncio.get_running_loop().run_in_executor(
            None, lambda: deferred["sync_all"](saltenv=saltenv))
        log.info("lvs_proxy: start-up sync done: %s", synced)


# The rest is the standard metaproxy's (Salt's loader exposes only functions defined here).
def target(cls, minion_instance, opts, data, connected, creds_map):
    return _standard.target(cls, minion_instance, opts, data, connected, creds_map)


def thread_return(cls, minion_instance, opts, data):
    return _standard.thread_return(cls, minion_instance, opts, data)


def thread_multi_return(cls, minion_instance, opts, data):
    return _standard.thread_multi_return(cls, minion_instance, opts, data)


async def handle_payload(self, payload):
    return await _standard.handle_payload(self, payload)


async def handle_decoded_payload(self, data):
    return await _standard.handle_decoded_payload(self, data)


def target_load(self, load):
    return _standard.target_load(self, load)


def tune_in(self, start=True):
    return _standard.tune_in(self, start)
