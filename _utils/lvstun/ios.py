"""Cisco IOS lines for the front router: what the site wants, what a running config holds,
and the commands that take the device from one to the other without touching anything
the pack does not own.

A line is a pair ``(context, text)``: context ``None`` for a global line, or its block's
header (``"interface GigabitEthernet0/1"``) for a line inside a block. The pack manages
three kinds of lines: ``ip nat inside source static VIP PUBLIC`` (one per VIP with its
own public address), ``ip nat inside`` / ``ip nat outside`` on the interfaces the pillar
names, and, with several directors, ``ip route VIP 255.255.255.255 DIRECTOR``.
"""

import re
from dataclasses import dataclass, field

STATIC = "ip nat inside source static"
_STATIC = re.compile(r"^ip nat inside source static (\S+) (\S+)$")
_INTERFACE_NAT = ("ip nat inside", "ip nat outside")


def desired(cfg):
    """The lines the router's role config (``lvstun.roles.router``) asks for, in the
    order they are added: interfaces, static NAT, routes."""
    nat = cfg["nat"]
    lines = [(f"interface {nat['inside_interface']}", "ip nat inside"),
             (f"interface {nat['outside_interface']}", "ip nat outside")]
    lines += [(None, f"{STATIC} {m['vip']} {m['public']}") for m in nat["mappings"]]
    for prefix, route in cfg.get("routes", {}).items():
        vip = prefix.split("/")[0]
        lines += [(None, f"ip route {vip} 255.255.255.255 {via}") for via in route["via"]]
    return lines


def parse(running_config):
    """The set of lines of a ``show running-config`` answer."""
    lines, context = set(), None
    for raw in running_config.splitlines():
        if not raw.strip() or raw.strip() == "!":
            if not raw.startswith(" "):
                context = None
            continue
        if raw.startswith(" "):
            if context is not None:
                lines.add((context, raw.strip()))
            continue
        text = raw.rstrip()
        lines.add((None, text))
        context = text
    return lines


def is_managed_kind(line):
    """Whether ``line`` is of a kind the pack manages (not whether the pack owns it)."""
    ctx, text = line
    if ctx is None:
        return text.startswith((f"{STATIC} ", "ip route "))
    return ctx.startswith("interface ") and text in _INTERFACE_NAT


def statics(lines):
    """``{(inside, outside): line}`` for the static NAT lines among ``lines``."""
    found = {}
    for line in lines:
        match = _STATIC.match(line[1]) if line[0] is None else None
        if match:
            found[match.groups()] = line
    return found


@dataclass
class Plan:
    remove: list = field(default_factory=list)  # owned lines to take out, as lines
    add: list = field(default_factory=list)  # desired lines missing from the device
    conflicts: list = field(default_factory=list)  # why the plan cannot be applied

    def changes(self):
        """The commands in order: removals first (IOS refuses a second mapping of an
        address), then additions. Each is ``(context, command)``."""
        return ([(ctx, f"no {text}") for ctx, text in self.remove]
                + [(ctx, text) for ctx, text in self.add])


def plan(want, running, owned):
    """Compare: ``want`` (:func:`desired`), ``running`` (:func:`parse`), ``owned`` (the
    lines the pack wrote or adopted before). Only owned lines are ever removed; a
    desired line that would collide with a line the pack does not own is a conflict."""
    want_set = set(want)
    result = Plan()
    result.add = [line for line in want if line not in running]
    result.remove = sorted((line for line in owned if line in running and line not in want_set),
                           key=line_order)
    leaving = set(result.remove)
    kept = {pair: line for pair, line in statics(running).items() if line not in leaving}
    for (vip, public), line in statics(result.add).items():
        for (have_in, have_out), have in kept.items():
            if have_in == vip or have_out == public:
                result.conflicts.append(
                    f"'{line[1]}' collides with '{have[1]}' in the running config, a line the "
                    f"pack does not own: remove or change it on the device first")
    for context, text in result.add:
        if context is not None and text in _INTERFACE_NAT:
            other = next(t for t in _INTERFACE_NAT if t != text)
            if (context, other) in running and (context, other) not in leaving:
                result.conflicts.append(
                    f"'{context}' holds '{other}' (not the pack's), the site wants '{text}' there")
    return result


def line_order(line):
    """Sort key: global lines first, then by block."""
    return (line[0] is not None, line[0] or "", line[1])


def blocks(changes):
    """Config-mode line blocks for ``changes``: a global command alone, an interface
    command inside ``interface X`` ... ``exit``."""
    return [[cmd] if ctx is None else [ctx, cmd, "exit"] for ctx, cmd in changes]


def inverse(change):
    """The command that undoes ``change`` (for a rollback)."""
    ctx, cmd = change
    return (ctx, cmd[3:] if cmd.startswith("no ") else f"no {cmd}")


def owned_after(owned, applied_plan, want):
    """The lines the pack owns once ``applied_plan`` went through: the wanted ones (the
    device now holds them all) and none of those it removed."""
    return sorted((set(owned) - set(applied_plan.remove)) | set(want), key=line_order)


def owned_after_changes(owned, changes):
    """The lines the pack owns once only ``changes`` (``(context, command)``) went
    through: what it added, less what it removed."""
    result = set(owned)
    for ctx, cmd in changes:
        if cmd.startswith("no "):
            result.discard((ctx, cmd[3:]))
        else:
            result.add((ctx, cmd))
    return sorted(result, key=line_order)


def render(lines):
    """Lines as the running config shows them (``interface X`` / `` ip nat inside``)."""
    return [text if ctx is None else f"{ctx} / {text}" for ctx, text in sorted(lines, key=line_order)]
