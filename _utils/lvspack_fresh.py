"""Keep the pack's shared modules current in long-lived minion processes.

``saltutil.sync_all`` replaces the files under ``extmods/utils`` and reloads the
execution and state modules, but Python keeps the first ``import lvspack_...`` in
``sys.modules``: a minion that runs jobs in threads (``multiprocessing: False``) would
go on using the old code. :func:`fresh` re-imports a module whose file changed.
"""

import importlib
import os


def fresh(module):
    """Return ``module``, re-imported if its file changed since it was (re)imported."""
    try:
        mtime = os.stat(module.__file__).st_mtime_ns
    except (AttributeError, OSError):
        return module
    seen = getattr(module, "_lvspack_mtime", None)
    if seen is not None and seen != mtime:
        module = importlib.reload(module)
    module._lvspack_mtime = mtime  # noqa: SLF001
    return module
