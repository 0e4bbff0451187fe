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

It wraps internals of the standard metaproxy (``post_master_init``, the proxy's
``_load_modules``) as they are in the Salt release it was written and tested for, and
refuses to start on any other: check there whether the hang is still there
(``scripts/repro-proxy-start-hang``), then either go back to ``metaproxy: proxy`` or test
this module on that release and add it to ``WRITTEN_FOR``.
"""

import asyncio
import logging

import salt.version
from salt.metaproxy import proxy as _standard

log = logging.getLogger(__name__)
_SYNC = "saltutil.sync_all"
WRITTEN_FOR = ("3008.4",)  # Salt releases this workaround was tested on


def check_salt_version(version=None):
    """Raise RuntimeError unless the running Salt is one this workaround was written for."""
    version = version or salt.version.__saltstack_version__.string
    if version not in WRITTEN_FOR:
        raise RuntimeError(
            f"metaproxy lvs_proxy was written for Salt {', '.join(WRITTEN_FOR)} and this is Salt {version}: "
            "run scripts/repro-proxy-start-hang of salt-lvs-tun to see whether this release still hangs at "
            "proxy start; if not, use 'metaproxy: proxy'; if so, test lvs_proxy here and add the release to "
            "WRITTEN_FOR (docs/pillar.md)")


async def post_master_init(self, master):
    try:
        check_salt_version()
    except RuntimeError as err:
        log.critical("%s", err)
        raise
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
