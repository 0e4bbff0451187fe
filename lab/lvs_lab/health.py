"""The lab's view of backend health, for its tests and benchmarks: the director's live
weights (read with ipvsadm, independently of the pack), faults on a real server, waiting."""

import datetime
import json
import os
import sys
import time

WEB = "10.10.24.88:80"
TIMEOUT = 30  # seconds any reaction may take in the tests (the figures are in bench/health.py)
RESTORE = 45  # a backend comes back HOLD seconds after it went down, at its next report


def weights(lab, director="director", service=WEB):
    """{real server address: weight} of ``service`` on ``director``."""
    return {address: weight for (spec, address), weight in lab.director_weights(director).items() if spec == service}


def address(lab, minion):
    return lab.site().hosts[minion].address


def weight_of(lab, minion, director="director", service=WEB):
    return weights(lab, director, service).get(address(lab, minion))


def block_service(lab, minion, port=80, blocked=True):
    """Make ``minion``'s service refuse connections (or accept them again)."""
    verb = "-I" if blocked else "-D"
    code, _, err = lab.capture(minion, "iptables-legacy", verb, "INPUT", "-p", "tcp", "--dport", str(port),
                               "-j", "REJECT", "--reject-with", "tcp-reset")
    assert code == 0, err


def service_at_boot(lab, minion, starts=True):
    """Whether ``minion``'s application starts when its kernel boots (off: a service
    broken after a reboot). Turned on again, it is started now too, as its boot would."""
    flag = os.path.join(lab.host_dir(minion), "no-service-at-boot")
    if not starts:
        with open(flag, "w", encoding="utf-8"):
            return
    if not os.path.exists(flag):
        return
    os.unlink(flag)
    # guest-init's own command line, from the host's host.env.
    code, _, err = lab.capture(minion, "sh", "-c", '. "$LAB_HOSTDIR/host.env"; '
                               'setsid "$LAB_PYTHON" -m lvs_lab.webserver --name "$LAB_NAME" $LAB_WEB '
                               '> "$LAB_HOSTDIR/web.log" 2>&1 < /dev/null &')
    assert code == 0, err


def boot_id(lab, minion):
    """The kernel's boot id of ``minion`` (a new one at every boot)."""
    code, out, err = lab.capture(minion, "cat", "/proc/sys/kernel/random/boot_id")
    assert code == 0, err
    return out.strip()


def report_jobs_to(lab, minion, since):
    """How many ``lvs_health.report`` jobs the master sent to ``minion`` since ``since``
    (a naive local datetime): the runner asked that minion itself."""
    jobs = lab.salt_run("jobs.list_jobs", "search_function=lvs_health.report", f"search_target={minion}") or {}
    started = [datetime.datetime.strptime(job["StartTime"], "%Y, %b %d %H:%M:%S.%f") for job in jobs.values()]
    return sum(1 for when in started if when >= since)


def hooks_run(lab):
    """The lab's hook command's lines so far (one per hook the runner fired and the
    master's reactor verified): ``[(tag, service or director, backend, reason)]``."""
    try:
        with open(lab.hooks_log, encoding="utf-8") as fh:
            return [tuple(line.rstrip("\n").split("|", 3)) for line in fh if line.strip()]
    except FileNotFoundError:
        return []


def wait_for(predicate, timeout, step=0.2, why=None):
    """Seconds until ``predicate()`` is true; raise AssertionError after ``timeout``
    (its message with ``why()``'s answer, when given: what the test saw then)."""
    began = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - began
        if time.monotonic() - began > timeout:
            raise AssertionError(f"not within {timeout}s" + (f": {why()}" if why else ""))
        time.sleep(step)


