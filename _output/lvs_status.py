"""Outputter for ``salt-run lvs.status``: each site as tables, read at a glance like
``ipvsadm -Ln --stats`` (``--out=json`` gives the data itself, documented in
docs/monitoring.md).

CLI Example:

.. code-block:: bash

    salt-run lvs.status                 # these tables
    salt-run lvs.status --out=json      # the data
"""

__virtualname__ = "lvs_status"
LIVE = (("weight", "W"), ("active", "Act"), ("inactive", "InAct"), ("conns", "Conns"), ("inbytes", "InBytes"))


def __virtual__():
    return __virtualname__


def _table(header, rows, indent="  "):
    """Columns padded to their widest cell; numbers right-aligned, text left-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells):
        return indent + "  ".join(
            str(cell).rjust(width) if isinstance(cell, int) else str(cell).ljust(width)
            for cell, width in zip(cells, widths, strict=True)).rstrip()

    return [line(header), *map(line, rows)]


def _maintenance(row):
    return "drained" if row.get("maintenance") else "-"


def _health(row):
    held = f" (held: {','.join(row['held'])})" if row.get("held") else ""
    paths = f" (path down on {','.join(row['path_down'])})" if row.get("path_down") else ""
    return row["health"] + (" sorry" if row.get("sorry") else "") + held + paths


def render(data):
    """The text of :func:`output` (plain: testable without Salt)."""
    lines = [f"{problem['level'].upper()}: {problem['text']}" for problem in data.get("problems") or []]
    lines += [""] if lines else []
    lines += ["Directors"]
    directors = data.get("directors", {})
    lines += _table(["Name", "State", "ActiveConn", "InActConn", "InPkts", "InBytes"],
                    [[name, d["state"], d["active"], d["inactive"], d["inpkts"], d["inbytes"]]
                     for name, d in sorted(directors.items())])
    for name, svc in sorted(data.get("services", {}).items()):
        protocol, _, where = svc["spec"].partition(":")
        lines += ["", f"{protocol.upper()}  {where}  {name}"]
        header = ["-> Backend", "Address", "Pillar", "Health", "Maint"]
        header += [f"{director} {title}" for director in sorted(directors) for _, title in LIVE]
        rows = []
        for backend, row in sorted(svc["backends"].items()):
            cells = [backend, row.get("address", ""), row["pillar_weight"], _health(row), _maintenance(row)]
            for director in sorted(directors):
                live = row["live"].get(director, "missing")
                cells += [live.get(key) if isinstance(live, dict) and live.get(key) is not None else "-"
                          for key, _ in LIVE] if isinstance(live, dict) else [live] + [""] * (len(LIVE) - 1)
            rows.append(cells)
        lines += _table(header, rows)
    return "\n".join(lines)


def render_sites(data):
    """``{site: view}`` (what ``lvs.status`` returns): each site under its name (an
    invalid site: its error)."""
    return "\n\n".join(f"Site {name}\n" + (render(view) if "services" in view else f"ERROR: {view['error']}")
                        for name, view in sorted(data.items()))


def output(data, **kwargs):
    """Salt's outputter entry point."""
    if not isinstance(data, dict) or not data or not all(
            isinstance(view, dict) and ("services" in view or "error" in view) for view in data.values()):
        return str(data)
    return render_sites(data)
