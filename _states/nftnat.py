"""State: the router's 1:1 NAT (public <-> VIP) in an nftables table of the pack's own.

.. code-block:: yaml

    lvs-router-nat:
      nftnat.managed:
        - name: lvs_nat
        - wan_interface: wan0
        - mappings:
            - {public: 112.2.21.88, vip: 10.10.24.88}
"""

import lvstun.converge
from lvstun.fresh import fresh

fresh(lvstun.converge)


def __virtual__():
    if "nftnat.check" not in __salt__:
        return False, "the nftnat execution module is not loaded (nft missing?)"
    return True


def managed(name, mappings, wan_interface):
    """Table ``name`` holds exactly the NAT rules of ``mappings``; other tables are untouched.

    name
        The nftables table (``lvs_nat``: the pack's own).
    mappings
        ``[{public, vip}]``: each public address mapped 1:1 to its VIP.
    wan_interface
        The router's WAN NIC (the rules match it by name, literally).

    .. code-block:: yaml

        lvs-router-nat:
          nftnat.managed:
            - name: lvs_nat
            - mappings: [{public: 112.2.21.88, vip: 10.10.24.88}]
            - wan_interface: wan0
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    return lvstun.converge.converge(
        ret, __opts__["test"], lambda: __salt__["nftnat.check"](mappings, wan_interface, name),
        lambda: __salt__["nftnat.apply"](mappings, wan_interface, name), f"nftables table {name}")


def absent(name):
    """Table ``name``, the pack's, is gone (a router leaving the site: salt/lvs/clean.sls).

    name
        The nftables table (``lvs_nat``).

    .. code-block:: yaml

        lvs-clean-nat:
          nftnat.absent:
            - name: lvs_nat
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    return lvstun.converge.converge(
        ret, __opts__["test"], lambda: __salt__["nftnat.check_absent"](name), lambda: __salt__["nftnat.absent"](name),
        f"nftables table {name}")
