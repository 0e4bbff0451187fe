"""Cisco IOS lines for the front router: what the site wants, what a running config holds,
and the commands that take the device from one to the other without touching anything
the pack does not own.

A line is a pair ``(context, text)``: context ``None`` for a global line, or its block's
header (``"interface GigabitEthernet0/1"``) for a line inside a block. The pack manages
``ip nat inside source static VIP PUBLIC`` (one per VIP with its own public address),
``ip nat inside`` / ``ip nat outside`` on the interfaces the pillar names, and, with
several directors, ``ip route VIP 255.255.255.255 DIRECTOR track T`` (an IPv6 site:
``ipv6 route VIP/128 DIRECTOR track T``, and no NAT) with what tracks each director:
an IP SLA entry (``ip sla N``, its ``icmp-echo`` block and its ``ip sla schedule N``)
and a track object (``track T ip sla N reachability``).

An SLA entry and a track object are *objects*: written and removed whole (:class:`Step`).
IOS refuses to change a scheduled SLA entry ("Entry already running and cannot be
modified"): any difference is ``no ip sla N`` (which takes its schedule too) and the
whole entry again; a track object is rewritten the same way (``no track T``).
"""

import re
from dataclasses import dataclass, field

STATIC = "ip nat inside source static"
_STATIC = re.compile(r"^ip nat inside source static (\S+) (\S+)$")
_INTERFACE_NAT = ("ip nat inside", "ip nat outside")
_SLA = re.compile(r"^ip sla (?:schedule )?(\d+)(?: |$)")
_TRACK = re.compile(r"^track (\d+) ")
# What IOS leaves out of the running config (its defaults) for an ICMP echo entry.
SLA_DEFAULTS = {"threshold": 5000, "timeout": 5000, "frequency": 60}
_BLOCK_ORDER = {"icmp-echo": 0, "threshold": 1, "timeout": 2, "frequency": 3}


def desired(cfg):
    """The lines the router's role config (``lvstun.roles.router``) asks for, in the
    order they are added: interfaces, static NAT, SLA entries, track objects, routes."""
    nat = cfg["nat"]
    lines = []
    if nat:  # (None: an IPv6 site, routed without NAT)
        lines += [(f"interface {nat['inside_interface']}", "ip nat inside"),
                  (f"interface {nat['outside_interface']}", "ip nat outside")]
        lines += [(None, f"{STATIC} {m['vip']} {m['public']}") for m in nat["mappings"]]
    tracking = cfg.get("tracking")
    tracks = {}
    if tracking:
        for address, ids in tracking["directors"].items():
            lines += _sla_lines(tracking, address, ids["sla"])
        for address, ids in tracking["directors"].items():
            lines += _track_lines(tracking, ids)
            tracks[address] = f" track {ids['track']}"
    for prefix, route in cfg.get("routes", {}).items():
        lines += [(None, _route(prefix, via) + tracks.get(via, "")) for via in route["via"]]
    return lines


def _route(prefix, via):
    """A VIP's static route through ``via`` as IOS writes it (``prefix``: the VIP's /32
    or /128)."""
    vip = prefix.split("/")[0]
    return f"ipv6 route {prefix} {via}" if ":" in vip else f"ip route {vip} 255.255.255.255 {via}"


def _sla_lines(tracking, address, number):
    head = f"ip sla {number}"
    timeout = tracking["timeout"]
    settings = {"threshold": timeout, "timeout": timeout, "frequency": tracking["frequency"]}
    return ([(None, head), (head, f"icmp-echo {address} source-interface {tracking['source_interface']}")]
            + [(head, f"{key} {value}") for key, value in settings.items() if value != SLA_DEFAULTS[key]]
            + [(None, f"ip sla schedule {number} life forever start-time now")])


def _track_lines(tracking, ids):
    head = f"track {ids['track']} ip sla {ids['sla']} reachability"
    delays = [f"{way} {tracking[f'delay_{way}']}" for way in ("down", "up") if tracking[f"delay_{way}"]]
    return [(None, head)] + ([(head, "delay " + " ".join(delays))] if delays else [])


