"""State: this host is a TUN real server for some VIPs.

.. code-block:: yaml

    lvs-realserver-tunnel:
      ipip.tunnel_present:
        - name: tunl0
        - vips: [10.10.24.88]
        - lan_interface: eth0
"""

from salt.exceptions import CommandExecutionError, SaltInvocationError


def __virtual__():
    if "ipip.check" not in __salt__:
        return False, "the ipip execution module is not loaded (pyroute2 missing?)"
    return True


def tunnel_present(name="tunl0", vips=None, lan_interface="eth0", mtu=None, sysctls=None):
    """The ipip device ``name`` is up (with ``mtu``), holds every VIP as /32, and the
    ARP and rp_filter sysctls of a TUN real server are set (plus ``sysctls``)."""
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    try:
        drifts = __salt__["ipip.check"](vips or [], name, lan_interface, mtu, sysctls)
    except (CommandExecutionError, SaltInvocationError) as err:
        ret.update(result=False, comment=str(err))
        return ret
    if not drifts:
        ret["comment"] = f"{name} is a working TUN tunnel for {', '.join(vips or []) or 'no VIP'}"
        return ret
    ret["changes"] = drifts
    if __opts__["test"]:
        ret.update(result=None, comment=f"{len(drifts)} setting(s) would be changed")
        return ret
    try:
        __salt__["ipip.present"](vips or [], name, lan_interface, mtu, sysctls)
    except (CommandExecutionError, SaltInvocationError) as err:
        ret.update(result=False, comment=f"failed: {err}")
        return ret
    left = __salt__["ipip.check"](vips or [], name, lan_interface, mtu, sysctls)
    if left:
        ret.update(result=False, comment=f"still drifting after the change: {sorted(left)}")
        return ret
    ret["comment"] = f"{len(drifts)} setting(s) changed"
    return ret
