"""What ``salt-run lvs.status`` shows, as data: every director (its state in the router's
group, its connections and traffic), every service's backends (pillar weight, the
runner's verdict, drains, the directors whose own path checks take it out, the live
weight on each director), and what must be said about the health record (recoveries,
directors whose copy decides otherwise, pushes not confirmed). The runner gathers the
inputs (one ``lvs_health.status`` call per director, the router's view); this module
only composes them (the ``lvs_status`` outputter draws them as tables).
"""

from . import health, healthrecord, ipvs
from .address import join_hostport


def view(site, record, answers, up, drained, pending, now):
    """``{"directors", "services", "record", "problems"}``. ``answers``: each director's
    ``lvs_health.status`` (``table``, ``local``, ``held``); ``up``, ``drained``: the
    router's view of its director group; ``pending``: the pushes not confirmed
    (``records.PUSH_PENDING``)."""
    directors = sorted(host.minion_id for host in site.directors)
    tables = {d: a.get("table") for d, a in answers.items()}
    return {"directors": directors_view(site, tables, up, drained),
            "services": services_view(site, record, tables, {d: a.get("local") for d, a in answers.items()},
                                      directors),
            "record": healthrecord.summary(record),
            "problems": record_problems(record, {d: a.get("held") for d, a in answers.items()}, directors,
                                        pending, now)}


def directors_view(site, tables, up, drained):
    """``{director: {"state": up|down|drained, "answered", "active", "inactive", "inpkts",
    "inbytes"}}`` (state from the router's probes; a lone director is "up" when it answered)."""
    out = {}
    for host in sorted(site.directors, key=lambda h: h.minion_id):
        table = tables.get(host.minion_id)
        dests = [d for svc in table for d in svc["destinations"]] if isinstance(table, list) else []
        state = "drained" if host.minion_id in drained else (
            "up" if up.get(host.minion_id, isinstance(table, list)) else "down")
        out[host.minion_id] = {
            "state": state, "answered": isinstance(table, list),
            "active": sum(d["active"] for d in dests), "inactive": sum(d["inactive"] for d in dests),
            "inpkts": sum(svc.get("stats", {}).get("inpkts", 0) for svc in table or []),
            "inbytes": sum(svc.get("stats", {}).get("inbytes", 0) for svc in table or []),
        }
    return out


def services_view(site, record, tables, paths, directors):
    """``{service: {"spec", "backends": {minion: row}}}``: each member of each service
    with the site's intent, the record's verdict and each director's live entry."""
    live = {}
    for director in directors:
        for svc in tables.get(director) or []:
            spec = ipvs.service_spec(svc)
            for dest in svc["destinations"]:
                stats = dest.get("stats", {})
                live.setdefault((spec, dest["address"]), {})[director] = {
                    "weight": dest["weight"], "active": dest["active"], "inactive": dest["inactive"],
                    "conns": stats.get("conns"), "inbytes": stats.get("inbytes"), "outbytes": stats.get("outbytes")}
    out = {}
    for svc in site.services.values():
        rows = {}
        for member in svc.members:
            minion = member.minion_id
            entry = record.get("health", {}).get(minion, {})
            rows[minion] = {
                "address": join_hostport(member.address, svc.port),
                "pillar_weight": member.weight,
                "health": "host down" if entry.get("host") is False else
                          ("down" if not health.healthy(record, minion, svc.name) else "up"),
                "held": entry.get("held") or [],
                "maintenance": health.in_maintenance(record, minion, svc.name),
                "sorry": minion == svc.sorry,
                "path_down": sorted(d for d in directors if isinstance(paths.get(d), dict)
                                    and svc.name in (paths[d].get(minion) or [])),
                "live": live.get((svc.spec, member.address), {d: "missing" for d in directors}),
            }
        out[svc.name] = {"spec": svc.spec, "backends": rows}
    return out


def record_problems(record, held, directors, pending, now):
    """What ``lvs.status`` must say about the record: recoveries (an error when drains
    may have been lost), directors whose copy differs (a drain the master lacks is an
    error, never a silent undrain), pushes not confirmed (``pending``)."""
    out = []
    for note in record.get("recoveries") or []:
        lost = f"; may be lost: {', '.join(note['lost'])}" if note.get("lost") else ""
        out.append({"level": "error" if lost else "warning",
                    "text": f"health record recovered {now - note['at']:.0f} s ago: {note['what']}{lost}"})
    mine = healthrecord.summary(record)
    for director in directors:
        copy = held.get(director)
        if not isinstance(copy, dict):
            out.append({"level": "warning", "text": f"{director} did not say which health record it holds"})
            continue
        if copy.get("digest") == mine["digest"]:
            continue  # the same decisions (the runner's own times may have moved on)
        lacking = sorted(set(copy.get("maintenance") or {}) - set(record.get("maintenance") or {}))
        text = (f"{director} runs health record seq {copy.get('seq')}, which decides otherwise than the master's "
                f"(seq {mine['seq']})")
        if lacking:
            out.append({"level": "error", "text": f"{text}: drains the master's record lacks: {', '.join(lacking)}"})
        else:
            out.append({"level": "warning", "text": text})
    for director, stamp in sorted(pending.items()):
        out.append({"level": "warning", "text": f"{director} has not confirmed health record seq {stamp['seq']} "
                                                "(pushed again at the runner's next call)"})
    return out
