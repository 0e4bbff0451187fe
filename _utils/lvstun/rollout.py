"""A rolling maintenance's run: each batch of hosts through its steps, one after the
other, through the master.

The plan is :mod:`lvstun.rolling` (plain data: batches, the floor, what counts as idle,
whole and healthy); this module runs a batch against a :class:`Master`: the few things
the ``lvs`` runner does for it in Salt (ask minions, drain and undrain, the router's
view of its directors, keep the rolling's record, say a line, fire a hook). A real
server's batch: ``drain`` (on every director, never below a service's floor), ``idle``
(its connections finished), ``action`` (an SLS and/or a reboot), ``healthy`` (its own
report after the action and every director's path checks), ``undrain``. A director's:
out of the router's group, the action, its table whole, back in the group.

.. code-block:: python

    stopped = lvstun.rollout.run_batch(master, site, ["rs1"], progress, plan)
"""

import dataclasses
import time
from collections.abc import Callable

from . import health, hooks, rolling

BOOT_ID = "/proc/sys/kernel/random/boot_id"  # a new one at every boot: a reboot happened
WAIT_STEP = 1.0  # seconds between two looks at what a step waits for


@dataclasses.dataclass
class Master:
    """What a rolling needs of the master, for one site.

    cmd(target, fun, args=(), **kwargs): ``LocalClient.cmd``'s answers by minion id;
    drain(name, reason=...), undrain(name): a host's maintenance drain (``lvs.drain``);
    drain_director(name, timeout): ``{"idle": bool, "waited": s}`` once out of the
    router's group; router_view(): ``(up, drained)`` of the router's directors;
    record(): the site's health record; store(progress): keep the rolling's record;
    say(text): a line for the operator; fire(tag, data): a hook."""

    cmd: Callable
    drain: Callable
    undrain: Callable
    drain_director: Callable
    router_view: Callable
    record: Callable
    store: Callable
    say: Callable
    fire: Callable


class Stop(Exception):
    """A step's reason to stop the rolling (the master refused, a host is unknown ...)."""


def run_batch(master, site, group, progress, plan):
    """One batch through every step; the reason it stopped, or None (``progress``: the
    rolling's record, kept at each step; ``plan``: its settings, ``timeout``,
    ``on_timeout``, ``action``, ``reboot``, ``reboot_timeout``)."""
    directors = sorted(host.minion_id for host in site.directors)
    if site.role_of(group[0]) == "director":
        steps = (("drain", _director_drain), ("action", _action), ("healthy", _director_healthy),
                 ("undrain", _director_undrain))
    else:
        steps = (("drain", _drain), ("idle", _idle), ("action", _action), ("healthy", _healthy),
                 ("undrain", _undrain))
    for name, run in steps:
        progress.update(current=group, step=name, stopped=None, at=time.time())
        master.store(progress)
        master.fire(hooks.PREFIX + "rolling/step", {"site": site.name, "hosts": group, "step": name,
                                                    "reason": plan["action"] or "reboot", "at": time.time()})
        try:
            stopped = run(master, site, group, directors, plan)
        except Stop as err:
            stopped = str(err)
        if stopped:
            return stopped
    progress["done"] = [*progress["done"], *group]
    return None


def wait(predicate, timeout, step=WAIT_STEP):
    """Seconds until ``predicate()``; None after ``timeout`` seconds."""
    began = time.monotonic()
    while not predicate():
        if time.monotonic() - began >= timeout:
            return None
        time.sleep(step)
    return round(time.monotonic() - began, 1)


def _awaited(master, predicate, plan, who, done, not_done, why=""):
    """Wait (at most the rolling's timeout) for ``predicate``: None, with ``who: done
    (seconds)`` said; or the reason the rolling stops (``not_done within N s why``)."""
    waited = wait(predicate, plan["timeout"])
    if waited is None:
        return f"{not_done} within {plan['timeout']:g} s{why}"
    master.say(f"{who}: {done} ({waited} s)")
    return None


def applied(answer):
    """Whether a ``state.apply`` answer is a success (every state's result True)."""
    return isinstance(answer, dict) and bool(answer) and all(
        isinstance(state, dict) and state.get("result") is True for state in answer.values())


def _drain(master, site, group, directors, plan):
    record = master.record()
    problems = rolling.floor_problems(site, record, group)
    if problems and not set(group) <= set(record["maintenance"]):  # a resumed batch drained already
        return "; ".join(problems)
    for name in group:
        master.drain(name, reason=f"rolling: {plan['action'] or 'reboot'}")
    master.say(f"{', '.join(group)}: drained on every director")
    return None


