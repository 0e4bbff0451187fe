"""The front router's NAT on a Cisco IOS device, through the ``lvs_ios`` proxy minion.

The Cisco form of the seed's ``ip nat inside source static 10.10.24.88 112.2.21.88``,
rendered from the site's pillar: one static line per VIP with its own public address,
``ip nat inside`` / ``ip nat outside`` on the LAN and WAN interfaces, and with several
directors a host route per VIP through each, tracked by an IP SLA probe of that
director (``tracking``: ``lvstun.roles.ios_tracking``), so the device stops routing to a
director that stops answering, by itself. The running config is read and compared;
only missing lines are sent, and only stale lines the pack wrote (or adopted, being
exactly what the site wants) are removed: other NAT and config are never touched.
The lines owned are recorded in the proxy's cache (``lvs/iosnat-owned.json``).

A line the device refuses stops the change: what was sent before it is rolled back
(``no`` of each, in reverse; a removed SLA entry or track object is written again) and the error carries the device's words. A session lost
midway cannot be rolled back: the error then says which lines the device may hold; the
next apply reads the running config again and finishes or repairs the change.

CLI Example:

.. code-block:: bash

    salt router iosnat.running
    salt router iosnat.check '{"inside_interface": "GigabitEthernet0/0", "outside_interface": "GigabitEthernet0/1", "mappings": [{"vip": "10.10.24.88", "public": "112.2.21.88"}]}'
"""

import salt.utils.platform
from salt.exceptions import CommandExecutionError

import lvstun.drift
import lvstun.ios
import lvstun.records
from lvstun.fresh import fresh

fresh(lvstun.drift)
fresh(lvstun.ios)
fresh(lvstun.records)

__virtualname__ = "iosnat"


def __virtual__():
    if not salt.utils.platform.is_proxy():
        return False, "iosnat runs on a salt-proxy minion of proxytype lvs_ios"
    if (__opts__.get("proxy") or {}).get("proxytype") != "lvs_ios":
        return False, "iosnat needs the lvs_ios proxy (proxy:proxytype: lvs_ios)"
    return __virtualname__


def _owned():
    return [tuple(line) for line in lvstun.records.load(__opts__, lvstun.records.IOSNAT_OWNED)]


def _running():
    return lvstun.ios.parse(__proxy__["lvs_ios.show"]("show running-config"))


def running():
    """The lines of the running config of the kinds the pack manages (static NAT, VIP
    routes, ``ip nat inside|outside``), and which of them the pack owns.

    CLI Example:

    .. code-block:: bash

        salt router iosnat.running
    """
    lines = _running()
    owned = set(_owned())
    managed = [line for line in lines if lvstun.ios.is_managed_kind(line)]
    return {"lines": lvstun.ios.render(managed), "owned": lvstun.ios.render([line for line in managed if line in owned])}


def _plan(nat, routes, tracking):
    want = lvstun.ios.desired({"nat": nat, "routes": routes or {}, "tracking": tracking})
    current = _running()
    return want, current, lvstun.ios.plan(want, current, _owned())


def _unsaved(want, plan, save):
    """Whether the startup config misses what the running config now holds (when asked
    to save): a wanted line absent, or a removed one still there."""
    if not save:
        return False
    startup = lvstun.ios.parse(__proxy__["lvs_ios.show"]("show startup-config"))
    return bool(plan.add or plan.remove) or any(line not in startup for line in want) or any(
        line in startup for line in set(_owned()) - set(want))


def check(nat, routes=None, save=False, tracking=None):
    """Return the drifts (empty when the device is as wanted): ``ios-line`` records
    (:mod:`lvstun.drift`), a line present or absent, and ``ios-saved`` when the startup
    config must be written; ``iosnat.commands`` lists the exact lines to send. Raises
    ``CommandExecutionError`` when a wanted line collides with one the pack does not own.

    nat
        ``{inside_interface, outside_interface, mappings: [{public, vip}]}``.
    routes
        ``{VIP/32: {via: [director, ...]}}`` (several directors), else none.
    tracking
        The directors' IP SLA probes and track objects (``lvstun.roles.ios_tracking``).
    save
        Whether the startup config must hold the running one.

    CLI Example:

    .. code-block:: bash

        salt router iosnat.check '{"inside_interface": "GigabitEthernet0/0", "outside_interface": "GigabitEthernet0/1", "mappings": []}'
    """
    want, _, plan = _plan(nat, routes, tracking)
    if plan.conflicts:
        raise CommandExecutionError("; ".join(plan.conflicts))
    drifts = [lvstun.drift.make("ios-line", lvstun.ios.render([line])[0], "absent", "present") for line in plan.remove]
    drifts += [lvstun.drift.make("ios-line", lvstun.ios.render([line])[0], "present", "absent") for line in plan.add]
    if _unsaved(want, plan, save):
        drifts.append(lvstun.drift.make("ios-saved", "startup-config", "saved", "differs from the running config"))
    return drifts


