"""Build, drive and tear down the lab.

Layout on the real machine (everything the lab creates is listed here, and ``down``
removes all of it):

* namespaces ``lvslab`` (bridges ``lan0`` and ``mgmt0``, the salt-master on
  172.31.254.1), ``lvslab-<router>`` and ``lvslab-client``;
* one tap pair per UML host in ``lvslab`` (``lab<N>l`` on the LAN, ``lab<N>m`` on mgmt);
* the state folder (``$LVS_LAB_DIR``, default ``/run/lvs-lab``): master and minion
  configs, keys, logs, pid files.

Processes: the salt-master and the router's salt-minion (native, in their namespaces),
and one ``linux.uml`` kernel per director and real server, each started in a session
of its own so that ``down`` can end the kernel and all its host threads at once.
"""

import contextlib
import json
import os
import shutil
import signal
import time

from lvs_lab import plan, uml
from lvs_lab.kernels import Kernels
from lvs_lab.network import Network
from lvs_lab.progress import Progress
from lvs_lab.prometheus import Prometheus
from lvs_lab.saltd import SaltDaemons, load_site
from lvs_lab.siteview import SERVING_TIMEOUT, SiteView
from lvs_lab.system import (
    REPO,
    STATE_DIR,
    UML,
    LabError,
    reap_children,
    sh,
)


