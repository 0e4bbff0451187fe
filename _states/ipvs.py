"""States for the IPVS table: one service or destination, or the whole owned set.

.. code-block:: yaml

    lvs-director-ipvs:
      ipvs.managed:
        - services:
            tcp:10.10.24.88:80:
              scheduler: rr
              destinations:
                10.10.24.21:80: {weight: 1}          # forward: tunnel (ipip) by default
                10.10.24.22:80: {weight: 2}

    web-vip:
      ipvs.service_present:
        - name: tcp:10.10.24.88:80
        - scheduler: wrr

Every state reads the kernel's table, diffs it field by field (changes as old/new),
returns early when nothing differs, predicts under ``test=True`` (result None) and
changes nothing then, applies the plan in batches over one netlink socket (the kernel
reports each refused step), and re-reads the services it touched to verify.
"""

from salt.exceptions import CommandExecutionError, SaltInvocationError

import lvstun.converge
import lvstun.ipvs
import lvstun.records
from lvstun.fresh import fresh

fresh(lvstun.converge)
fresh(lvstun.ipvs)
fresh(lvstun.records)


def __virtual__():
    if "ipvs.list" not in __salt__:
        return False, "the ipvs execution module is not loaded (pyroute2 missing?)"
    return True


def _ret(name):
    return {"name": name, "changes": {}, "result": True, "comment": ""}


def _converge(ret, current, desired, owned=(), remove="drain", what="the IPVS table", wanted=None):
    """Shared by every state: plan, honour test=True, apply, verify. ``desired``: the
    wanted table (``{spec: settings}``) or its normalised records (a list); ``wanted``:
    the same as :func:`lvstun.ipvs.wanted` made it, when the caller has it. Returns
    ``(ret, desired records, the specs of the services in the table after the run)``
    (``desired`` None when the input was invalid)."""
    if isinstance(desired, dict):
        try:
            desired = [lvstun.ipvs.desired_service(spec, settings) for spec, settings in desired.items()]
        except lvstun.ipvs.SpecError as err:
            ret.update(result=False, comment=str(err))
            return ret, None, {lvstun.ipvs.service_spec(svc) for svc in current}
    present = {lvstun.ipvs.service_spec(svc) for svc in current}
    ops, changes = lvstun.ipvs.plan(current, desired, owned, remove)
    if not ops:
        ret["comment"] = f"{what} is as wanted"
        return ret, desired, present
    ret["changes"] = lvstun.ipvs.summarized(changes)
    if __opts__["test"]:
        ret.update(result=None, comment=f"{len(ops)} change(s) to {what} would be made")
        return ret, desired, present
    try:
        __salt__["ipvs.apply_plan"](ops)
    except (CommandExecutionError, SaltInvocationError) as err:
        # Report what was done (the changes no longer planned) apart from what failed.
        try:
            after = _current(sorted(present | {lvstun.ipvs.service_spec(svc) for svc in desired}))
            _, left = lvstun.ipvs.plan(after, desired, owned, remove)
        except CommandExecutionError:
            after, left = current, changes
        done = {label: change for label, change in changes.items() if label not in left}
        ret["changes"] = lvstun.ipvs.summarized(done)
        ret.update(result=False, comment=f"failed to change {what}: {err}; not done: {sorted(left)[:5]}")
        return ret, desired, {lvstun.ipvs.service_spec(svc) for svc in after}
    # Verify the services the plan touched: each as wanted in the kernel's own terms
    # (its settings, a cheap read); any other (a drained destination still busy, a
    # change that did not hold) re-read whole and planned again, deletions of busy
    # entries aside.
    touched = {lvstun.ipvs.service_spec(op[1]) for op in ops}
    if wanted is None:
        wanted = lvstun.ipvs.as_wanted(d for d in desired if lvstun.ipvs.service_spec(d) in touched)
    else:
        wanted = {spec: wanted[spec] for spec in touched if spec in wanted}
    held = __salt__["ipvs.settings"](sorted(touched), wanted)
    doubtful = sorted(touched - lvstun.ipvs.unchanged(wanted, held))
    left = []
    if doubtful:
        after = _current(doubtful)
        left, _ = lvstun.ipvs.plan(after, [d for d in desired if lvstun.ipvs.service_spec(d) in doubtful],
                           [spec for spec in owned if spec in doubtful], remove)
        left = [op for op in left if op[0] not in ("del_dest", "del_service")]
    if left:
        ret.update(result=False, comment=f"{what} still differs after the change: {left[:3]}")
    else:
        ret["comment"] = f"{len(ops)} change(s) made to {what}"
    return ret, desired, (present - touched) | set(held)


