"""lvs-lab: the seed's LVS-TUN site on real Linux kernels, driven by a real salt-master.

See ``lvs_lab.lab`` for how it is built and ``lvs-lab --help`` for the commands.
"""

import os

# Salt must not be imported before setuptools' distutils hook is settled.
os.environ.setdefault("SETUPTOOLS_USE_DISTUTILS", "stdlib")
