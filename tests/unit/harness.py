"""A master and its directors in folders, for the runner's and the directors' record
logic: the runner's ``_client()`` answers through each director's own modules
(``lvs_health``, ``lvs_site``, ``lvs_health``'s state ``table``), the kernel's IPVS table
is a dict. Pure logic: no daemons, no kernel; what Salt itself does (authentication,
the event bus, timeouts) is the functional and lab tests' part."""

import contextlib
import copy
import types

import lvstun.gate
import lvstun.healthstore
import lvstun.roles
import lvstun.site
from tests.unit import fake_sites
from tests.unit.checkout import load
from tests.unit.test_health import site_tree


class Director:
    """One director: its cache folder, its loaded modules, its kernel's weights."""

    def __init__(self, name, folder, tree):
        self.name, self.tree, self.reachable = name, tree, True
        self.kernel = {}  # {spec: {dest: weight}}
        self.connections = {}  # real server address -> active connections through this director
        self.changes = []  # every weight change written: (spec, {dest: {"old", "new"}})
        self.health = load(f"lvs_health_{name}", "_modules", "lvs_health.py")
        self.site = load(f"lvs_site_{name}", "_modules", "lvs_site.py")
        self.state = load(f"lvs_health_state_{name}", "_states", "lvs_health.py")
        opts = {"cachedir": str(folder), "id": name, "test": False}
        salt = {"lvs_site.config": self.site.config, "lvs_site.note_applied": self.site.note_applied,
                "lvs_health.record": self.health.record,
                "lvs_health.accept": self.health.accept, "lvs_health.note_set": self.health.note_set,
                "lvs_exporter.set_view": lambda view, if_exporter=False: False,
                "ipvs.set_weights": self.set_weights, "ipvs.list": self.table}
        for module in (self.health, self.site, self.state):
            module.__opts__, module.__salt__, module.__pillar__ = opts, salt, {"lvs": tree["lvs"]}
        self.state.__states__ = {"ipvs.managed": self.managed}

    def set_weights(self, weights):
        changes = {}
        for spec, dests in weights.items():
            for dest, weight in dests.items():
                have = self.kernel.setdefault(spec, {}).get(dest)
                if have is None:
                    changes.setdefault("missing", []).append(f"{spec} {dest}")
                elif have != weight:
                    self.kernel[spec][dest] = weight
                    changes.setdefault(spec, {})[dest] = {"old": have, "new": weight}
        self.changes += [(spec, dests) for spec, dests in changes.items() if spec != "missing"]
        return changes

    def managed(self, name, services, remove="drain"):
        self.kernel = lvstun.roles.weights_of(services)
        return {"name": name, "result": True, "changes": {}, "comment": ""}

    def table(self):
        return [{"protocol": "tcp", "address": spec.split(":")[1], "port": int(spec.split(":")[2]), "fwmark": 0,
                 "destinations": [{"address": d.rsplit(":", 1)[0], "port": int(d.rsplit(":", 1)[1]), "weight": w,
                                   "active": self.connections.get(d.rsplit(":", 1)[0], 0), "inactive": 0}
                                  for d, w in dests.items()]}
                for spec, dests in self.kernel.items()]

    def highstate(self, pillar_record=None):
        """What a highstate does with the records: remember the site (and the pillar's
        health record), then the table from its decision."""
        for module in (self.health, self.site, self.state):
            module.__pillar__ = {"lvs": self.tree["lvs"], **({"lvs_health": pillar_record} if pillar_record else {})}
        self.site.remember()
        return self.state.table("lvs-site")

    def call(self, fun, kwarg):
        if not self.reachable:
            return None
        functions = {"lvs_health.apply": self.health.apply, "lvs_health.status": self.health.status,
                     "lvs_health.reachability": self.health.reachability, "lvs_health.local": self.health.local,
                     "ipvs.list": self.table, "test.ping": lambda: True,
                     "state.apply": lambda: {"pkg_|-upgrade_|-upgrade_|-installed": {"result": True}}}
        return copy.deepcopy(functions[fun](**kwarg))


