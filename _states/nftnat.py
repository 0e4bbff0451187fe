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

converge = fresh(lvstun.converge).converge


def __virtual__():
    if "nftnat.check" not in __salt__:
        return False, "the nftnat execution module is not loaded (nft missing?)"
    return True


def managed(name, mappings, wan_interface):
    """Table ``name`` holds exactly the NAT rules of ``mappings``; other tables are untouched."""
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    return converge(ret, __opts__["test"], lambda: __salt__["nftnat.check"](mappings, wan_interface, name),
                    lambda: __salt__["nftnat.apply"](mappings, wan_interface, name), f"nftables table {name}")


def absent(name):
    """Table ``name``, the pack's, is gone (a router leaving the site: salt/lvs/clean.sls)."""
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    return converge(ret, __opts__["test"], lambda: __salt__["nftnat.check_absent"](name),
                    lambda: __salt__["nftnat.absent"](name), f"nftables table {name}")