def _current(specs=None):
    """The kernel's services (all, or those named by ``specs``, a spec or a list)."""
    return __salt__["ipvs.list"](specs, stats=False)


def service_present(name, scheduler="wlc", flags=None, persistent=0, netmask=None):
    """The virtual service ``name`` exists with these settings; its destinations are
    left alone.

    name
        The service's spec: ``tcp:10.10.24.88:80``, ``udp:[2001:db8::1]:53``, ``fwmark:5``.
    scheduler
        An IPVS scheduler (``wlc`` by default; its module must be loadable).
    flags
        Scheduler flags (``ipvsadm -b``): ``sh-port``, ``sh-fallback``, ``mh-port`` ...
    persistent
        Persistence timeout in seconds (0: none).
    netmask
        Persistence granularity (``ipvsadm -M``), e.g. ``255.255.255.0``.

    .. code-block:: yaml

        web-vip:
          ipvs.service_present:
            - name: tcp:10.10.24.88:80
            - scheduler: wrr
    """
    ret = _ret(name)
    settings = {"scheduler": scheduler, "flags": flags, "persistent": persistent, "netmask": netmask,
                "destinations": None}
    try:
        current = _current(name)
    except SaltInvocationError as err:
        ret.update(result=False, comment=str(err))
        return ret
    return _converge(ret, current, {name: settings}, what=f"service {name}")[0]


def service_absent(name):
    """The virtual service ``name`` does not exist (its connections are cut).

    name
        The service's spec (``tcp:10.10.24.88:80``).

    .. code-block:: yaml

        old-vip:
          ipvs.service_absent:
            - name: tcp:10.10.24.90:80
    """
    ret = _ret(name)
    try:
        current = __salt__["ipvs.get_service"](name)
    except SaltInvocationError as err:
        ret.update(result=False, comment=str(err))
        return ret
    if current is None:
        ret["comment"] = f"service {name} is absent"
        return ret
    ret["changes"] = {name: {"old": {f: current[f] for f in lvstun.ipvs.SERVICE_FIELDS}, "new": None}}
    if __opts__["test"]:
        ret.update(result=None, comment=f"service {name} would be deleted")
        return ret
    __salt__["ipvs.delete_service"](name)
    ret["comment"] = f"service {name} deleted"
    return ret


