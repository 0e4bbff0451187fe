"""The director's Prometheus exporter process (``lvstun.exporter``): is it running, start
it, stop it, and the site's view it labels the kernel's counters with.

The process runs with the minion's own Python (the one that has the pack and
``prometheus_client``), detached in a session of its own; its pid, address, port and the
digest of the code it runs are kept in the record ``metrics-exporter`` of the minion's
cache, its log beside it. An exporter running older code (the pack upgraded or synced
since it started) is restarted by the next highstate.

CLI Example:

.. code-block:: bash

    salt director lvs_exporter.status
    salt director lvs_exporter.scrape
"""

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from salt.exceptions import CommandExecutionError

import lvstun.address
import lvstun.drift
import lvstun.exporter
import lvstun.jsonstore
import lvstun.metrics
import lvstun.records
from lvstun.fresh import fresh

fresh(lvstun.address)
fresh(lvstun.jsonstore)
fresh(lvstun.drift)
fresh(lvstun.metrics)
fresh(lvstun.records)

__virtualname__ = "lvs_exporter"
MODULE = "lvstun.exporter"
START_TIMEOUT = 20  # seconds the exporter has to answer after its start


def __virtual__():
    return __virtualname__


def _cmdline(pid):
    try:
        with open(f"/proc/{int(pid)}/cmdline", "rb") as fh:
            return fh.read().split(b"\0")
    except (OSError, ValueError, TypeError):
        return []


def code():
    """A digest of the pack's shared code (the package ``lvstun`` the exporter runs).

    CLI Example:

    .. code-block:: bash

        salt director lvs_exporter.code
    """
    root = os.path.dirname(os.path.abspath(lvstun.jsonstore.__file__))
    digest = hashlib.sha256()
    for name in sorted(os.listdir(root)):
        if name.endswith(".py"):
            with open(os.path.join(root, name), "rb") as fh:
                digest.update(name.encode() + b"\0" + fh.read())
    return digest.hexdigest()[:16]


def _log_path():
    return lvstun.jsonstore.path(__opts__, lvstun.records.EXPORTER_PROCESS.name).replace(".json", ".log")


def status():
    """``{"running": bool, "pid", "address", "port"}`` of this director's exporter (the
    process the record names, if it is alive and is the exporter: not a reused pid).

    CLI Example:

    .. code-block:: bash

        salt director lvs_exporter.status
    """
    record = lvstun.records.load(__opts__, lvstun.records.EXPORTER_PROCESS)
    pid = record.get("pid")
    cmd = _cmdline(pid) if pid else []
    running = MODULE.encode() in cmd and f"--port={record.get('port')}".encode() in cmd
    return {"running": running, "pid": pid if running else None,
            "address": record.get("address"), "port": record.get("port")}


def _connect_to(address):
    return "127.0.0.1" if address == "0.0.0.0" else address


def _answers(address, port):
    with contextlib.suppress(OSError), socket.create_connection((_connect_to(address), port), timeout=1):
        return True
    return False


def stop():
    """Stop the exporter (SIGTERM, then SIGKILL after 5 s); True when one was running.

    CLI Example:

    .. code-block:: bash

        salt director lvs_exporter.stop
    """
    now = status()
    if now["running"]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(now["pid"], signal.SIGTERM)
        deadline = time.monotonic() + 5
        while status()["running"] and time.monotonic() < deadline:
            time.sleep(0.05)
        if status()["running"]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(now["pid"], signal.SIGKILL)
    record = lvstun.records.load(__opts__, lvstun.records.EXPORTER_PROCESS)
    if record:
        lvstun.records.store(__opts__, lvstun.records.EXPORTER_PROCESS, {**record, "pid": None})
    return now["running"]


