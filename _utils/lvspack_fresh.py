"""Keep the pack's shared modules current in long-lived minion processes.

``saltutil.sync_all`` replaces the files under ``extmods/utils`` and reloads the
execution and state modules, but Python keeps the first ``import lvspack_...`` in
``sys.modules``: a minion that runs jobs in threads (``multiprocessing: False``) would
go on using the old code. :func:`fresh` re-imports a module whose file changed since
it was last checked, and the first time it sees a module (it cannot know how old that
import is); shared modules that import each other are refreshed first.
"""

import importlib
import os

PREFIX = "lvspack_"


def _mtime(module):
    try:
        return os.stat(module.__file__).st_mtime_ns
    except (AttributeError, OSError, TypeError):
        return None


def fresh(module):
    """Return ``module``, re-imported if it (or a shared module it imports) may be stale."""
    mtime = _mtime(module)
    if mtime is None:
        return module
    stale = getattr(module, "_lvspack_mtime", None) != mtime
    for name, value in list(vars(module).items()):
        if getattr(value, "__name__", "").startswith(PREFIX) and value is not module and \
                type(value) is type(module):
            if fresh(value) is not value:
                stale = True
    if stale:
        module = importlib.reload(module)
        module._lvspack_mtime = mtime  # noqa: SLF001
    return module
