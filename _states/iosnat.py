"""State: the front router's static NAT on a Cisco IOS device (``lvs_ios`` proxy).

.. code-block:: yaml

    lvs-router-nat:
      iosnat.managed:
        - nat:
            inside_interface: GigabitEthernet0/0
            outside_interface: GigabitEthernet0/1
            mappings:
              - {public: 112.2.21.88, vip: 10.10.24.88}
        - routes: {}        # with several directors: {VIP/32: {via: [D1, D2]}}
        - tracking: null    # with several directors: the IP SLA probes (lvstun.roles.ios_tracking)
        - save: false       # write memory after a change

Changes are the config lines, each ``{"old": "absent", "new": "present"}`` (or the
reverse for a stale owned line); under ``test=True`` the comment lists the exact lines
that would be sent, in order, and nothing is sent.
"""

import lvstun.converge
from lvstun.fresh import fresh

fresh(lvstun.converge)


def __virtual__():
    return True  # managed() explains itself where the execution module is missing


def managed(name, nat, routes=None, save=False, tracking=None):
    """The device holds exactly the site's NAT lines (and VIP routes with the probes
    that track them); only stale lines the pack owns are removed.

    name
        The state's ID (it names the report only).
    nat
        ``{inside_interface, outside_interface, mappings: [{public, vip}]}``.
    routes
        ``{VIP/32: {via: [director, ...]}}`` (several directors), else none.
    save
        Write the running config to the startup config after a change.
    tracking
        The directors' IP SLA probes and track objects (``lvstun.roles.ios_tracking``).

    .. code-block:: yaml

        lvs-router-nat:
          iosnat.managed:
            - nat: {inside_interface: GigabitEthernet0/0, outside_interface: GigabitEthernet0/1,
                    mappings: [{public: 112.2.21.88, vip: 10.10.24.88}]}
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    if "iosnat.check" not in __salt__:
        ret.update(result=False, comment="an ios router is managed by a salt-proxy minion of proxytype "
                                         "lvs_ios (see docs/pillar.md); this minion is not one")
        return ret

    def detail(found):
        if isinstance(found, dict) and "sent" in found:
            return f"sent {found['sent']}" + (", then write memory" if found["saved"] else "")
        lines = __salt__["iosnat.commands"](nat, routes, tracking)
        return f"would send {lines}" + (" then write memory" if any(d["kind"] == "ios-saved" for d in found)
                                         else "")

    return lvstun.converge.converge(
        ret, __opts__["test"], lambda: __salt__["iosnat.check"](nat, routes, save, tracking),
        lambda: __salt__["iosnat.apply"](nat, routes, save, tracking), "the router's NAT", detail)