def wait_settled(lab, timeout, quiet=6.0, director="director", service=WEB):
    """Wait until every backend of ``service`` has weight 1 on ``director`` and its path
    checks find nothing down, and both stay so for ``quiet`` seconds: a switch of the
    site can bring a late down (a path check of the old tunnel) after the weights were
    first seen back, and a test that reads the tables right then reads a moving site."""
    began = time.monotonic()
    calm_since = None
    while True:
        now = time.monotonic()
        if set(weights(lab, director, service).values()) == {1} and not path_verdicts(lab, director):
            calm_since = calm_since or now
            if now - calm_since >= quiet:
                return now - began
        else:
            calm_since = None
        if now - began > timeout:
            raise AssertionError(f"{director}'s backends of {service} not settled within {timeout}s: weights "
                                 f"{weights(lab, director, service)}, paths down {path_verdicts(lab, director)}")
        time.sleep(0.5)


def status(lab):
    """``salt-run lvs.status``'s view of the lab's site."""
    return lab.salt_run("lvs.status")[lab.site().name]


def record_path(lab):
    """The runner's health record of the lab's site on the master (one per site)."""
    return os.path.join(lab.master_cachedir, "lvs", f"site.{lab.site().name}.health.json")


def record(lab):
    """The runner's health record of the lab's site, on the lab's master."""
    path = record_path(lab)
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return {}


def recorded(lab, minion, service=None):
    """What the runner's record says of ``minion``: its ``service``'s health (``True``,
    ``False``), or its host's when ``service`` is None; None while the record holds no
    verdict on it (no report yet: a host verdict may come first, with no services)."""
    entry = record(lab).get("health", {}).get(minion, {})
    return entry.get("host") if service is None else entry.get("services", {}).get(service)


def _cached(lab, host, name):
    """The JSON record ``name`` in ``host``'s minion cache (read from the host: the
    master may be down), or {} when it has none yet."""
    path = os.path.join(lab.host_dir(host), "run", "salt", "cache", "lvs", name)
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return {}


def path_verdicts(lab, director="director"):
    """What ``director``'s own path checks find down, ``{minion: [service]}``: their
    record in its minion's cache."""
    return _cached(lab, director, "path-checks.json").get("down", {})


def pushed_record(lab, director="director"):
    """The runner's record as it last pushed it to ``director`` (its minion's cache)."""
    return _cached(lab, director, "runner-health.json")


def explain(lab, minion, director="director"):
    """Why ``director`` may weigh ``minion`` as it does, for a test's failure message:
    the runner's record of it (on the master and as last pushed to ``director``), the
    director's own path checks' verdicts and reasons, the drains, and the last lines its
    minion logged about them, and what the runner logged of ``minion``."""
    paths = _cached(lab, director, "path-checks.json")
    master, pushed = record(lab), pushed_record(lab, director)
    said = _log_lines(os.path.join(lab.host_dir(director), "minion.log"), ("lvs_paths:", "lvs_health:"))
    runner_said = _log_lines(os.path.join(lab.state_dir, "master", "master.log"), (f"lvs: {minion} ",))
    return {"director": director, "minion": minion,
            "runner": {"seq": master.get("seq"), "health": master.get("health", {}).get(minion),
                       "maintenance": master.get("maintenance", {}).get(minion)},
            "pushed": {"seq": pushed.get("seq"), "health": pushed.get("health", {}).get(minion),
                       "maintenance": pushed.get("maintenance", {}).get(minion)},
            "paths": {"down": paths.get("down"), "reasons": paths.get("reasons")}, "log": said,
            "runner_log": runner_said}


def _log_lines(path, marks, count=8):
    """The last ``count`` lines of the log ``path`` that hold one of ``marks`` (cut short)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return [line[:300] for line in fh if any(mark in line for mark in marks)][-count:]
    except FileNotFoundError:
        return []


def forget_health(lab):
    """Start from no health record (as after a fresh install)."""
    path = record_path(lab)
    if os.path.exists(path):
        os.unlink(path)


def client_send(lab, count, public="112.2.21.88", port=80, source_port=None):
    """``count`` HTTP requests from the lab's client to the web service (all from one
    client port with ``source_port``): ``{"answers": {minion: n}, "failed": n}``."""
    code, out, err = lab.capture("client", sys.executable, "-m", "lvs_lab.traffic", "tcp", public, str(port),
                                 str(count), *([str(source_port)] if source_port else []))
    assert code == 0, err
    return json.loads(out)
