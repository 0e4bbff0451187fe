"""State: a Linux router's director group (:mod:`lvstun.dirgroup`).

.. code-block:: yaml

    lvs-router-directors:
      lvs_directors.group:
        - spec: {group: 4200, interface: eth0, members: {director: {id: 4201, via: 10.10.24.2}, ...},
                 vips: [10.10.24.88/32], buckets: 64, idle_timer: 10, unbalanced_timer: 300, ...}

``spec: null`` (one director, or an IOS router) removes whatever group the pack held.
The group holds the directors the router's probes find up (its ``lvs_directors``
beacon): a highstate never puts back a director the probes took out, and the probes
follow the settings the highstate applied (``lvs_directors.spec``).
"""

import lvstun.converge
import lvstun.drift
from lvstun.fresh import fresh

fresh(lvstun.converge)
fresh(lvstun.drift)


def __virtual__():
    if "lvs_directors.check" not in __salt__:
        return False, "the lvs_directors execution module is not loaded (no ip command?)"
    return True


def group(name, spec=None):
    """The router holds exactly the director group ``spec`` (for the probes' view); the
    group is recorded as the site's (``lvs_directors.spec``) in the same step as it
    is written, so the probes' thread follows it from then on, never before.

    name
        The state's ID (it names the report only).
    spec
        The group (``lvstun.dirgroup.spec``: ids, members, VIPs, probe settings); None:
        the site has no group (one director, or an IOS router), any the pack made goes.

    .. code-block:: yaml

        lvs-router-directors:
          lvs_directors.group:
            - spec: {{ cfg.directors | json }}
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    ret = lvstun.converge.converge(
        ret, __opts__["test"], lambda: __salt__["lvs_directors.check"](spec),
        lambda: __salt__["lvs_directors.apply"](spec, remember=True), "the director group")
    if ret["result"] and not __opts__["test"] and __salt__["lvs_directors.spec"]() != spec:
        # Held already (nothing to change): recorded under the lock, with whatever the
        # probes' thread rewrote meanwhile put back and reported.
        ret["changes"].update(lvstun.drift.as_changes(__salt__["lvs_directors.apply"](spec, remember=True)))
    return ret
