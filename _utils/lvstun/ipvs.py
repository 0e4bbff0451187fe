"""IPVS records as plain data: parsing, naming, formatting. No netlink here.

A virtual service is named by a spec string, as a user types it:

* ``tcp:10.10.24.88:80``, ``udp:[2001:db8::88]:53``, ``sctp:10.0.0.1:9``
* ``fwmark:5`` (IPv4) or ``fwmark6:5`` (IPv6)

and read back as a dict (see :func:`service_record`). A destination is ``address:port``
(``[v6]:port``). ``ipvsadm-save`` text can be parsed and produced, so users can migrate.
"""

import shlex

from .address import MAX_WEIGHT, PROTOCOLS, join_hostport
from .address import parse as parse_address

PROTOCOL_NAMES = {number: name for name, number in PROTOCOLS.items()}

# Forwarding methods (IP_VS_CONN_F_*); ipvsadm's -m/-i/-g and its listing words.
FORWARD = {"masq": 0, "local": 1, "tunnel": 2, "route": 3, "bypass": 4}
FORWARD_NAMES = {number: name for name, number in FORWARD.items()}
FORWARD_LISTING = {"masq": "Masq", "local": "Local", "tunnel": "Tunnel", "route": "Route", "bypass": "Bypass"}
TUN_TYPES = {"ipip": 0, "gue": 1, "gre": 2}
TUN_TYPE_NAMES = {number: name for name, number in TUN_TYPES.items()}
# Tunnel encapsulation flags (IP_VS_TUNNEL_ENCAP_FLAG_*): "nocsum" is the absence of the others.
TUN_FLAGS = {"nocsum": 0x0, "csum": 0x1, "remcsum": 0x2}


def tun_flag_names(value):
    """The names of a destination's tunnel flags value, as the kernel gives it (0: none)."""
    return sorted(name for name, bit in TUN_FLAGS.items() if bit and value & bit)

# Service flags (IP_VS_SVC_F_*). "persistent" follows the timeout; "hashed" is kernel-internal.
SVC_F_PERSISTENT, SVC_F_HASHED = 0x1, 0x2
SVC_FLAGS = {"ops": 0x4, "sched1": 0x8, "sched2": 0x10, "sched3": 0x20}
SCHED_FLAG_ALIASES = {
    "one-packet": "ops",
    "sh-fallback": "sched1", "mh-fallback": "sched1",
    "sh-port": "sched2", "mh-port": "sched2",
}



class SpecError(ValueError):
    """A spec or argument is malformed; the message says which and why."""


class Address(str):
    """An IP address in its canonical text form, with its ``version`` (4 or 6)."""

    version = 4


class _Address6(Address):
    version = 6


def _ip(text, what):
    """An ``Address``; parsed by the C library (a table of thousands of destinations is
    parsed at every state run)."""
    try:
        text, version = parse_address(text)
    except ValueError:
        raise SpecError(f"{what}: {text!r} is not an IP address") from None
    return Address(text) if version == 4 else _Address6(text)