def dest_present(name, service, forward="tunnel", weight=1, u_threshold=0, l_threshold=0, tun_type="ipip",
                 tun_port=0, tun_flags=None):
    """Destination ``name`` of ``service`` exists with these settings.

    name
        ``address:port`` (``[address]:port`` for IPv6).
    service
        The service's spec; it must exist (``ipvs.service_present``).
    forward
        ``tunnel`` (default), ``route`` (direct routing), ``masq`` (NAT).
    weight
        0-65535 (0: no new connection).
    u_threshold, l_threshold
        Connection thresholds (0: none).
    tun_type, tun_port, tun_flags
        A tunnel's encapsulation: ``ipip`` (default), ``gue`` (with ``tun_port``),
        ``gre``; flags ``nocsum``, ``csum``, ``remcsum``.

    .. code-block:: yaml

        web-rs1:
          ipvs.dest_present:
            - name: 10.10.24.21:80
            - service: tcp:10.10.24.88:80
            - weight: 2
    """
    ret = _ret(f"{service} -> {name}")
    try:
        current = _current(service)
    except SaltInvocationError as err:
        ret.update(result=False, comment=str(err))
        return ret
    if not current:
        ret.update(result=False, comment=f"service {service} does not exist: add it first (ipvs.service_present)")
        return ret
    have = current[0]
    dests = {lvstun.ipvs.join_hostport(d["address"], d["port"]): d for d in have["destinations"]}
    settings = {"scheduler": have["scheduler"], "flags": have["flags"], "persistent": have["persistent"],
                "netmask": have["netmask"], "destinations": {**{k: _as_settings(v) for k, v in dests.items()}}}
    settings["destinations"][name] = {"forward": forward, "weight": weight, "u_threshold": u_threshold,
                                      "l_threshold": l_threshold, "tun_type": tun_type, "tun_port": tun_port,
                                      "tun_flags": tun_flags}
    return _converge(ret, current, {service: settings}, what=f"destination {name} of {service}")[0]


def _as_settings(dest):
    return {k: dest[k] for k in lvstun.ipvs.DEST_FIELDS + lvstun.ipvs.TUNNEL_FIELDS if k in dest}


def dest_absent(name, service, drain=False, timeout=60):
    """Destination ``name`` of ``service`` is gone.

    name
        ``address:port``.
    service
        The service's spec.
    drain
        First weight 0 and wait for its connections to end (else cut at once).
    timeout
        Seconds a drain waits; past them the destination stays at weight 0 and the
        state fails.

    .. code-block:: yaml

        web-rs3-gone:
          ipvs.dest_absent:
            - name: 10.10.24.23:80
            - service: tcp:10.10.24.88:80
            - drain: true
    """
    ret = _ret(f"{service} -> {name}")
    try:
        svc = __salt__["ipvs.get_service"](service)
    except SaltInvocationError as err:
        ret.update(result=False, comment=str(err))
        return ret
    address, port = lvstun.ipvs.split_hostport(name)
    dest = next((d for d in (svc or {}).get("destinations", []) if (d["address"], d["port"]) == (str(address), port)),
                None)
    if dest is None:
        ret["comment"] = f"destination {name} of {service} is absent"
        return ret
    ret["changes"] = {ret["name"]: {"old": lvstun.ipvs._dest_view(dest), "new": None}}  # noqa: SLF001
    if __opts__["test"]:
        ret.update(result=None, comment=f"destination {name} of {service} would be {'drained and ' * drain}deleted")
        return ret
    if drain:
        result = __salt__["ipvs.drain"](service, name, timeout=timeout, delete=True)
        if not result["drained"]:
            ret["changes"] = {ret["name"]: {"old": {"weight": dest["weight"]}, "new": {"weight": 0, "draining": True}}}
            ret.update(result=False, comment=f"{name} still has {result['active']} active connections after "
                                             f"{timeout}s: left at weight 0")
            return ret
    else:
        __salt__["ipvs.delete_dest"](service, name)
    ret["comment"] = f"destination {name} of {service} deleted"
    return ret


