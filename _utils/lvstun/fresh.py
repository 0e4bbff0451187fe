"""Keep the pack's shared modules current in long-lived minion processes.

``saltutil.sync_all`` replaces the files under ``extmods/utils`` and reloads the
execution and state modules, but Python keeps the first ``import lvstun.X`` in
``sys.modules``: a minion that runs jobs in threads (``multiprocessing: False``) would
go on using the old code. :func:`fresh` re-imports a module whose file changed since
it was last checked, and the first time it sees a module (it cannot know how old that
import is); modules of the same package that it imports are refreshed first, and a
refreshed one makes its importers re-import too (their ``from .x import NAME`` bindings).

This module is the one that cannot refresh itself: a minion upgraded in place runs the
new loader modules with the ``fresh`` it imported first. So :func:`fresh` keeps its
signature (one module per call) from release to release
(``tests/unit/test_fresh.py`` checks every call in the pack).
"""

import importlib
import os

STAMP = "_lvstun_mtime"


def _mtime(module):
    try:
        return os.stat(module.__file__).st_mtime_ns
    except (AttributeError, OSError, TypeError):
        return None


def _refresh(module, seen):
    """Re-import ``module`` if it or a sibling it imports may be stale; whether it did."""
    mtime = _mtime(module)
    seen.add(module.__name__)
    if mtime is None:
        return False
    package = module.__name__.rpartition(".")[0]
    stale = getattr(module, STAMP, None) != mtime
    for value in list(vars(module).values()):
        name = getattr(value, "__name__", "")
        if type(value) is type(module) and package and name.startswith(package + ".") and name not in seen:
            stale = _refresh(value, seen) or stale
    if stale:
        importlib.reload(module)
        setattr(module, STAMP, mtime)
    return stale


def fresh(module):
    """Return ``module``, re-imported first if it (or a sibling it imports) may be stale."""
    _refresh(module, set())
    return module
