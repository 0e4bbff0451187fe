"""What a director exports to Prometheus, as plain logic: the site's view of its IPVS
table (service names, pillar weights, health, drains) and the exposition text of the
table's counters under that view (docs/monitoring.md lists every metric and label).

The view comes from the site and the runner's health record (:func:`view`): a highstate
stores it on the director, and the ``lvs`` runner sends the new one along with the
weights it pushes. The kernel's table gives the numbers (:func:`render`); a service or
destination the view does not name is exported under its IPVS spec and address.

The text is written here, not by ``prometheus_client``'s ``generate_latest``: for a
director of 1,000 services x 10 backends that takes 1.05 s per scrape on the host (the
Metric and Sample objects of 110,000 samples), this writer 0.03 s. The exporter
(``lvstun.exporter``) adds ``prometheus_client``'s process metrics, and the unit tests
parse this text with ``prometheus_client``'s parser.
"""

from . import health as health_rules
from .address import canonical
from .ipvs import join_hostport, service_spec

# Per backend: (name, type, help, value of a destination record); labels service, vip, backend.
BACKEND = (
    ("lvs_backend_connections_active", "gauge", "Active connections (ESTABLISHED) to the backend.",
     lambda d: d["active"]),
    ("lvs_backend_connections_inactive", "gauge", "Inactive connections (other states) to the backend.",
     lambda d: d["inactive"]),
    ("lvs_backend_connections_total", "counter", "Connections scheduled to the backend.",
     lambda d: d["stats"].get("conns", 0)),
    ("lvs_backend_connections_per_second", "gauge", "The kernel's estimate of new connections per second.",
     lambda d: d["stats"].get("cps", 0)),
    ("lvs_backend_packets_in_total", "counter", "Packets forwarded to the backend.",
     lambda d: d["stats"].get("inpkts", 0)),
    ("lvs_backend_packets_out_total", "counter",
     "Packets from the backend through the director (0 in TUN mode: replies go direct).",
     lambda d: d["stats"].get("outpkts", 0)),
    ("lvs_backend_bytes_in_total", "counter", "Bytes forwarded to the backend.",
     lambda d: d["stats"].get("inbytes", 0)),
    ("lvs_backend_bytes_out_total", "counter",
     "Bytes from the backend through the director (0 in TUN mode).",
     lambda d: d["stats"].get("outbytes", 0)),
    ("lvs_backend_weight", "gauge", "The weight the director runs now.", lambda d: d["weight"]),
)
# Per backend, from the view (absent for a destination the site does not name).
BACKEND_VIEW = (
    ("lvs_backend_weight_configured", "gauge", "The backend's weight in the site pillar.", "weight"),
    ("lvs_backend_healthy", "gauge", "1 unless the health record has the backend (or its host) down.",
     "healthy"),
    ("lvs_backend_drained", "gauge", "1 when an operator drained the backend (maintenance).", "drained"),
)
SERVICE = (
    ("lvs_service_present", "gauge", "1 when the director's kernel holds the service."),
    ("lvs_service_backends", "gauge", "Backends the site gives the service (the sorry server apart)."),
    ("lvs_service_backends_healthy", "gauge", "Of them, those the health record has up."),
    ("lvs_service_backends_serving", "gauge", "Of them, those with a live weight above 0 on this director."),
    ("lvs_service_floor", "gauge", "Backends the service keeps in even when down (its floor, as a count)."),
)
LABEL_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})


def view(site, record=None):
    """``{"services": {spec: {"service", "vip", "port", "protocol", "scheduler", "floor",
    "backends": {dest: {"backend", "weight", "healthy", "drained", "sorry"}}}}}``:
    the names and the site's intent for every service of ``site`` (``lvstun.site.Site``),
    under the health ``record`` of the runner (``lvstun.health``)."""
    record = record or {}
    services = {}
    for svc in site.services.values():
        members = [(b.minion_id, b.address, b.port, b.weight, False) for b in svc.backends]
        if svc.sorry:
            members.append((svc.sorry, site.hosts[svc.sorry].address, svc.port, 0, True))
        backends = {
            join_hostport(canonical(address), port): {
                "backend": minion, "weight": weight, "sorry": sorry,
                "healthy": health_rules.healthy(record, minion, svc.name),
                "drained": health_rules.in_maintenance(record, minion, svc.name)}
            for minion, address, port, weight, sorry in members}
        spec = service_spec({"protocol": svc.protocol, "address": canonical(svc.vip), "port": svc.port,
                             "fwmark": 0})
        services[spec] = {"service": svc.name, "vip": svc.vip, "port": svc.port, "protocol": svc.protocol,
                          "scheduler": svc.scheduler,
                          "floor": health_rules.floor_count(svc.floor, len(svc.backends)),
                          "backends": backends}
    return {"services": services}


