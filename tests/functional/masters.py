"""A real salt-master for the functional tests: the pack served from the checkout."""

import os

import lvs_salt.fileserver

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def overrides(pillar_dir, **extra):
    """The settings of a master that serves the pack from the checkout and
    ``pillar_dir`` as its pillar; ``extra`` on top. Logs at info: the roots backend
    logs every file it walks at TRACE, and walking the checkout's virtualenv at the
    factories' TRACE costs seconds per sync."""
    return {**lvs_salt.fileserver.master_config(REPO), "pillar_roots": {"base": [str(pillar_dir)]},
            "log_level": "info", "log_level_logfile": "info", **extra}