def _idle(master, site, group, directors, plan):
    addresses = {site.hosts[name].address for name in group}
    waited = wait(lambda: rolling.idle(rolling.connections(
        master.cmd(directors, "ipvs.list", tgt_type="list", timeout=15), addresses)), plan["timeout"])
    if waited is None and plan["on_timeout"] == "stop":
        return f"connections still open after {plan['timeout']:g} s"
    master.say(f"{', '.join(group)}: " + (f"no connection left ({waited} s)" if waited is not None else
                                           "connections still open, going on (on_timeout=continue)"))
    return None


def _action(master, site, group, directors, plan):
    plan["since"] = since = time.time()
    if plan["action"]:
        answers = master.cmd(group, "state.apply", [plan["action"]], tgt_type="list", timeout=plan["timeout"])
        failed = [name for name in group if not applied(answers.get(name))]
        if failed:
            return f"state.apply {plan['action']} failed on {', '.join(failed)}"
        master.say(f"{', '.join(group)}: applied {plan['action']} ({round(time.time() - since, 1)} s)")
    if plan["reboot"]:
        before = _boot_ids(master, group)
        silent = [name for name in group if name not in before]
        if silent:
            return f"{', '.join(silent)} did not say its boot id ({BOOT_ID}) before the reboot"
        master.cmd(group, "system.reboot", tgt_type="list", timeout=15)

        def rebooted():  # each answers from a new boot (however short its time down)
            now = _boot_ids(master, group)
            return all(now.get(name, before[name]) != before[name] for name in group)

        if wait(rebooted, plan["reboot_timeout"]) is None:
            return f"not back within {plan['reboot_timeout']:g} s of the reboot (no answer from a new boot)"
        master.say(f"{', '.join(group)}: back after the reboot ({round(time.time() - since, 1)} s)")
    return None


def _boot_ids(master, group):
    """``{minion: its kernel's boot id}`` of those of ``group`` that answer now."""
    answers = master.cmd(group, "file.read", [BOOT_ID], tgt_type="list", timeout=health.ASK_TIMEOUT)
    return {name: answers[name].strip() for name in group
            if isinstance(answers.get(name), str) and answers[name].strip()}


def _healthy(master, site, group, directors, plan):
    since = plan["since"]

    def healthy():
        reports = {name: master.cmd(name, "lvs_health.report", timeout=health.ASK_TIMEOUT).get(name) for name in group}
        if not all(rolling.back_healthy(reports[name], site.backed_by(name), since) for name in group):
            return False
        paths = master.cmd(directors, "lvs_health.local", tgt_type="list", timeout=15)
        return all(rolling.path_clear(paths, name, directors) for name in group)

    return _awaited(master, healthy, plan, ", ".join(group), "healthy on every director", "not healthy",
                    " (its own report, or a director's path checks)")


def _undrain(master, site, group, directors, plan):
    for name in group:
        master.undrain(name)
    master.say(f"{', '.join(group)}: undrained")
    return None


def _director_drain(master, site, group, directors, plan):
    """A director out of the router's group (refused when it is the last one up), its
    forwarding stopped."""
    (name,) = group
    drained = master.drain_director(name, plan["timeout"])
    if not drained["idle"] and plan["on_timeout"] == "stop":
        return f"still forwarding after {plan['timeout']:g} s out of the router's group"
    master.say(f"{name}: out of the router's group, " + ("no packet forwarded any more" if drained["idle"] else
                                                         "still forwarding, going on (on_timeout=continue)")
               + f" ({drained['waited']} s)")
    return None


def _director_healthy(master, site, group, directors, plan):
    """The director answers with its table whole (every service and destination) and its
    own path checks' verdicts."""
    (name,) = group

    def ready():
        answer = master.cmd(name, "lvs_health.status", timeout=15).get(name)
        return isinstance(answer, dict) and isinstance(answer.get("local"), dict) and \
            rolling.table_whole(site, answer.get("table"))

    return _awaited(master, ready, plan, name, "table whole, path checks running", "its table is not whole")


def _director_undrain(master, site, group, directors, plan):
    """Back in the router's group, and taking flows again (the router's probes)."""
    (name,) = group
    master.undrain(name)

    def back():
        up, drained = master.router_view()
        return up.get(name) is True and name not in drained

    return _awaited(master, back, plan, name, "back in the router's group", "not back in the router's group")