def commands(nat, routes=None, tracking=None):
    """The exact lines ``apply`` would send in config mode, in order.

    nat, routes, tracking
        As :func:`check` takes them.

    CLI Example:

    .. code-block:: bash

        salt router iosnat.commands '{"inside_interface": "GigabitEthernet0/0", "outside_interface": "GigabitEthernet0/1", "mappings": []}'
    """
    return _plan(nat, routes, tracking)[2].commands()


def apply(nat, routes=None, save=False, tracking=None):
    """Send the missing lines and remove the stale owned ones; ``write memory`` when
    ``save``. Returns ``{"sent": [...], "saved": bool}``; raises
    ``CommandExecutionError`` with the device's words when it refuses a line (after
    rolling back this call's earlier lines) or the session is lost.

    nat, routes, save, tracking
        As :func:`check` takes them.

    CLI Example:

    .. code-block:: bash

        salt router iosnat.apply '{"inside_interface": "GigabitEthernet0/0", "outside_interface": "GigabitEthernet0/1", "mappings": [{"vip": "10.10.24.88", "public": "112.2.21.88"}]}' save=True
    """
    want, _, plan = _plan(nat, routes, tracking)
    if plan.conflicts:
        raise CommandExecutionError("; ".join(plan.conflicts))
    owned = _owned()
    if plan.steps:
        result = __proxy__["lvs_ios.configure"]([step.send for step in plan.steps])
        if result["error"]:
            _fail(plan.steps, result, owned)
    new_owned = lvstun.ios.owned_after(owned, plan, want)
    if new_owned != sorted(owned, key=lvstun.ios.line_order):
        lvstun.records.store(__opts__, lvstun.records.IOSNAT_OWNED, new_owned)
    saved = False
    if _unsaved(want, plan, save):
        __proxy__["lvs_ios.save"]()
        saved = True
    return {"sent": plan.commands(), "saved": saved}


def _fail(steps, result, owned):
    """Report a refused line or a lost session; roll back what can be rolled back."""
    done, error = steps[:result["applied"]], result["error"]
    said = f"'{error['line']}': {error['answer']}" if error["line"] else error["answer"]
    shown = [step.shown() for step in done]
    if error["lost"]:
        # The pack wrote these: remember them, so that stale ones can go next time.
        lvstun.records.store(__opts__, lvstun.records.IOSNAT_OWNED, lvstun.ios.owned_after_steps(owned, done))
        pending = steps[len(done)].shown() if len(done) < len(steps) else None
        raise CommandExecutionError(
            f"lost the session to the device at {said}; the device took {len(done)} of "
            f"{len(steps)} change(s): {shown}" + (f", and maybe '{pending}'" if pending else "")
            + "; nothing was rolled back: the next apply compares the running config again")
    # A refused line inside an object (an SLA entry's block, say) leaves the object half
    # written: it goes first.
    failed = steps[len(done)]
    undo = ([failed] if failed.leaves_part(error["line"]) else []) + list(reversed(done))
    if not undo:
        raise CommandExecutionError(f"the device refused {said}; nothing was changed")
    back = __proxy__["lvs_ios.configure"]([step.undo for step in undo])
    if back["error"]:
        lvstun.records.store(__opts__, lvstun.records.IOSNAT_OWNED, lvstun.ios.owned_after_steps(owned, done))
        raise CommandExecutionError(
            f"the device refused {said}; rolling back the {len(done)} change(s) sent before it "
            f"failed too at '{back['error']['line']}': {back['error']['answer']}: the device "
            f"holds part of the change: {shown}")
    raise CommandExecutionError(
        f"the device refused {said}; the {len(done)} change(s) sent before it were rolled "
        f"back ({shown}): the device is as it was")