def object_of(line):
    """``("ip sla", N)`` or ``("track", T)`` for a line of an SLA entry or a track
    object (its header, block or schedule), else None."""
    ctx, text = line
    head = text if ctx is None else ctx
    for kind, pattern in (("ip sla", _SLA), ("track", _TRACK)):
        match = pattern.match(head)
        if match:
            return kind, int(match.group(1))
    return None


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
    if object_of(line) is not None:
        return True
    if ctx is None:
        return text.startswith((f"{STATIC} ", "ip route ", "ipv6 route "))
    return ctx.startswith("interface ") and text in _INTERFACE_NAT


def statics(lines):
    """``{(inside, outside): line}`` for the static NAT lines among ``lines``."""
    found = {}
    for line in lines:
        match = _STATIC.match(line[1]) if line[0] is None else None
        if match:
            found[match.groups()] = line
    return found


@dataclass(frozen=True)
class Step:
    """One change in config mode: the lines sent (:attr:`send`), the lines that take it
    back (:attr:`undo`), and the config lines it puts on or takes off the device."""

    send: tuple
    undo: tuple
    added: tuple = ()
    removed: tuple = ()

    def shown(self):
        return " / ".join(line for line in self.send if line != "exit")

    def leaves_part(self, refused):
        """Whether the device keeps part of this step when it refuses its line
        ``refused``: an object whose header it took (a rollback then undoes this step
        too)."""
        return bool(self.added) and object_of(self.added[0]) is not None and refused != self.send[0]


def _line_step(line, remove):
    ctx, text = line

    def block(cmd):
        return (cmd,) if ctx is None else (ctx, cmd, "exit")

    if remove:
        return Step(block(f"no {text}"), block(text), removed=(line,))
    return Step(block(text), block(f"no {text}"), added=(line,))


def _object_send(lines):
    """An object's lines as sent: its header, its block, ``exit``, then its other global
    lines (an SLA entry's schedule)."""
    lines = sorted(lines, key=_object_order)
    head = lines[0][1]
    inner = [text for ctx, text in lines if ctx == head]
    return (head, *inner, "exit", *[text for ctx, text in lines[1:] if ctx is None])


def _object_order(line):
    """Header first, then its block in the order IOS takes it (the probe's kind before
    its settings; threshold, timeout, frequency: each must fit those set before), then
    the schedule."""
    ctx, text = line
    if ctx is None:
        return (2 if text.startswith("ip sla schedule ") else 0, 0, text)
    return (1, _BLOCK_ORDER.get(text.split()[0], len(_BLOCK_ORDER)), text)


def _object_step(key, lines, remove):
    kind, number = key
    drop = (f"no {kind} {number}",)
    if remove:
        return Step(drop, _object_send(lines), removed=tuple(sorted(lines, key=_object_order)))
    return Step(_object_send(lines), drop, added=tuple(lines))


@dataclass
class Plan:
    remove: list = field(default_factory=list)  # lines to take out (owned ones only)
    add: list = field(default_factory=list)  # desired lines missing from the device
    conflicts: list = field(default_factory=list)  # why the plan cannot be applied
    steps: list = field(default_factory=list)  # the changes, in order (Step)

    def commands(self):
        """Every line sent in config mode, in order."""
        return [line for step in self.steps for line in step.send]


def _objects(lines):
    found = {}
    for line in lines:
        key = object_of(line)
        if key is not None:
            found.setdefault(key, []).append(line)
    return found