class Lab(Network, SaltDaemons, Kernels, SiteView):
    """The lab described by the state folder (after ``up``) or by a site (during ``up``)."""

    def __init__(self, state_dir=STATE_DIR):
        self.state_dir = state_dir
        self.hosts = {}
        self.pillar_dir = None
        self.site_name = None
        manifest = self._path("lab.json")
        if os.path.exists(manifest):
            with open(manifest, encoding="utf-8") as fh:
                data = json.load(fh)
            self.pillar_dir = data["pillar_dir"]
            self.site_name = data.get("site")
            self.hosts = {name: plan.LabHost(**spec) for name, spec in data["hosts"].items()}

    def _path(self, *parts):
        return os.path.join(self.state_dir, *parts)

    def host_dir(self, name):
        return self._path("hosts", name)

    @property
    def minions(self):
        return sorted(name for name, host in self.hosts.items() if host.minion)

    def _save_manifest(self):
        with open(self._path("lab.json"), "w", encoding="utf-8") as fh:
            json.dump(
                {"pillar_dir": self.pillar_dir, "site": self.site_name,
                 "hosts": {n: vars(h) for n, h in self.hosts.items()}},
                fh,
                indent=1,
            )

    def up(self, pillar_dir, progress=None, site=None, apply=True, more_sites=()):
        """Build the site in ``pillar_dir`` (its top file's, or ``pillar/lvs/<site>.sls``)
        and each of ``more_sites`` beside it (``pillar/lvs/<name>.sls``), start Salt, apply
        the states (unless ``apply`` is false: the hosts stay as their installer left
        them); raise LabError."""
        progress = progress or Progress()
        if os.path.exists(self._path("lab.json")):
            raise LabError(f"a lab is already up (state in {self.state_dir}): run `lvs-lab down` first")
        with progress.step("checking this machine"):
            self._check_machine()
        with progress.step(f"reading the site pillar in {pillar_dir}" + (f" (site {site})" if site else "")):
            self.pillar_dir = os.path.abspath(pillar_dir)
            self.site_name = site
            if site and not os.path.exists(os.path.join(self.pillar_dir, "lvs", f"{site}.sls")):
                raise LabError(f"no site {site!r}: {self.pillar_dir}/lvs/{site}.sls does not exist")
            self.reset_pillar()
            site = self.site()
            self.hosts = plan.build(site)
        os.makedirs(self.state_dir, exist_ok=True)
        self._save_manifest()
        with progress.step("building the ptrace shim for linux.uml"):
            self.shim()
        with progress.step("wiring namespaces, bridges and taps"):
            self._wire()
            self._wire_site(list(self.hosts.values()))
        with progress.step("writing Salt configs and keys"):
            self._write_salt_config()
        with progress.step("starting salt-master"):
            self._start_master()
        self._start_site(None, list(self.hosts.values()), progress)
        for key in more_sites:
            self.add_site(key, progress, apply=False)
        if apply:
            with progress.step("salt '*' state.apply"):
                self.apply()
            with progress.step("waiting for the directors to find every backend serving"):
                for key in (None, *self.extra_sites):
                    self.wait_serving(SERVING_TIMEOUT, key=key)
        if site.metrics.port is not None:
            with progress.step("starting Prometheus (scrapes the directors on the management network)"):
                self.prometheus.start([f"{h.mgmt_ip}:{site.metrics.port}" for h in self.hosts.values()
                                       if h.role == "director"])
        return self

    def add_site(self, key, progress=None, apply=True):
        """Build ``pillar/lvs/<key>.sls`` beside the lab's sites, served by the same
        master: its hosts, its own LAN bridge and client (its addresses may be another
        site's), its minions' keys; every site's minions are then their site's target in
        the top file. Apply the states to the new site's minions (unless ``apply`` is
        false); raise LabError."""
        progress = progress or Progress()
        if not self.hosts:
            raise LabError("no lab is up: `lvs-lab up` first")
        with progress.step(f"reading the site {key}"):
            if key in self.extra_sites or not os.path.exists(os.path.join(self.pillar_dir, "lvs", f"{key}.sls")):
                raise LabError(f"no site {key!r} to add: {self.pillar_dir}/lvs/{key}.sls does not exist "
                               "or the lab runs it already")
            site = self._load_sls(key)
            hosts = plan.build(site, key=key, first_index=max(h.index for h in self.hosts.values()) + 1)
            taken = sorted(set(hosts) & set(self.hosts))
            if taken:
                raise LabError(f"site {key!r} names hosts another site of the lab has: {', '.join(taken)}")
            self.hosts.update(hosts)
            self._save_manifest()
        with progress.step(f"wiring site {key}: its LAN bridge, client, router and taps"):
            self._wire_site(list(hosts.values()))
            self._write_minion_configs(hosts.values())
            self._serve_top()
        self._start_site(key, list(hosts.values()), progress)
        if apply:
            with progress.step(f"state.apply on site {key}"):
                self.apply(minions=self.site_minions(key))
            with progress.step(f"waiting for site {key}'s directors to find every backend serving"):
                self.wait_serving(SERVING_TIMEOUT, key=key)
        return self

    def _load_sls(self, key):
        """Parse ``pillar/lvs/<key>.sls`` as the master would compile it alone."""
        root = self._path("pillar-probe", key)
        os.makedirs(root, exist_ok=True)
        with open(os.path.join(root, "top.sls"), "w", encoding="utf-8") as fh:
            json.dump({"base": {"*": [f"lvs.{key}"]}}, fh)
        return load_site([root, self.pillar_dir], cachedir=self._path("pillar-render"))

    def _start_site(self, key, hosts, progress):
        """Start the minions of ``hosts`` (a router's, kernels) and wait for their answers."""
        uml_hosts = [h.name for h in hosts if h.engine == "uml"]
        with progress.step("putting the pack in the minions' extension modules (Salt's sync, run here)"):
            self.seed_pack(hosts)
        with progress.step(f"booting {len(uml_hosts)} user-mode Linux kernels" + (f" of site {key}" if key else "")):
            for host in hosts:
                if host.engine == "netns" and host.minion:
                    self._start_native_minion(host)
            for name in uml_hosts:
                self.boot(name)
            self.wait_booted(uml_hosts)
        names = [h.name for h in hosts if h.minion]
        with progress.step(f"waiting for {len(names)} minions to answer the master"):
            self.wait_minions(names)

    def remove_site(self, key, progress=None):
        """Take the lab's further site ``key`` away (kernels, minions and their keys,
        wires, files); the other sites go on as they were."""
        progress = progress or Progress()
        hosts = [h for h in self.hosts.values() if h.site == key]
        if key is None or not hosts:
            raise LabError(f"the lab runs no further site {key!r} (sites: {', '.join(self.extra_sites) or 'none'})")
        with progress.step(f"taking site {key} away"):
            for host in hosts:
                if host.engine == "uml":
                    self.halt(host.name)
                elif host.minion:
                    self._stop_native_minion(host)
            self._unwire_site(hosts)
            for host in hosts:
                self.hosts.pop(host.name)
                if host.minion:
                    self.forget_minion(host.name)
                shutil.rmtree(self.host_dir(host.name), ignore_errors=True)
            self._save_manifest()
            self._serve_top()

    @property
    def prometheus(self):
        """The lab's Prometheus server (``lvs_lab.prometheus``)."""
        return Prometheus(self._path("prometheus"))

    def _check_machine(self):
        problems = []
        if os.geteuid() != 0:
            problems.append("the lab needs root (namespaces, taps, kernels)")
        for tool in (UML, "/sbin/modprobe", "/usr/sbin/nft", "/usr/bin/prometheus"):
            if not os.path.exists(tool):
                problems.append(f"{tool} is missing (run scripts/bootstrap)")
        if os.path.exists(UML) and not uml.kernel_release(UML):
            problems.append(f"no kernel modules under {uml.MODULES_ROOT} for {UML} (reinstall user-mode-linux)")
        if not (shutil.which("cc") or shutil.which("gcc")):
            problems.append("no C compiler: the lab builds its ptrace shim for linux.uml at start "
                            "(apt-get install gcc libc6-dev; scripts/bootstrap does)")
        if not os.path.isdir(os.path.join(REPO, "_modules")):
            problems.append(f"{REPO} is not a checkout of the pack (no _modules/)")
        if problems:
            raise LabError("this machine cannot run the lab:\n  " + "\n  ".join(problems))

    def down(self, progress=None):
        """Stop every lab process and remove every namespace, device and file of the lab."""
        progress = progress or Progress()
        with progress.step("stopping kernels, minions and master"):
            for name in os.listdir(self._path("hosts")) if os.path.isdir(self._path("hosts")) else ():
                self.halt(name)
            deadline = time.monotonic() + 15
            while True:
                reap_children()
                # A zombie holds nothing but its pid; its parent (this process, init or
                # a subreaper) reaps it, so only live processes are waited for.
                pids = self.processes(zombies=False)
                if not pids or time.monotonic() > deadline:
                    break
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.2)
        with progress.step("removing namespaces and the state folder"):
            for ns in self.namespaces():
                sh("ip", "netns", "del", ns, check=False)
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(self.state_dir)
        deadline = time.monotonic() + 10
        left = self.leftovers()
        while left and time.monotonic() < deadline:
            time.sleep(0.2)
            left = self.leftovers()
        if left:
            raise LabError("lvs-lab down left these behind:\n  " + "\n  ".join(left))

    def leftovers(self):
        """Everything of the lab still present: processes, namespaces, mounts, taps, files."""
        left = [f"process {pid}" for pid in self.processes()]
        left += [f"namespace {ns}" for ns in self.namespaces()]
        with open("/proc/self/mounts", encoding="utf-8") as fh:
            left += [f"mount {line.split()[1]}" for line in fh if "lvslab" in line or self.state_dir in line]
        links = sh("ip", "-o", "link", "show", capture=True, check=False).stdout
        left += [f"device {line.split(':')[1].strip()}" for line in links.splitlines() if ": lab" in line]
        if os.path.exists(self.state_dir):
            left.append(f"folder {self.state_dir}")
        return left

    def _hint(self, names, problem, logname):
        lines = [f"{', '.join(sorted(names))} {problem}; the last lines of their {logname}:"]
        for name in sorted(names):
            path = os.path.join(self.host_dir(name), logname)
            with contextlib.suppress(OSError), open(path, encoding="utf-8", errors="replace") as fh:
                lines += [f"  {name}: {line.rstrip()}" for line in fh.readlines()[-8:]]
        return "\n".join(lines)