def managed(name, services, remove="drain"):
    """The services this state owns are exactly ``services``, with exactly their
    destinations; services it never owned are never touched. Services and destinations
    removed from the list are drained (weight 0, deleted once they hold no connections:
    on this run or a later one) unless ``remove: delete``. Ownership is recorded per
    state ``name`` in the minion's cache. The table is first compared in the kernel's own
    terms (``ipvs.settings``): only the services that differ are read whole and planned;
    more than 1,000 changes are reported per service.

    name
        The owner's name: the services this state created are recorded under it.
    services
        ``{spec: {scheduler, flags, persistent, netmask, destinations: {dest: {forward,
        weight, u_threshold, l_threshold, tun_type, tun_port, tun_flags}}}}``.
    remove
        ``drain`` (default) or ``delete``: what becomes of owned services and
        destinations no longer listed.

    .. code-block:: yaml

        lvs-director-ipvs:
          ipvs.managed:
            - name: lvs-site
            - services:
                tcp:10.10.24.88:80:
                  scheduler: rr
                  destinations:
                    10.10.24.21:80: {weight: 1}
    """
    ret = _ret(name)
    if remove not in ("drain", "delete"):
        ret.update(result=False, comment=f"remove: {remove!r} must be drain or delete")
        return ret
    record = lvstun.records.IPVS_MANAGED.named(name)
    owned = lvstun.records.load(__opts__, record)
    try:
        # First the table's settings, compared in the kernel's own terms: only the
        # services that differ (and owned ones no longer wanted) are read whole and planned.
        wanted = lvstun.ipvs.wanted(services or {})
        same = lvstun.ipvs.unchanged(wanted, __salt__["ipvs.settings"](sorted(wanted), wanted) if wanted else {})
        desired = lvstun.ipvs.records(wanted, [spec for spec in wanted if spec not in same])
    except lvstun.ipvs.SpecError as err:
        ret.update(result=False, comment=str(err))
        return ret
    others = sorted({lvstun.ipvs.service_spec(svc) for svc in desired} | (set(owned) - set(wanted)))
    current = _current(others) if others else []
    ret, _, present = _converge(ret, current, desired, [spec for spec in owned if spec not in same], remove,
                                what=f"the services of {name}", wanted=wanted)
    if not __opts__["test"]:
        # Also after a failure: services it created before the failure are its own.
        keep = lvstun.ipvs.still_owned(present | same, set(wanted), owned)
        if keep != owned:
            lvstun.records.store(__opts__, record, keep)
    return ret


def owned_absent(name):
    """Every service the state ``ipvs.managed`` of the same ``name`` created is gone
    (deleted, not drained: the host is leaving the site); others are untouched.

    name
        The ``ipvs.managed`` state's name whose services go.

    .. code-block:: yaml

        lvs-clean-ipvs:
          ipvs.owned_absent:
            - name: lvs-site
    """
    if not lvstun.records.load(__opts__, lvstun.records.IPVS_MANAGED.named(name)):
        ret = _ret(name)
        ret.update(result=True, comment=f"no IPVS service owned by {name}")
        return ret
    return managed(name, {}, remove="delete")


def sync_daemons(name, interface, sync_id=1, group=None):
    """A master and a backup connection sync daemon run on ``interface`` with
    ``sync_id`` (several directors: a flow that the router moves keeps its real server).

    name
        The state's ID (it names the report only).
    interface
        The NIC the directors sync over (the LAN's).
    sync_id
        The site's sync id (0-255): directors of one site share it.
    group
        The multicast group (default: the kernel's, 224.0.0.81; an IPv6 site's is IPv6).

    .. code-block:: yaml

        lvs-director-sync:
          ipvs.sync_daemons:
            - interface: eth0
            - sync_id: 1
            - group: ff02::4c56
    """
    ret = _ret(name)
    return lvstun.converge.converge(
        ret, __opts__["test"], lambda: __salt__["ipvs.sync_check"](interface, sync_id, group),
        lambda: __salt__["ipvs.sync_apply"](interface, sync_id, group), "the IPVS connection sync")


def sync_daemons_absent(name):
    """The connection sync daemons the pack started are stopped (one director left, or
    the host leaves the site); daemons it did not start are left alone.

    name
        The state's ID (it names the report only).

    .. code-block:: yaml

        lvs-director-sync:
          ipvs.sync_daemons_absent: []
    """
    ret = _ret(name)
    return lvstun.converge.converge(
        ret, __opts__["test"], lambda: __salt__["ipvs.sync_check_absent"](), lambda: __salt__["ipvs.sync_forget"](),
        "the IPVS connection sync")