class _Bus(contextlib.AbstractContextManager):
    """The master's event bus, as the runner fires on it: what it fires is kept."""

    def __init__(self, fired):
        self.fired = fired

    def __exit__(self, *exc):
        return None

    def fire_event(self, data, tag):
        self.fired.append((tag, copy.deepcopy(data)))


class Site:
    """The seed site (plus director2): a runner whose directors answer for themselves,
    and real servers whose reports the test sets."""

    def __init__(self, tmp_path, monkeypatch, directors=("director",)):
        tree = site_tree()
        for index, name in enumerate(directors):
            tree["lvs"]["directors"][name] = {"address": f"10.10.24.{2 + index}"}
        self.tree = tree
        self.site = lvstun.site.parse(tree)
        (tmp_path / "master").mkdir()
        self.runner = load("lvs_runner_harness", "_runners", "lvs.py")
        self.runner.__opts__ = {"cachedir": str(tmp_path / "master"), "id": "master", "conf_file": "/dev/null"}
        monkeypatch.setattr(lvstun.gate, "_JOBS", {})
        self.pillars = fake_sites.of_trees(tree)
        fake_sites.install(monkeypatch, self.pillars, self.runner.__opts__)
        self.directors = {}
        for name in directors:
            (tmp_path / name).mkdir()
            self.directors[name] = Director(name, tmp_path / name, tree)
            self.directors[name].highstate()
        self.reports = {}  # minion -> what lvs_health.report answers
        self.sent = []
        self.fired = []  # (tag, data) the runner put on the master's event bus
        self.failing, self.silent = set(), set()  # real servers whose state.apply fails, that do not answer
        self.boots = {}  # real server -> how many times it rebooted
        monkeypatch.setattr(self.runner, "_client", lambda: types.SimpleNamespace(cmd=self.cmd))
        monkeypatch.setattr(self.runner, "_bus", lambda: _Bus(self.fired))

    def current(self):
        """The runner's health record of this site."""
        return lvstun.healthstore.current(self.runner.__opts__, self.site)

    def status(self):
        """``lvs.status``'s view of this site."""
        return self.runner.status()["data"][self.site.name]

    def record(self, record):
        """``record`` (``lvstun.records``) of this site, on the master."""
        return record.named(self.site.name)

    def edited(self):
        """``self.tree`` edited: every minion's pillar refreshed with it (later than before)."""
        self.site = lvstun.site.parse(self.tree)
        stamp = max(self.pillars.stamps.values()) + 10
        for minion in self.pillars.pillars:
            self.pillars.give(minion, self.tree, stamp)

    def cmd(self, targets, fun, args=(), kwarg=None, tgt_type="glob", timeout=None, **_):
        targets = targets if isinstance(targets, list) else [targets]
        self.sent.append((fun, list(targets)))
        out = {}
        for target in targets:
            if target in self.directors:
                answer = self.directors[target].call(fun, kwarg or {})
                if answer is not None:
                    out[target] = answer
            elif fun == "lvs_health.report" and target in self.reports:
                out[target] = copy.deepcopy(self.reports[target])
            elif fun in ("state.apply", "system.reboot", "test.ping", "file.read") and target not in self.silent:
                out[target] = self.host_call(target, fun, args)
        return out

    def host_call(self, target, fun, args):
        """A real server's answer to the rolling's calls (``self.failing``: its
        state.apply fails; its boot id changes at each system.reboot)."""
        if fun == "state.apply":
            ok = target not in self.failing
            return {f"pkg_|-{args[0]}_|-{args[0]}_|-installed": {"result": ok, "comment": "", "changes": {}}}
        if fun == "system.reboot":
            self.boots[target] = self.boots.get(target, 0) + 1
        if fun == "file.read":
            return f"boot-{target}-{self.boots.get(target, 0)}\n"
        return True

    def weight(self, director, minion, spec="tcp:10.10.24.88:80"):
        address = self.site.hosts[minion].address
        return self.directors[director].kernel[spec][f"{address}:80"]