def plan(want, running, owned):
    """Compare: ``want`` (:func:`desired`), ``running`` (:func:`parse`), ``owned`` (the
    lines the pack wrote or adopted before). Only owned lines are ever removed; a
    desired line that would collide with a line the pack does not own is a conflict.

    Steps, in order: owned stale lines removed (static NAT first: IOS refuses a second
    mapping of an address; routes before the track objects they follow), stale or
    changed objects removed (tracks, then SLA entries), then what is missing, in the
    order of ``want``."""
    want_set, owned_set = set(want), set(owned)
    result = Plan()
    plain = [line for line in want if object_of(line) is None]
    result.add = [line for line in plain if line not in running]
    result.remove = sorted((line for line in owned if line in running and line not in want_set
                            and object_of(line) is None), key=line_order)
    leaving = set(result.remove)
    result.conflicts += _line_conflicts(result.add, running, leaving)
    wanted, have = _objects(want), _objects(running)
    drop, write = _plan_objects(result, wanted, have, owned_set)
    result.steps = [_line_step(line, remove=True) for line in sorted(leaving, key=_removal_order)]
    result.steps += [_object_step(key, have[key], remove=True)
                     for key in sorted(drop, key=lambda k: (k[0] != "track", k[1]))]
    started = set()
    for line in want:
        key = object_of(line)
        if key is None and line not in running:
            result.steps.append(_line_step(line, remove=False))
        elif key in write and key not in started:
            started.add(key)
            result.steps.append(_object_step(key, wanted[key], remove=False))
    return result


def _line_conflicts(adding, running, leaving):
    """Lines to add that collide with lines the pack does not own: a static NAT of the
    same VIP or public address, the other NAT side on the same interface."""
    conflicts = []
    kept = {pair: line for pair, line in statics(running).items() if line not in leaving}
    for (vip, public), line in statics(adding).items():
        for (have_in, have_out), have in kept.items():
            if have_in == vip or have_out == public:
                conflicts.append(f"'{line[1]}' collides with '{have[1]}' in the running config, a line the "
                                 f"pack does not own: remove or change it on the device first")
    for context, text in adding:
        if context is not None and text in _INTERFACE_NAT:
            other = next(t for t in _INTERFACE_NAT if t != text)
            if (context, other) in running and (context, other) not in leaving:
                conflicts.append(f"'{context}' holds '{other}' (not the pack's), the site wants '{text}' there")
    return conflicts


def _plan_objects(result, wanted, have, owned_set):
    """The objects (IP SLA entries, tracks) that differ: their lines into ``result``;
    returns ``(drop, write)``, the objects removed whole and those written whole."""
    drop, write = [], set()
    for key, lines in wanted.items():
        there = set(have.get(key, ()))
        if there == set(lines):
            continue
        if there and not there & owned_set:
            setting = "lvs:ha:base" if key[0] == "ip sla" else "lvs:ha:track_base"
            result.conflicts.append(
                f"'{key[0]} {key[1]}' is on the device and not the pack's ({render(there)}): remove it "
                f"there or move {setting}")
            continue
        if there:
            drop.append(key)
        write.add(key)
        result.remove += sorted(there - set(lines), key=line_order)
        result.add += [line for line in lines if line not in there]
    for key, there in have.items():
        if key not in wanted and set(there) & owned_set:
            drop.append(key)
            result.remove += sorted(there, key=line_order)
    return drop, write


def _removal_order(line):
    """Static NAT first (IOS refuses a second mapping of an address), then the rest."""
    return (not line[1].startswith(STATIC), *line_order(line))


def line_order(line):
    """Sort key: global lines first, then by block."""
    return (line[0] is not None, line[0] or "", line[1])


def owned_after(owned, applied_plan, want):
    """The lines the pack owns once ``applied_plan`` went through: the wanted ones (the
    device now holds them all) and none of those it removed."""
    return sorted((set(owned) - set(applied_plan.remove)) | set(want), key=line_order)


def owned_after_steps(owned, steps):
    """The lines the pack owns once only ``steps`` went through: what they added, less
    what they removed."""
    result = set(owned)
    for step in steps:
        result -= set(step.removed)
        result |= set(step.added)
    return sorted(result, key=line_order)


def render(lines):
    """Lines as the running config shows them (``interface X`` / `` ip nat inside``)."""
    return [text if ctx is None else f"{ctx} / {text}" for ctx, text in sorted(lines, key=line_order)]
