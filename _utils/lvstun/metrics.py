"""What a director exports to Prometheus, as plain logic: the site's view of its IPVS
table (service names, pillar weights, health, drains) and the exposition text of the
table's counters under that view (docs/monitoring.md lists every metric and label).

The view comes from the site and the runner's health record (:func:`view`): a highstate
stores it on the director, and the ``lvs`` runner sends the new one along with the
weights it pushes. The kernel's table gives the numbers (:func:`render`); a service or
destination the view does not name is exported under its IPVS spec and address.

The text is written here, not by ``prometheus_client``'s ``generate_latest``: for a
director of 1,000 services x 10 backends that takes 1.05 s per scrape on the host (the
Metric and Sample objects of 110,000 samples), :class:`Text` 0.015 s (its labels written
once into templates, kept between scrapes; the numbers filled in). The exporter
(``lvstun.exporter``) adds ``prometheus_client``'s process metrics, and the unit tests
parse this text with ``prometheus_client``'s parser.
"""

import operator

from . import health as health_rules
from .genl import COUNTERS, counters
from .ipvs import join_hostport, parse_service, service_spec

# Per backend: (name, type, help, field of the destination's counters, genl.COUNTERS); labels service,
# vip, backend. The replies' counters only where replies pass through the director (REPLIES_DIRECT
# apart: always 0 there); the kernel's rate estimate not at all (rate() of the counters says more).
BACKEND = (
    ("lvs_backend_connections_active", "gauge", "Active connections (ESTABLISHED) to the backend.",
     "active"),
    ("lvs_backend_connections_inactive", "gauge", "Inactive connections (other states) to the backend.",
     "inactive"),
    ("lvs_backend_connections_total", "counter", "Connections scheduled to the backend.",
     "conns"),
    ("lvs_backend_packets_in_total", "counter", "Packets forwarded to the backend.",
     "inpkts"),
    ("lvs_backend_packets_out_total", "counter",
     "Packets from the backend through the director (a backend it forwards to by NAT).",
     "outpkts"),
    ("lvs_backend_bytes_in_total", "counter", "Bytes forwarded to the backend.",
     "inbytes"),
    ("lvs_backend_bytes_out_total", "counter",
     "Bytes from the backend through the director (a backend it forwards to by NAT).",
     "outbytes"),
    ("lvs_backend_weight", "gauge", "The weight the director runs now.", "weight"),
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
REPLIES = ("outpkts", "outbytes")  # the counters of replies through the director
REPLIES_DIRECT = ("tunnel", "route")  # forwarding whose replies go from the backend to the client
LABEL_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})


def view(site, record=None):
    """``{"site": name, "services": {spec: {"service", "vip", "port", "protocol", "scheduler",
    "floor", "backends": {dest: {"backend", "weight", "healthy", "drained", "sorry"}}}}}``:
    the names and the site's intent for every service of ``site`` (``lvstun.site.Site``),
    under the health ``record`` of the runner (``lvstun.health``)."""
    record = record or {}
    services = {}
    for svc in site.services.values():
        backends = {
            join_hostport(m.address, m.port): {
                "backend": m.minion_id, "weight": m.weight, "sorry": m.minion_id == svc.sorry,
                "healthy": health_rules.healthy(record, m.minion_id, svc.name),
                "drained": health_rules.in_maintenance(record, m.minion_id, svc.name)}
            for m in svc.members}
        services[svc.spec] = {"service": svc.name, "vip": svc.vip, "port": svc.port, "protocol": svc.protocol,
                          "scheduler": svc.scheduler,
                          "floor": health_rules.floor_count(svc.floor, len(svc.backends)),
                          "backends": backends}
    return {"site": site.name, "services": services}


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


def _site_label(site_view):
    """``site="name",`` of the view's site (a label of every series), or ``""``."""
    name = (site_view or {}).get("site")
    return f'site="{_label(name)}",' if name else ""


def _label(value):
    return str(value).translate(LABEL_ESCAPES)


def _number(value):
    return "1" if value is True else "0" if value is False else str(value)


def render(table, site_view):
    """The exposition text (Prometheus 0.0.4) of ``table`` (``ipvs.list`` records with
    ``stats``, or None when the kernel's table could not be read) under ``site_view``."""
    if table is not None:
        table = [(svc, [counters(dest) for dest in svc.get("destinations", [])]) for svc in table]
    return "".join(Text().chunks(table, site_view))



def _labelled(shape, named, site):
    """``(rows, services)`` of a table of ``shape`` with the site's view ``named``:
    ``rows``, one per destination in the table's order: ``(labels, the backend's view entry
    or None, forward)``; ``services``: ``(labels, view entry or None, index in the table
    or None, the indexes of the site's backends, not the sorry server)``, the site's
    services missing from the kernel last."""
    rows, services = [], []
    for index, (spec, dests) in enumerate(shape):
        entry = named.get(spec)
        name, vip = (entry["service"], entry["vip"]) if entry else (spec, parse_service(spec).get("address") or "")
        head = f'{site}service="{_label(name)}",vip="{_label(vip)}"'
        known = entry["backends"] if entry else {}
        counted = []  # serving when their weight is > 0
        for j, (address, port, forward) in enumerate(dests):
            hostport = join_hostport(address, port)
            mine = known.get(hostport)
            rows.append((f'{head},backend="{_label(mine["backend"] if mine else hostport)}"', mine, forward))
            if mine and not mine["sorry"]:
                counted.append(j)
        services.append((head, entry, index, counted))
    present = {spec for spec, _ in shape}
    for spec, entry in named.items():
        if spec not in present:  # the site wants it, the kernel does not have it
            services.append((f'{site}service="{_label(entry["service"])}",vip="{_label(entry["vip"])}"',
                             entry, None, ()))
    return rows, services

