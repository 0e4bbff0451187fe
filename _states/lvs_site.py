"""State: the site's pillar is valid (so nothing else applies when it is not).

.. code-block:: yaml

    lvs-site-valid:
      lvs_site.valid: []
"""


def __virtual__():
    if "lvs_site.validate" not in __salt__:
        return False, "the lvs_site execution module is not loaded"
    return True


def valid(name="lvs"):
    """Succeed when the ``lvs`` pillar tree is a valid site; fail with every problem.
    A valid site is recorded as the applied one (``lvs_site.remember``; not under
    ``test=True``): the beacons' threads and the runner's pushes go by it from now on.
    The record is the pack's bookkeeping, not a change of the host: no ``changes``.

    name
        The state's ID (it names the report only).

    .. code-block:: yaml

        lvs-site-valid:
          lvs_site.valid: []
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": "the site's pillar is valid"}
    errors = __salt__["lvs_site.validate"]()
    if errors:
        ret["result"] = False
        ret["comment"] = "invalid LVS site pillar:\n" + "\n".join(errors)
    elif not __opts__["test"]:
        __salt__["lvs_site.remember"]()
    return ret
