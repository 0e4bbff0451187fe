"""State: a Linux router's director group (:mod:`lvstun.dirgroup`).

.. code-block:: yaml

    lvs-router-directors:
      lvs_directors.group:
        - spec: {group: 4200, interface: eth0, members: {director: {id: 4201, via: 10.10.24.2}, ...},
                 vips: [10.10.24.88/32], buckets: 64, idle_timer: 10, unbalanced_timer: 300, ...}

``spec: null`` (one director, or an IOS router) removes whatever group the pack held.
The group holds the directors the router's probes find up (its ``lvs_directors``
beacon): a highstate never puts back a director the probes took out, and the probes
follow the settings the highstate applied (``lvs_directors.remember``).
"""

import lvstun.converge
from lvstun.fresh import fresh

converge = fresh(lvstun.converge).converge


def __virtual__():
    if "lvs_directors.check" not in __salt__:
        return False, "the lvs_directors execution module is not loaded (no ip command?)"
    return True


def group(name, spec=None):
    """The router holds exactly the director group ``spec`` (for the probes' view)."""
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    ret = converge(ret, __opts__["test"], lambda: __salt__["lvs_directors.check"](spec),
                   lambda: __salt__["lvs_directors.apply"](spec), "the director group")
    if ret["result"] and not __opts__["test"] and __salt__["lvs_directors.spec"]() != spec:
        __salt__["lvs_directors.remember"](spec)
    return ret
