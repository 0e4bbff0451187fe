"""States: a host's IP setup for its role, one concern per state.

.. code-block:: yaml

    lvs-realserver-addresses:
      lvs_net.addresses:
        - addresses: {eth0: [10.10.24.21/24]}     # added (and the NIC up), never removed
    lvs-realserver-gateway:
      lvs_net.default_route:
        - gateway: 10.10.24.1
    lvs-realserver-sysctls:
      lvs_net.sysctls:
        - sysctls: {net.ipv4.ip_forward: 0}
    lvs-realserver-mss-routes:                     # real servers: the MSS clamp
      lvs_net.mss_routes:
        - vip_routes: {vips: [10.10.24.88], table: 4242, advmss: 1440,
                       gateway: 10.10.24.1, interface: eth0, subnet: 10.10.24.0/24}
    lvs-director-vips:                             # directors: exactly the site's VIPs
      lvs_net.director_vips:
        - vips: {interface: eth0, addresses: [10.10.24.88/32], subnet: 10.10.24.0/24}
    lvs-router-routes:                             # a linux router: the routes the pack owns
      lvs_net.owned_routes:
        - routes: {10.10.24.88/32: {via: [10.10.24.2, 10.10.24.3], interface: eth0}}

Each checks its concern (``lvs_net.check`` with that one argument), reports every drift
as a change, predicts exactly under ``test=True``, repairs, and checks again.
"""

import lvstun.converge
from lvstun.fresh import fresh

fresh(lvstun.converge)


def __virtual__():
    if "lvs_net.check" not in __salt__:
        return False, "the lvs_net execution module is not loaded (pyroute2 missing?)"
    return True


def _converge(name, what, **concern):
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    return lvstun.converge.converge(
        ret, __opts__["test"], lambda: __salt__["lvs_net.check"](**concern),
        lambda: __salt__["lvs_net.apply"](**concern), f"{what} of {__opts__['id']}")


def addresses(name, addresses):
    """Every interface of ``addresses`` is up and holds those addresses; others it holds
    are left alone.

    name
        The state's ID (it names the report only).
    addresses
        ``{interface: [address/prefix, ...]}``.

    .. code-block:: yaml

        lvs-realserver-addresses:
          lvs_net.addresses:
            - addresses: {eth0: [10.10.24.21/24]}
    """
    return _converge(name, "the addresses", addresses=addresses)


def default_route(name, gateway):
    """The default route goes via ``gateway``.

    name
        The state's ID (it names the report only).
    gateway
        The next hop's address (on a connected network).

    .. code-block:: yaml

        lvs-realserver-gateway:
          lvs_net.default_route:
            - gateway: 10.10.24.1
    """
    return _converge(name, "the default route", gateway=gateway)


def sysctls(name, sysctls):
    """Every setting of ``sysctls`` has its value.

    name
        The state's ID (it names the report only).
    sysctls
        ``{dotted name: value}``, e.g. ``{net.ipv4.ip_forward: 0}``.

    .. code-block:: yaml

        lvs-realserver-sysctls:
          lvs_net.sysctls:
            - sysctls: {net.ipv4.ip_forward: 0}
    """
    return _converge(name, "the sysctls", sysctls=sysctls)


def mss_routes(name, vip_routes):
    """A real server answers from its VIPs through routes that clamp the TCP MSS.

    name
        The state's ID (it names the report only).
    vip_routes
        ``{vips, table, advmss, gateway, interface, subnet}``: a rule ``from VIP lookup
        table`` per VIP, and in that table the LAN and the default route with ``advmss``.

    .. code-block:: yaml

        lvs-realserver-mss-routes:
          lvs_net.mss_routes:
            - vip_routes: {vips: [10.10.24.88], table: 4242, advmss: 1440,
                           gateway: 10.10.24.1, interface: eth0, subnet: 10.10.24.0/24}
    """
    return _converge(name, "the VIP routes", vip_routes=vip_routes)


def director_vips(name, vips):
    """A director holds exactly the site's VIPs: missing ones are added; a /32 of the
    LAN that the pack added and that is no longer a VIP is removed once idle.

    name
        The state's ID (it names the report only).
    vips
        ``{interface, addresses: [VIP/32, ...], subnet}``: where the VIPs live (the LAN
        NIC, or ``lo`` with several directors) and the LAN.

    .. code-block:: yaml

        lvs-director-vips:
          lvs_net.director_vips:
            - vips: {interface: eth0, addresses: [10.10.24.88/32], subnet: 10.10.24.0/24}
    """
    return _converge(name, "the VIPs", vips=vips)


def owned_routes(name, routes):
    """The routes the pack owns (protocol 76) are exactly ``routes`` (ECMP over several
    next hops); routes it does not own are left alone.

    name
        The state's ID (it names the report only).
    routes
        ``{destination/prefix: {via: [next hop, ...], interface}}``.

    .. code-block:: yaml

        lvs-router-routes:
          lvs_net.owned_routes:
            - routes: {10.10.24.88/32: {via: [10.10.24.2, 10.10.24.3], interface: eth0}}
    """
    return _converge(name, "the routes", routes=routes)


def cleaned(name):
    """Everything the pack changed on this host's network is back as it was (a host
    leaving the site: salt/lvs/clean.sls): ``lvs_net.clean``.

    name
        The state's ID (it names the report only).

    .. code-block:: yaml

        lvs-clean-network:
          lvs_net.cleaned: []
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    return lvstun.converge.converge(
        ret, __opts__["test"], __salt__["lvs_net.check_clean"], __salt__["lvs_net.clean"],
        f"what the pack changed on the network of {__opts__['id']}")
