"""The LVS-TUN Salt extension pack, as seen by Salt's loader when installed with pip.

The modules themselves live in the repository's classic folders (``_modules/``,
``_states/``, ``_beacons/``, ``_runners/``); ``setup.cfg`` installs them as the
sub-packages of this package, and :mod:`lvs_salt.loader` points Salt at them.
"""
