"""The classic way: a checkout of the pack as the master's file roots.

.. code-block:: yaml

    # /etc/salt/master.d/lvs.conf (what :func:`master_config` returns, for /srv/lvs)
    file_roots:
      base: [/srv/lvs/salt, /srv/lvs]
    file_ignore_regex: ['(^|/)\\.', ...]

``salt/`` holds the SLS files (``lvs``, ``lvs.director`` ...); the repository root holds
``_modules/``, ``_states/`` ... which ``saltutil.sync_all`` (and every highstate) pushes
to the minions. The ignore list keeps the virtualenv, .git and the non-Salt folders out
of the file lists that travel to every minion at each sync.
"""

import os

IGNORE_REGEX = [r"(^|/)\.", r"(^|/)__pycache__(/|$)", r"^(tests|docs|lab|lvs_salt|build|bench|scripts|prometheus)/"]


def master_config(checkout):
    """The master settings that serve the pack from ``checkout``."""
    return {
        "file_roots": {"base": [os.path.join(checkout, "salt"), checkout]},
        "file_ignore_regex": list(IGNORE_REGEX),
    }