class Text:
    """The exposition text of a director's table, one metric family at a time.

    What depends only on which services and destinations the kernel holds and on the
    view (every label, the site's intent) is written once into templates and kept until
    either changes; a scrape then fills in the kernel's numbers, a family in one
    ``%`` each. For 1,000 services x 10 backends that is the difference between
    writing 110,000 lines and filling 12 templates.
    """

    def __init__(self):
        self._key = None  # (the view, the table's services and destinations) the templates are for
        self._backend = self._view_part = self._serving = self._director_labels = None

    def chunks(self, table, site_view):
        """The text of ``table`` (``[(service record, [genl.COUNTERS tuples])]``, or None
        when the kernel's table could not be read) under ``site_view``, as strings (the
        exporter sends each as it is made: a large table's text is never whole in memory)."""
        services = table or []
        shape = [(service_spec(svc), tuple(map(_DESTINATION, dests))) for svc, dests in services]
        if self._key is None or self._key[0] is not site_view or self._key[1] != shape:
            self._build(shape, site_view)
            self._key = (site_view, shape)
        flat = [dest for _, dests in services for dest in dests]
        for head, template, field, only in self._backend:
            yield head + template % (tuple(map(operator.itemgetter(field), flat)) if only is None
                                     else tuple(flat[i][field] for i in only))
        yield self._view_part
        head, template, counted = self._serving
        dests = [dests for _, dests in services]
        yield head + template % tuple(
            sum(1 for j in rows if dests[i][j][_WEIGHT] > 0) if i is not None else 0 for i, rows in counted)
        site = self._director_labels
        yield ("# HELP lvs_director_up 1 when the director's IPVS table could be read.\n"
               f"# TYPE lvs_director_up gauge\nlvs_director_up{site} {int(table is not None)}\n"
               "# HELP lvs_director_services Virtual services in the director's kernel.\n"
               f"# TYPE lvs_director_services gauge\nlvs_director_services{site} {len(services)}\n")

    def _build(self, shape, site_view):
        """The templates for a table of ``shape`` (``[(spec, ((address, port, forward), ...))]``)."""
        named = (site_view or {}).get("services", {})
        site = _site_label(site_view)
        self._director_labels = f"{{{site[:-1]}}}" if site else ""  # the director's own series
        rows, services = _labelled(shape, named, site)
        replies = [i for i, (_, _, forward) in enumerate(rows) if forward not in REPLIES_DIRECT]
        self._backend = []
        for name, kind, text, field in BACKEND:
            only = replies if field in REPLIES else None
            lines = [f"{name}{{{_escaped(rows[i][0])}}} %d\n" for i in (range(len(rows)) if only is None else only)]
            self._backend.append((_head(name, kind, text), "".join(lines), COUNTERS.index(field), only))
        out = []
        for name, kind, text, key in BACKEND_VIEW:
            out.append(_head(name, kind, text))
            out += [f"{name}{{{labels}}} {_number(mine[key])}\n" for labels, mine, _ in rows if mine]
        out.append(_head("lvs_service_info", "gauge", "The site's services: port, protocol and scheduler."))
        out += [f'lvs_service_info{{{head},port="{entry["port"]}",protocol="{entry["protocol"]}",'
                f'scheduler="{entry["scheduler"]}"}} 1\n' for head, entry, _, _ in services if entry]
        for name, kind, text in SERVICE:
            if name == "lvs_service_backends_serving":  # the live weights': filled in at each scrape
                continue
            out.append(_head(name, kind, text))
            for head, entry, index, _ in services:
                if name == "lvs_service_present":
                    value = int(index is not None)
                elif not entry:
                    continue
                else:
                    members = [b for b in entry["backends"].values() if not b["sorry"]]
                    value = {"lvs_service_backends": len(members),
                             "lvs_service_backends_healthy": sum(1 for b in members if b["healthy"]),
                             "lvs_service_floor": entry["floor"]}[name]
                out.append(f"{name}{{{head}}} {value}\n")
        self._view_part = Kept("".join(out))
        serving = [(head, index, counted) for head, entry, index, counted in services if entry]
        name, kind, text = next(family for family in SERVICE if family[0] == "lvs_service_backends_serving")
        self._serving = (_head(name, kind, text),
                         "".join([f"{name}{{{_escaped(head)}}} %d\n" for head, _, _ in serving]),
                         [(index, counted) for _, index, counted in serving])


class Kept(str):
    """Text a scrape sends unchanged until the view or the table's shape changes (the
    exporter keeps its bytes and their gzip member with it)."""

    packed = None  # (bytes, gzip member), made at its first scrape


_DESTINATION = operator.itemgetter(0, 1, 2)  # address, port, forward
_WEIGHT = COUNTERS.index("weight")


def _head(name, kind, text):
    return f"# HELP {name} {text}\n# TYPE {name} {kind}\n"


def _escaped(text):
    """``text`` inside a ``%`` template."""
    return text.replace("%", "%%")
