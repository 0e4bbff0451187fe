"""State: a host's IP setup for its role (addresses, default gateway, sysctls, the
real servers' VIP source routes).

.. code-block:: yaml

    lvs-realserver-network:
      lvs_net.configured:
        - addresses: {eth0: [10.10.24.21/24]}
        - gateway: 10.10.24.1
        - sysctls: {net.ipv4.ip_forward: 0}
        - vip_routes: {vips: [10.10.24.88], table: 4242, advmss: 1440,
                       gateway: 10.10.24.1, interface: eth0, subnet: 10.10.24.0/24}
"""

import lvstun.converge
from lvstun.fresh import fresh

converge = fresh(lvstun.converge).converge


def __virtual__():
    if "lvs_net.check" not in __salt__:
        return False, "the lvs_net execution module is not loaded (pyroute2 missing?)"
    return True


def configured(name, addresses=None, gateway=None, sysctls=None, vip_routes=None, vips=None, routes=None):
    """The host holds ``addresses`` (added, never removed), routes by ``gateway``, has
    ``sysctls`` set, on a real server the ``vip_routes`` that clamp the MSS, and on a
    director exactly the ``vips`` (stale ones removed once idle), on a router exactly
    the ``routes`` the pack owns (ECMP over the directors)."""
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    args = (addresses, gateway, sysctls, vip_routes, vips, routes)
    return converge(ret, __opts__["test"], lambda: __salt__["lvs_net.check"](*args),
                    lambda: __salt__["lvs_net.apply"](*args), f"the network of {__opts__['id']}")