def start(address, port):
    """(Re)start the exporter on ``address:port``; return its status once it answers.

    address, port
        Where the exporter listens: this director's address (never a VIP) and TCP port.

    CLI Example:

    .. code-block:: bash

        salt director lvs_exporter.start 10.10.24.2 9847
    """
    port = int(port)
    stop()
    # The package's folder on the path: a fileserver-synced minion has it in extmods/utils.
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(lvstun.jsonstore.__file__)))
    env = dict(os.environ,
               PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    view = lvstun.jsonstore.path(__opts__, lvstun.records.EXPORTER_VIEW.name)
    os.makedirs(os.path.dirname(view), exist_ok=True)
    with open(_log_path(), "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", MODULE, f"--address={address}", f"--port={port}", f"--view={view}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True, close_fds=True)
    lvstun.records.store(__opts__, lvstun.records.EXPORTER_PROCESS,
                         {"pid": proc.pid, "address": address, "port": port, "code": code()})
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if _answers(address, port):
            return status()
        time.sleep(0.1)
    stop()
    with open(_log_path(), "rb") as fh:
        tail = fh.read()[-600:].decode(errors="replace").strip()
    raise CommandExecutionError(f"the LVS exporter did not answer on {address}:{port} within "
                                f"{START_TIMEOUT} s; its log ({_log_path()}) ends: {tail}")


def view():
    """The site's view the exporter labels the counters with (``lvstun.metrics.view``).

    CLI Example:

    .. code-block:: bash

        salt director lvs_exporter.view
    """
    return lvstun.records.load(__opts__, lvstun.records.EXPORTER_VIEW)


def set_view(site_view, if_exporter=False):
    """Store the site's view (the exporter reads it at its next scrape); True when it
    changed. ``if_exporter``: only on a director whose role runs an exporter (the
    runner's pushes: a site without metrics keeps no view).

    site_view
        The site's view (``lvstun.metrics.view``): names, pillar weights, health, drains.

    if_exporter
        True: store it only on a director whose role runs an exporter (the runner's
        pushes); default False.

    CLI Example:

    .. code-block:: bash

        salt director lvs_exporter.set_view '{"services": {}}'
    """
    started = lvstun.records.load(__opts__, lvstun.records.EXPORTER_PROCESS)
    if view() == site_view or (if_exporter and not started.get("port")):
        return False
    lvstun.records.store(__opts__, lvstun.records.EXPORTER_VIEW, site_view)
    return True


def _listen_address(address=None, subnet=None, site_view=None):
    """The address to listen on: ``address``, or this host's own address in ``subnet``
    (the lowest, never a VIP of ``site_view``: the router maps VIPs to public
    addresses, and a subnet such as the LAN holds them)."""
    if subnet is None:
        return address
    vips = {svc.get("vip") for svc in ((site_view or {}).get("services") or {}).values()}
    found = sorted((a for a in __salt__["network.ip_addrs"](cidr=subnet) if a not in vips), key=_numeric)
    if not found:
        raise CommandExecutionError(f"this director has no address in {subnet} but VIPs (lvs:metrics:listen) to "
                                    "serve its metrics on")
    return found[0]


def _numeric(address):
    return tuple(int(part) for part in address.split("."))


def check(port, address=None, subnet=None, site_view=None):
    """Drifts (``lvstun.drift``) of the exporter from: running on ``address:port`` (or this
    host's address in ``subnet``) the pack's present code (:func:`code`), with the view
    ``site_view``.

    port, address
        Where the exporter must listen (``address`` None: this host's address in
        ``subnet``).

    subnet
        A subnet holding this host's address to listen on (``metrics:listen``), or None.

    site_view
        The site's view the exporter serves (``lvstun.metrics.view``).

    CLI Example:

    .. code-block:: bash

        salt director lvs_exporter.check 9847 address=10.10.24.2
    """
    want = f"{_listen_address(address, subnet, site_view)}:{int(port)}"
    now = status()
    have = f"{now['address']}:{now['port']}" if now["running"] else None
    drifts = [] if have == want else [lvstun.drift.make("exporter", "process", want, have)]
    if not drifts:
        ran, runs = (lvstun.records.load(__opts__, lvstun.records.EXPORTER_PROCESS)).get("code"), code()
        if ran != runs:  # started before the pack's code changed: restarted on the new one
            drifts.append(lvstun.drift.make("exporter", "code", runs, ran))
    if site_view is not None:
        drifts += [lvstun.drift.make("metrics-view", name, want, have)
                   for name, want, have in lvstun.metrics.view_changes(view(), site_view)]
    return drifts


def apply(port, address=None, subnet=None, site_view=None):
    """Repair what :func:`check` finds: store the view, (re)start the exporter.

    port
        Its TCP port.
    address
        The address to listen on.
    subnet
        Instead: this host's lowest address in it, never a VIP of ``site_view``.
    site_view
        The site's view (:func:`set_view`).

    CLI Example:

    .. code-block:: bash

        salt director lvs_exporter.apply 9847 address=10.10.24.2
    """
    drifts = check(port, address, subnet, site_view)
    if site_view is not None:
        set_view(site_view)
    if any(d["kind"] == "exporter" for d in drifts):
        start(_listen_address(address, subnet, site_view), port)
    return drifts


def check_absent():
    """Drifts from: no exporter running, no view stored.

    CLI Example:

    .. code-block:: bash

        salt director lvs_exporter.check_absent
    """
    now = status()
    drifts = [lvstun.drift.make("exporter", "process", None, f"{now['address']}:{now['port']}")
              ] if now["running"] else []
    stored = view().get("services")
    if stored:
        drifts.append(lvstun.drift.make("metrics-view", "of the site", None, f"{len(stored)} service(s)"))
    return drifts


def forget():
    """Stop the exporter and remove its records (the director leaves the site).

    CLI Example:

    .. code-block:: bash

        salt director lvs_exporter.forget
    """
    stop()
    removed = False
    for name in (lvstun.records.EXPORTER_PROCESS.name, lvstun.records.EXPORTER_VIEW.name):
        for path in (lvstun.jsonstore.path(__opts__, name), lvstun.jsonstore.path(__opts__, name) + ".prev"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                removed = True
    return removed


def scrape():
    """The running exporter's answer to a scrape (the exposition text).

    CLI Example:

    .. code-block:: bash

        salt director lvs_exporter.scrape
    """
    now = status()
    if not now["running"]:
        raise CommandExecutionError("the LVS exporter is not running on this director")
    url = f"http://{lvstun.address.join_hostport(_connect_to(now['address']), now['port'])}/metrics"
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.read().decode()
