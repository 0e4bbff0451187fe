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
from lvs_lab.saltd import SaltDaemons
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

    def up(self, pillar_dir, progress=None, site=None, apply=True):
        """Build the site in ``pillar_dir`` (its top file's, or ``pillar/lvs/<site>.sls``),
        start Salt, apply the states (unless ``apply`` is false: the hosts stay as their
        installer left them); raise LabError."""
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
            self._wire(site)
        with progress.step("writing Salt configs and keys"):
            self._write_salt_config()
        with progress.step("starting salt-master and the router's minion"):
            self._start_master()
            for host in self.hosts.values():
                if host.engine == "netns" and host.minion:
                    self._start_native_minion(host)
        uml_hosts = [h for h in self.hosts.values() if h.engine == "uml"]
        with progress.step(f"booting {len(uml_hosts)} user-mode Linux kernels"):
            for host in uml_hosts:
                self.boot(host.name)
            self.wait_booted([h.name for h in uml_hosts])
        with progress.step(f"waiting for {len(self.minions)} minions to answer the master"):
            self.wait_minions(self.minions)
        if apply:
            with progress.step("salt '*' state.apply"):
                self.apply()
            with progress.step("waiting for the directors to find every backend serving"):
                self.wait_serving(SERVING_TIMEOUT)
        if site.metrics.port is not None:
            with progress.step("starting Prometheus (scrapes the directors on the management network)"):
                self.prometheus.start([f"{h.mgmt_ip}:{site.metrics.port}" for h in self.hosts.values()
                                       if h.role == "director"])
        return self

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
