"""State: this host is a TUN real server for some VIPs (``tunnel_present``; a host
leaving the site: ``tunnel_absent``)."""

import lvstun.converge
from lvstun.fresh import fresh

fresh(lvstun.converge)


def __virtual__():
    if "ipip.check" not in __salt__:
        return False, "the ipip execution module is not loaded (pyroute2 missing?)"
    return True


def tunnel_present(name="tunl0", vips=None, lan_interface="eth0", mtu=None, sysctls=None, decap=None):
    """The ipip device ``name`` is up (with ``mtu``), holds every VIP as /32, and the
    ARP and rp_filter sysctls of a TUN real server are set (plus ``sysctls``); IPv6 VIPs
    go on ``ip6tnl0`` as /128 (the kernel's ip6ip6 device; they need no sysctl). A VIP it
    no longer needs is taken off once idle, and only one the pack put there. With
    ``decap``, GUE ports open and ``gre0`` up for the services wrapped so.

    name
        The ipip device: ``tunl0`` (the kernel's, with the ipip module) or a name the
        pack creates; never a NIC or ``lo`` (refused); ``ip6tnl0`` for IPv6 VIPs.
    vips
        The VIPs this real server answers for (of one IP version).
    lan_interface
        Its LAN NIC (ARP hidden there too).
    mtu
        The device's MTU (None: left alone).
    sysctls
        More ``{name: value}`` to set with the TUN ones.
    decap
        ``{gue_ports: [5555], gre: false}``: what it receives besides ipip.

    .. code-block:: yaml

        lvs-realserver-tunnel:
          ipip.tunnel_present:
            - name: tunl0
            - vips: [10.10.24.88]
            - lan_interface: eth0
            - decap: {gue_ports: [5555], gre: false}
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    args = (vips or [], name, lan_interface, mtu, sysctls, decap)
    return lvstun.converge.converge(
        ret, __opts__["test"], lambda: __salt__["ipip.check"](*args), lambda: __salt__["ipip.present"](*args),
        f"TUN tunnel {name} for {', '.join(vips or []) or 'no VIP'}")


def tunnel_absent(name="tunl0", decap=True):
    """The ipip device ``name`` holds no address the pack put there and is as it was
    before the pack set it up (deleted when the pack created it; ``tunl0``, ``ip6tnl0``:
    down); with ``decap``, the GUE ports the pack opened are closed and ``gre0`` and
    ``ip6gre0`` are as they were. A real server leaving the site: salt/lvs/clean.sls,
    with ``lvs_net.cleaned`` for the sysctls.

    name
        The ipip device.
    decap
        The GUE ports and GRE devices too (False for a second device of the same host).

    .. code-block:: yaml

        lvs-clean-tunnel:
          ipip.tunnel_absent:
            - name: tunl0
        lvs-clean-tunnel6:
          ipip.tunnel_absent:
            - name: ip6tnl0
            - decap: false
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    return lvstun.converge.converge(
        ret, __opts__["test"], lambda: __salt__["ipip.check_absent"](name, decap),
        lambda: __salt__["ipip.absent"](name, decap), f"TUN tunnel {name}")