def _port(text, what):
    try:
        port = int(text)
    except (TypeError, ValueError):
        raise SpecError(f"{what}: port {text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise SpecError(f"{what}: port {port} is out of range 0-65535")
    return port


def split_hostport(text, what="address"):
    """``10.0.0.1:80`` or ``[2001:db8::1]:80`` -> (Address, port)."""
    text = str(text)
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise SpecError(f"{what}: {text!r} must be [IPv6]:port")
    else:
        host, sep, port = text.rpartition(":")
        if not sep or ":" in host:
            raise SpecError(f"{what}: {text!r} must be address:port ([address]:port for IPv6)")
    return _ip(host, what), _port(port, what)


def parse_service(spec):
    """A service spec string -> its key dict ``{af, protocol, address, port, fwmark}``."""
    if isinstance(spec, dict):
        return {k: spec.get(k) for k in ("af", "protocol", "address", "port", "fwmark")}
    text = str(spec).strip()
    kind, sep, rest = text.partition(":")
    if not sep:
        raise SpecError(f"service {text!r}: must be PROTOCOL:ADDRESS:PORT or fwmark:N")
    kind = kind.lower()
    if kind in ("fwmark", "fwmark6"):
        try:
            mark = int(rest, 0)
        except ValueError:
            raise SpecError(f"service {text!r}: fwmark {rest!r} is not a number") from None
        if not 0 < mark < 2**32:
            raise SpecError(f"service {text!r}: fwmark must be 1 to 4294967295")
        return {"af": 6 if kind == "fwmark6" else 4, "protocol": None, "address": None, "port": None, "fwmark": mark}
    if kind not in PROTOCOLS:
        raise SpecError(f"service {text!r}: protocol {kind!r} is not one of tcp, udp, sctp, fwmark")
    address, port = split_hostport(rest, f"service {text!r}")
    return {"af": address.version, "protocol": kind, "address": str(address), "port": port, "fwmark": None}


def service_spec(key):
    """The spec string of a service key or record."""
    if key.get("fwmark"):
        return f"fwmark{'6' if key['af'] == 6 else ''}:{key['fwmark']}"
    return f"{key['protocol']}:{join_hostport(key['address'], key['port'])}"


def parse_dest(spec):
    """A destination spec ``address:port`` -> ``{address, port}``."""
    address, port = split_hostport(spec, f"destination {spec!r}")
    return {"address": str(address), "port": port}


def sched_flags_value(flags):
    """Flag names (or aliases) -> the kernel's bit mask; unknown names raise SpecError."""
    value = 0
    for name in flags or ():
        canonical = SCHED_FLAG_ALIASES.get(name, name)
        if canonical not in SVC_FLAGS:
            raise SpecError(f"scheduler flag {name!r} is not one of {', '.join(sorted(SVC_FLAGS))}")
        value |= SVC_FLAGS[canonical]
    return value


def sched_flags_names(value):
    return sorted(name for name, bit in SVC_FLAGS.items() if value & bit)


def check_weight(weight):
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= MAX_WEIGHT:
        raise SpecError(f"weight {weight!r} must be an integer from 0 to {MAX_WEIGHT}")
    return weight


def check_choice(value, choices, what):
    if value not in choices:
        raise SpecError(f"{what} {value!r} is not one of {', '.join(choices)}")
    return value


# ------------------------------------------------------------------ listing
def format_listing(services):
    """``ipvsadm -Ln``-like text for a list of service records with their dests."""
    lines = [
        "IP Virtual Server (salt-lvs-tun)",
        "Prot LocalAddress:Port Scheduler Flags",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
    ]
    for svc in services:
        if svc.get("fwmark"):
            head = f"FWM  {svc['fwmark']}{' IPv6' if svc['af'] == 6 else ''}"
        else:
            head = f"{svc['protocol'].upper():<4} {join_hostport(svc['address'], svc['port'])}"
        flags = ",".join(svc.get("flags") or [])
        line = f"{head} {svc['scheduler']}" + (f" ({flags})" if flags else "")
        if svc.get("persistent"):
            line += f" persistent {svc['persistent']}"
        lines.append(line)
        for dest in svc.get("destinations", []):
            lines.append(
                f"  -> {join_hostport(dest['address'], dest['port']):<28}"
                f"{FORWARD_LISTING[dest['forward']]:<8}{dest['weight']:<7}{dest['active']:<11}{dest['inactive']}"
            )
    return "\n".join(lines)


# ------------------------------------------------------------------ ipvsadm-save format
_FORWARD_OPTION = {"-g": "route", "--gatewaying": "route", "-i": "tunnel", "--ipip": "tunnel",
                   "-m": "masq", "--masquerading": "masq"}
_FORWARD_SAVE = {"route": "-g", "tunnel": "-i", "masq": "-m"}
_SAVE_TUN_FLAGS = {f"--tun-{name}": name for name in ("nocsum", "csum", "remcsum")}  # options without a value


def to_save(services):
    """The table as ``ipvsadm-save -n`` text."""
    out = []
    for svc in services:
        target = (f"-f {svc['fwmark']}" + (" -6" if svc["af"] == 6 else "") if svc.get("fwmark")
                  else f"{'-' + {'tcp': 't', 'udp': 'u', 'sctp': '-sctp-service'}[svc['protocol']]} "
                  f"{join_hostport(svc['address'], svc['port'])}")
        target = target.replace("---sctp-service", "--sctp-service")
        line = f"-A {target} -s {svc['scheduler']}"
        if svc.get("flags"):
            line += f" -b {','.join(svc['flags'])}"
        if svc.get("persistent"):
            line += f" -p {svc['persistent']}"
            if svc.get("netmask") and svc["netmask"] not in ("255.255.255.255", 128):
                line += f" -M {svc['netmask']}"
        out.append(line)
        for dest in svc.get("destinations", []):
            dline = f"-a {target} -r {join_hostport(dest['address'], dest['port'])} {_FORWARD_SAVE[dest['forward']]}"
            if dest["forward"] == "tunnel" and dest.get("tun_type", "ipip") != "ipip":
                dline += f" --tun-type {dest['tun_type']}"
                if dest.get("tun_port"):
                    dline += f" --tun-port {dest['tun_port']}"
                dline += "".join(f" --tun-{flag}" for flag in dest.get("tun_flags") or ["nocsum"])
            dline += f" -w {dest['weight']}"
            if dest.get("u_threshold"):
                dline += f" -x {dest['u_threshold']}"
            if dest.get("l_threshold"):
                dline += f" -y {dest['l_threshold']}"
            out.append(dline)
    return "\n".join(out) + ("\n" if out else "")


def _save_options(args, where):
    """The options of one ``ipvsadm-save`` line: ``{option: value}``, with ``forward``
    for the forwarding flag and ``ipv6`` for ``-6``."""
    opts, i = {}, 0
    while i < len(args):
        word = args[i]
        if word in _FORWARD_OPTION or word == "-6":
            opts.update({"forward": _FORWARD_OPTION[word]} if word in _FORWARD_OPTION else {"ipv6": True})
            i += 1
            continue
        if word in _SAVE_TUN_FLAGS:
            opts.setdefault("tun_flags", []).append(_SAVE_TUN_FLAGS[word])
            i += 1
            continue
        if i + 1 >= len(args):
            raise SpecError(f"{where}: option {word} needs a value")
        opts[word] = args[i + 1]
        i += 2
    return opts


# A save line's service options, by protocol (the short and the long spelling).
_SAVE_SERVICE = (("tcp", ("-t", "--tcp-service")), ("udp", ("-u", "--udp-service")), ("sctp", ("--sctp-service",)),
                 ("fwmark", ("-f", "--fwmark-service")))


def _save_service(opts, where):
    """The service key a save line names."""
    for protocol, names in _SAVE_SERVICE:
        value = next((opts[name] for name in names if name in opts), None)
        if value is None:
            continue
        if protocol == "fwmark" and opts.get("ipv6"):
            protocol = "fwmark6"
        try:
            return parse_service(f"{protocol}:{value}")
        except SpecError as err:
            raise SpecError(f"{where}: {err}") from None
    raise SpecError(f"{where}: no service (-t, -u, --sctp-service or -f)")


def _save_dest(opts, where):
    """The destination an ``-a`` save line adds."""
    try:
        dest = parse_dest(opts.get("-r", opts.get("--real-server", "")))
        weight = check_weight(int(opts.get("-w", 1)))
    except (SpecError, ValueError) as err:
        raise SpecError(f"{where}: {err}") from None
    return {**dest, "forward": opts.get("forward", "route"), "tun_type": opts.get("--tun-type", "ipip"),
            "tun_port": int(opts.get("--tun-port", 0)),
            "tun_flags": sorted(flag for flag in opts.get("tun_flags", ()) if flag != "nocsum"), "weight": weight,
            "u_threshold": int(opts.get("-x", 0)), "l_threshold": int(opts.get("-y", 0))}


def from_save(text):
    """Parse ``ipvsadm-save`` text -> list of service dicts with ``destinations``.

    Raises SpecError naming the line for anything it cannot read.
    """
    services, by_spec = [], {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"line {number}"
        try:
            command, *args = shlex.split(line)
        except ValueError as err:
            raise SpecError(f"{where}: {err}") from None
        opts = _save_options(args, where)
        key = _save_service(opts, where)
        spec = service_spec(key)
        if command in ("-A", "--add-service"):
            flags = [f for f in opts.get("-b", "").split(",") if f]
            try:
                sched_flags_value(flags)
            except SpecError as err:
                raise SpecError(f"{where}: {err}") from None
            svc = {**key, "scheduler": opts.get("-s", "wlc"), "flags": flags,
                   "persistent": int(opts.get("-p", 0)), "netmask": opts.get("-M"), "destinations": []}
            by_spec[spec] = svc
            services.append(svc)
        elif command in ("-a", "--add-server"):
            if spec not in by_spec:
                raise SpecError(f"{where}: server for {spec}, which no earlier -A line adds")
            by_spec[spec]["destinations"].append(_save_dest(opts, where))
        else:
            raise SpecError(f"{where}: unknown command {command!r} (expected -A or -a)")
    return services


# ------------------------------------------------------------------ desired state and plans
SERVICE_FIELDS = ("scheduler", "flags", "persistent")
DEST_FIELDS = ("forward", "weight", "u_threshold", "l_threshold")
TUNNEL_FIELDS = ("tun_type", "tun_port", "tun_flags")


def _service_part(spec, settings):
    """``(key, service record without destinations)`` of one desired service (checked)."""
    key = parse_service(spec)
    flags = sorted(sched_flags_names(sched_flags_value(settings.get("flags") or [])))
    persistent = settings.get("persistent", 0) or 0
    if isinstance(persistent, bool) or not isinstance(persistent, int) or persistent < 0:
        raise SpecError(f"{service_spec(key)}: persistent {persistent!r} must be seconds (0: not persistent)")
    return key, {**key, "scheduler": str(settings.get("scheduler", "wlc")), "flags": flags, "persistent": persistent,
                 "netmask": settings.get("netmask"), "destinations": None}


def desired_service(spec, settings=None):
    """Normalise one desired service (``destinations: None`` leaves its dests alone)."""
    settings = settings or {}
    key, svc = _service_part(spec, settings)
    dests = settings.get("destinations", {})
    if dests is not None:
        name = service_spec(key)
        svc["destinations"] = [_dest_record(*dest_settings(d, s, name)) for d, s in (dests or {}).items()]
    return svc


def wanted(services):
    """``{spec: (service values, {(address, port): dest values} or None, service record
    without destinations)}`` of a desired table (``{spec: settings}``, checked as
    :func:`desired_service` checks it): what :func:`unchanged` compares with the kernel's,
    made without destination records (:func:`records` makes those, checked once)."""
    out = {}
    for spec, settings in services.items():
        settings = settings or {}
        key, svc = _service_part(spec, settings)
        name = service_spec(key)
        dests = settings.get("destinations", {})
        out[name] = (service_values(svc), None if dests is None else
                     dict(dest_settings(d, s, name) for d, s in (dests or {}).items()), svc)
    return out


def records(wanted, specs):
    """The normalised records of the services ``specs`` of :func:`wanted`, as
    :func:`desired_service` makes them, from the values it checked already."""
    out = []
    for spec in specs:
        _, dests, svc = wanted[spec]
        out.append({**svc, "destinations": None if dests is None else [_dest_record(key, values)
                                                                        for key, values in dests.items()]})
    return out


_DEST_SPECS = {}  # destination spec text -> (address, port): a table names the same real servers in every service
_DEST_SPECS_MAX = 1 << 17
_TUN_FLAG_SET = frozenset(TUN_FLAGS)
_WEIGHT_ONLY = frozenset({"weight"})


def dest_settings(spec, settings=None, service="service"):
    """``((address, port), values)`` of one desired destination (``forward`` tunnel,
    weight 1 ... by default; ``values`` as :func:`dest_values` makes them), checked.

    Called once per destination of a table at every state run: its checks are plain
    comparisons, and a destination's address is parsed once per process."""
    parsed = _DEST_SPECS.get(spec) or _dest_key(spec)
    settings = settings or {}
    if settings.keys() <= _WEIGHT_ONLY:  # the usual backend: every default, a weight perhaps
        weight = settings.get("weight", 1)
        if weight.__class__ is not int or not 0 <= weight <= MAX_WEIGHT:
            check_weight(weight)
        return parsed, ("tunnel", weight, 0, 0, "ipip", 0, [])
    forward = settings.get("forward", "tunnel")
    if forward not in FORWARD:
        check_choice(forward, tuple(FORWARD), f"{service} -> {spec}: forward")
    weight = settings.get("weight", 1)
    if weight.__class__ is not int or not 0 <= weight <= MAX_WEIGHT:
        check_weight(weight)
    u_threshold, l_threshold = settings.get("u_threshold", 0), settings.get("l_threshold", 0)
    if u_threshold.__class__ is not int or l_threshold.__class__ is not int:
        u_threshold, l_threshold = int(u_threshold), int(l_threshold)
    if forward != "tunnel":
        return parsed, (forward, weight, u_threshold, l_threshold)
    return parsed, (forward, weight, u_threshold, l_threshold, *_tunnel_values(spec, settings, service))


def _dest_key(spec):
    """``(address, port)`` of a destination spec, parsed and kept for the next time."""
    dest = parse_dest(spec)
    parsed = (dest["address"], dest["port"])
    if len(_DEST_SPECS) < _DEST_SPECS_MAX:
        _DEST_SPECS[spec] = parsed
    return parsed


def _tunnel_values(spec, settings, service):
    """``(tun_type, tun_port, tun_flags)`` of a tunnel destination's ``settings``, checked."""
    tun_type = settings.get("tun_type", "ipip")
    if tun_type not in TUN_TYPES:
        check_choice(tun_type, tuple(TUN_TYPES), f"{service}: tun_type")
    flags = settings.get("tun_flags")
    flags = sorted(flags) if flags else []
    for flag in flags:
        if flag not in _TUN_FLAG_SET:
            check_choice(flag, tuple(TUN_FLAGS), f"{service} -> {spec}: tunnel flag")
    if "nocsum" in flags:  # no bit: the kernel gives it back as no flag
        flags = [flag for flag in flags if flag != "nocsum"]
    tun_port = settings.get("tun_port", 0)
    return tun_type, tun_port if tun_port.__class__ is int else int(tun_port), flags


def _dest_record(key, values):
    dest = {"address": key[0], "port": key[1], "forward": values[0], "weight": values[1],
            "u_threshold": values[2], "l_threshold": values[3]}
    if values[0] == "tunnel":
        dest.update(tun_type=values[4], tun_port=values[5], tun_flags=values[6])
    return dest


def desired_dest(spec, settings=None, service="service"):
    """Normalise one desired destination (a record: :func:`dest_settings` as a dict)."""
    return _dest_record(*dest_settings(spec, settings, service))


def _dest_view(dest):
    fields = DEST_FIELDS + (TUNNEL_FIELDS if dest["forward"] == "tunnel" else ())
    return {f: dest.get(f) for f in fields}


def dest_values(dest):
    """What :func:`_dest_view` shows, as a tuple (compared without building dicts; the
    kernel's side read as such by ``lvstun.genl.dest_settings``)."""
    get = dest.get
    if dest["forward"] == "tunnel":
        return (dest["forward"], get("weight"), get("u_threshold"), get("l_threshold"), get("tun_type"),
                get("tun_port"), get("tun_flags"))
    return dest["forward"], get("weight"), get("u_threshold"), get("l_threshold")


def service_values(svc):
    """What :func:`_svc_view` shows, as a tuple."""
    return svc.get("scheduler"), svc.get("flags"), svc.get("persistent")


def as_wanted(desired):
    """:func:`wanted` of normalised desired service records."""
    return {service_spec(svc): (service_values(svc), None if svc["destinations"] is None else
                                {(d["address"], d["port"]): dest_values(d) for d in svc["destinations"]})
            for svc in desired}


def unchanged(wanted, held):
    """The specs of ``wanted`` (:func:`wanted`) that the kernel holds exactly as
    wanted: ``held`` is ``{spec: (service values, {(address, port): dest values})}`` as
    read (``lvstun.ipvsclient.Client.read_settings``). A plan for these is empty: the
    states plan only the others (a table of thousands compared in its own terms)."""
    same = set()
    for spec, entry in wanted.items():
        have, service, dests = held.get(spec), entry[0], entry[1]
        if have is not None and have[0] == service and (dests is None or have[1] == dests):
            same.add(spec)
    return same


def _svc_view(svc):
    return {f: svc.get(f) for f in SERVICE_FIELDS}


def _diff(old, new):
    """{field: {"old": a, "new": b}} for the fields that differ."""
    return {f: {"old": old.get(f), "new": new[f]} for f in new if old.get(f) != new[f]}


def plan(current, desired, owned=(), remove="drain"):
    """What turns ``current`` (records from ipvs.list) into ``desired`` (normalised).

    ``owned``: specs a previous run created; owned services that are no longer desired
    are removed. Services neither desired nor owned are never touched. Destinations of
    a desired service that are not desired are removed: with ``remove="drain"`` they go
    to weight 0 first and are deleted once they have no connections (on this run or a
    later one); with ``remove="delete"`` at once.

    Returns ``(ops, changes)``: ops as tuples for ``ipvs.apply_plan``; changes as
    ``{"<service>" or "<service> -> <dest>": {"old": ..., "new": ...}}``.
    """
    ops, changes = [], {}
    now = {service_spec(s): s for s in current}
    for spec, want in ((service_spec(s), s) for s in desired):
        have = now.get(spec)
        _plan_service(ops, changes, spec, have, want)
        if want["destinations"] is not None:
            _plan_dests(ops, changes, spec, have, want, remove)
    desired_specs = {service_spec(s) for s in desired}
    for spec in sorted(set(owned) - desired_specs):
        if now.get(spec) is not None:
            _plan_unowned(ops, changes, spec, now[spec], remove)
    return ops, changes


def _changed(diff):
    return {"old": {f: d["old"] for f, d in diff.items()}, "new": {f: d["new"] for f, d in diff.items()}}


def _plan_service(ops, changes, spec, have, want):
    """A desired service: added, or edited where its settings differ."""
    if have is None:
        ops.append(("add_service", want))
        changes[spec] = {"old": None, "new": _svc_view(want)}
        return
    diff = _diff(_svc_view(have), _svc_view(want))
    if diff:
        ops.append(("edit_service", want))
        changes[spec] = _changed(diff)


def _plan_dests(ops, changes, spec, have, want, remove):
    """A desired service's destinations: exactly the desired ones."""
    have_dests = {(d["address"], d["port"]): d for d in (have or {}).get("destinations", [])}
    want_dests = {(d["address"], d["port"]): d for d in want["destinations"]}
    for key, dwant in want_dests.items():
        dhave = have_dests.get(key)
        if dhave is not None and dest_values(dhave) == dest_values(dwant):
            continue
        label = f"{spec} -> {join_hostport(*key)}"
        if dhave is None:
            ops.append(("add_dest", want, dwant))
            changes[label] = {"old": None, "new": _dest_view(dwant)}
        else:
            ops.append(("edit_dest", want, dwant))
            changes[label] = _changed(_diff(_dest_view(dhave), _dest_view(dwant)))
    for key, dhave in have_dests.items():
        if key not in want_dests:
            _remove_dest(ops, changes, have, dhave, f"{spec} -> {join_hostport(*key)}", remove)


def _plan_unowned(ops, changes, spec, have, remove):
    """A service a previous run created and no longer desired: removed (drained first
    while it has connections, with ``remove="drain"``)."""
    busy = [d for d in have["destinations"] if d["active"] or d["inactive"]]
    if remove == "delete" or not busy:
        ops.append(("del_service", have))
        changes[spec] = {"old": _svc_view(have), "new": None}
        return
    for dest in have["destinations"]:
        _remove_dest(ops, changes, have, dest, f"{spec} -> {join_hostport(dest['address'], dest['port'])}", remove)


SUMMARY_ABOVE = 1000  # changes a state reports one by one; more are reported per service


def summarized(changes):
    """``changes`` (:func:`plan`'s) when they are few; above :data:`SUMMARY_ABOVE`, one
    entry per service: its own change (``old``/``new``, as :func:`plan` reports it; ``{}``
    when only its destinations change) and how many destinations are added, changed,
    drained and removed. A table's first apply of 11,000 entries then returns a short
    report, and ``test=True`` predicts the same one."""
    if len(changes) <= SUMMARY_ABOVE:
        return changes
    out = {}
    for label, change in changes.items():
        spec, _, dest = label.partition(" -> ")
        entry = out.setdefault(spec, {"old": {}, "new": {}, "destinations": {"added": 0, "changed": 0, "drained": 0,
                                                                            "removed": 0}})
        if not dest:
            entry.update(old=change["old"], new=change["new"])
            continue
        kind = ("added" if change["old"] is None else "removed" if change["new"] is None else
                "drained" if change["new"].get("draining") else "changed")
        entry["destinations"][kind] += 1
    return out


def _remove_dest(ops, changes, svc, dest, label, remove):
    if remove == "delete" or not (dest["active"] or dest["inactive"]):
        ops.append(("del_dest", svc, dest))
        changes[label] = {"old": _dest_view(dest), "new": None}
    elif dest["weight"] != 0:
        ops.append(("edit_dest", svc, {**dest, "weight": 0}))
        changes[label] = {"old": {"weight": dest["weight"]}, "new": {"weight": 0, "draining": True}}


def still_owned(present, desired, owned):
    """The specs to remember as owned after a run: desired (specs) and owned ones that
    exist in the kernel (``present``: their specs; owned ones being drained; after a
    failed run, exactly those it made)."""
    return sorted((set(desired) | set(owned)) & set(present))