def view_changes(old, new):
    """``[(object, new, old)]``: how the view ``new`` differs from ``old``, per service
    (its own settings, ``spec``) and per backend (``spec -> dest``); None for absent."""
    out = []
    olds, news = (old or {}).get("services", {}), (new or {}).get("services", {})
    for spec in sorted(set(olds) | set(news)):
        before, after = olds.get(spec), news.get(spec)
        heads = [{k: v for k, v in entry.items() if k != "backends"} if entry else None for entry in (before, after)]
        if heads[0] != heads[1]:
            out.append((spec, heads[1], heads[0]))
        was, now = (before or {}).get("backends", {}), (after or {}).get("backends", {})
        out += [(f"{spec} -> {dest}", now.get(dest), was.get(dest))
                for dest in sorted(set(was) | set(now)) if was.get(dest) != now.get(dest)]
    return out


def _label(value):
    return str(value).translate(LABEL_ESCAPES)


def _number(value):
    return "1" if value is True else "0" if value is False else str(value)


def render(table, site_view):
    """The exposition text (Prometheus 0.0.4) of ``table`` (``ipvs.list`` records with
    ``stats``, or None when the kernel's table could not be read) under ``site_view``."""
    return "".join(chunks(table, site_view))


def chunks(table, site_view):
    """:func:`render`'s text, one metric family at a time (the exporter sends each as it
    is made: a large table's text is never whole in memory)."""
    named = (site_view or {}).get("services", {})
    rows, services = [], []  # rows: (labels, dest record, view entry or None)
    for svc in table or []:
        spec = service_spec(svc)
        entry = named.get(spec)
        name, vip = (entry["service"], entry["vip"]) if entry else (spec, svc.get("address") or "")
        head = f'service="{_label(name)}",vip="{_label(vip)}"'
        known = entry["backends"] if entry else {}
        serving = 0
        for dest in svc.get("destinations", []):
            address = join_hostport(dest["address"], dest["port"])
            mine = known.get(address)
            rows.append((f'{head},backend="{_label(mine["backend"] if mine else address)}"', dest, mine))
            if mine and not mine["sorry"] and dest["weight"] > 0:
                serving += 1
        services.append((spec, head, entry, serving, True))
    present = {spec for spec, *_ in services}
    for spec, entry in named.items():
        if spec not in present:  # the site wants it, the kernel does not have it
            services.append((spec, f'service="{_label(entry["service"])}",vip="{_label(entry["vip"])}"',
                             entry, 0, False))
    for name, kind, text, value in BACKEND:
        yield f"# HELP {name} {text}\n# TYPE {name} {kind}\n" + "".join(
            [f"{name}{{{labels}}} {value(dest)}\n" for labels, dest, _ in rows])
    for name, kind, text, key in BACKEND_VIEW:
        yield f"# HELP {name} {text}\n# TYPE {name} {kind}\n" + "".join(
            [f"{name}{{{labels}}} {_number(mine[key])}\n" for labels, _, mine in rows if mine])
    out = ["# HELP lvs_service_info The site's services: port, protocol and scheduler.\n"
           "# TYPE lvs_service_info gauge\n"]
    for _, head, entry, _, _ in services:
        if entry:
            out.append(f'lvs_service_info{{{head},port="{entry["port"]}",protocol="{entry["protocol"]}",'
                       f'scheduler="{entry["scheduler"]}"}} 1\n')
    for name, kind, text in SERVICE:
        out.append(f"# HELP {name} {text}\n# TYPE {name} {kind}\n")
        for _, head, entry, serving, in_kernel in services:
            if name == "lvs_service_present":
                value = int(in_kernel)
            elif not entry:
                continue
            else:
                members = [b for b in entry["backends"].values() if not b["sorry"]]
                value = {"lvs_service_backends": len(members),
                         "lvs_service_backends_healthy": sum(1 for b in members if b["healthy"]),
                         "lvs_service_backends_serving": serving,
                         "lvs_service_floor": entry["floor"]}[name]
            out.append(f"{name}{{{head}}} {value}\n")
    out.append("# HELP lvs_director_up 1 when the director's IPVS table could be read.\n"
               f"# TYPE lvs_director_up gauge\nlvs_director_up {int(table is not None)}\n"
               "# HELP lvs_director_services Virtual services in the director's kernel.\n"
               f"# TYPE lvs_director_services gauge\nlvs_director_services {len(table or [])}\n")
    yield "".join(out)
