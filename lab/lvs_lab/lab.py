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
import ctypes
import io
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time

import yaml

import lvs_salt.fileserver
import lvs_salt.master
from lvs_lab import agent, plan, uml
from lvs_lab.progress import Progress
from lvs_lab.prometheus import Prometheus

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout: lab/lvs_lab/..
STATE_DIR = os.environ.get("LVS_LAB_DIR", "/run/lvs-lab")
UML = "/usr/bin/linux.uml"
UML_MEM = os.environ.get("LVS_LAB_MEM", "384M")  # per UML kernel; the 1,000-service benchmark wants more
GUEST_MODULES = "ipip ip_vs ip_vs_rr ip_vs_wrr ip_vs_wlc"
BIN = os.path.dirname(os.path.abspath(sys.executable))
CLONE_NEWNET = 0x40000000


_IPVSADM_DEST = re.compile(r"^-a -[tus] (\S+) -r (\S+) .*-w (\d+)")  # a destination in ipvsadm-save -n
SERVING_TIMEOUT = 60  # s: a site just applied serves by then (path checks: rise 2 x 0.5 s)


class LabError(RuntimeError):
    """Something in the lab failed; the message says what and where to look."""


def reap_children():
    """Wait for this process's own exited children (kernels it booted and killed)."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def sh(*argv, check=True, capture=False, netns=None, timeout=120, **kwargs):
    """Run a command on the real machine (optionally inside a lab namespace)."""
    if netns:
        argv = ("ip", "netns", "exec", netns, *argv)
    proc = subprocess.run(
        [str(a) for a in argv],
        check=False,
        text=True,
        capture_output=capture,
        timeout=timeout,
        **kwargs,
    )
    if check and proc.returncode != 0:
        detail = (proc.stderr or "").strip() if capture else ""
        raise LabError(f"command failed ({proc.returncode}): {' '.join(map(str, argv))}\n{detail}")
    return proc


def _setns(path):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise LabError(f"setns {path}: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(fd)


def connect_in_switch(address, timeout=10):
    """A TCP connection opened from inside the lab's switch namespace.

    A socket stays in the namespace it was created in, so only this thread visits the
    namespace, for the time of the ``connect``.
    """
    import socket  # noqa: PLC0415

    home = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    try:
        _setns(f"/run/netns/{plan.SWITCH_NS}")
        try:
            return socket.create_connection(address, timeout=timeout)
        finally:
            _setns(f"/proc/self/fd/{home}")
    finally:
        os.close(home)


def site_tree(name="seed"):
    """The ``lvs`` tree of the repository's site ``pillar/lvs/NAME.sls`` (plain YAML), to
    edit and serve with :meth:`Lab.set_pillar`."""
    with open(os.path.join(REPO, "pillar", "lvs", f"{name}.sls"), encoding="utf-8") as fh:
        return yaml.safe_load(fh)["lvs"]


def load_site(pillar_roots):
    """Compile the site's pillar with Salt itself (Jinja, top file) and parse it.

    ``pillar_roots``: one folder or a list (the first holding a file wins, as on the
    master). Compiled in-process: Salt 3008 masks pillar values in ``salt-call`` output.
    """
    roots = [pillar_roots] if isinstance(pillar_roots, str) else list(pillar_roots)
    import salt.config  # noqa: PLC0415
    import salt.pillar  # noqa: PLC0415

    import lvstun.site  # noqa: PLC0415 (Salt is imported lazily: the CLI starts faster)

    opts = salt.config.minion_config(None)
    opts.update(
        id="lvs-lab",
        file_client="local",
        pillar_roots={"base": [os.path.abspath(root) for root in roots]},
        cachedir=os.path.join(STATE_DIR, "pillar-render"),
    )
    pillar = salt.pillar.get_pillar(opts, {}, opts["id"], saltenv="base").compile_pillar()
    if pillar.get("_errors"):
        raise LabError(f"pillar errors in {', '.join(roots)}: {list(pillar['_errors'])}")
    try:
        return lvstun.site.parse(pillar)
    except lvstun.site.SiteError as err:
        raise LabError(str(err)) from None


def shell_assignments(env):
    """``KEY='value'`` lines that a POSIX shell sources as plain values, whatever the
    values hold (quotes, ``$( )``, newlines): the guest's init sources host.env."""
    return "".join(f"{key}={shlex.quote(str(value))}\n" for key, value in env.items())


def write_new(path, text, mode):
    """Write ``path`` afresh, created with ``mode`` (no moment with wider permissions)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().decode(errors="replace").replace("\0", " ")
    except OSError:
        return ""


class Lab:
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

    # ---------------------------------------------------------------- paths and config
    def _path(self, *parts):
        return os.path.join(self.state_dir, *parts)

    def host_dir(self, name):
        return self._path("hosts", name)

    @property
    def master_conf_dir(self):
        return self._path("master", "etc")

    @property
    def pillar_overlay(self):
        """The master's first pillar root: a top file naming the lab's site (``--site``)
        or a tree a test set with :meth:`set_pillar`; the user's pillar folder follows."""
        return self._path("pillar")

    @property
    def pillar_roots(self):
        return [self.pillar_overlay, self.pillar_dir]

    def site(self):
        """The site as the master serves it now (parsed and validated)."""
        return load_site(self.pillar_roots)

    def director_group(self):
        """``{director minion id: in the router's group}`` (a Linux router with several
        directors: the resilient nexthop group the pack keeps; lvstun.dirgroup)."""
        from lvstun import dirgroup  # noqa: PLC0415  (the pack's shared code, as the lab's tests use it)

        spec = dirgroup.spec(self.site())
        out = subprocess.run(["ip", "-n", self.hosts["router"].netns, "-j", "nexthop", "show", "id",
                              str(spec["group"])], capture_output=True, text=True, check=True).stdout
        held = {m["id"] for m in json.loads(out)[0]["group"]}
        return {name: member["id"] in held for name, member in spec["members"].items()}

    def director_weights(self, director):
        """``{(service "vip:port", real server address): weight}`` of every destination in
        ``director``'s IPVS table, read with ipvsadm-save (apart from the pack)."""
        code, out, err = self.capture(director, "ipvsadm-save", "-n")
        if code != 0:
            raise LabError(f"ipvsadm-save on {director} failed: {err.strip()}")
        found = {}
        for line in out.splitlines():
            match = _IPVSADM_DEST.match(line)
            if match:
                found[match.group(1), match.group(2).rsplit(":", 1)[0]] = int(match.group(3))
        return found

    def wait_serving(self, timeout):
        """Wait until every director runs every backend of every service at the weight
        the pillar gives (a site just applied: each director's path checks have found
        its backends answering); raise LabError naming the others after ``timeout``."""
        from lvstun import health  # noqa: PLC0415  (the pack's shared code, as the lab's tests use it)

        site = self.site()
        want = {}
        for svc in site.services.values():
            live = health.live_weights(svc, {})
            want.update({(f"{svc.vip}:{svc.port}", b.address): live[b.minion_id] for b in svc.backends})
        deadline = time.monotonic() + timeout
        while True:
            wrong = {}
            for director in (h.minion_id for h in site.directors):
                have = self.director_weights(director)
                wrong.update({f"{director} {service} -> {address}": (have.get((service, address)), weight)
                              for (service, address), weight in want.items()
                              if have.get((service, address)) != weight})
            if not wrong:
                return
            if time.monotonic() > deadline:
                raise LabError(f"after {timeout} s, backends not at their pillar weight (have, want): {wrong}; "
                               "their health checks do not pass (`lvs-lab salt -- DIRECTOR lvs_health.local`, "
                               "`lvs-lab salt -- DIRECTOR lvs_health.record`)")
            time.sleep(0.5)

    def wait_director_group(self, want, timeout):
        """Wait until the router's group holds exactly the directors ``want``; return the
        monotonic time it did, or raise LabError."""
        deadline = time.monotonic() + timeout
        while (held := sorted(n for n, inside in self.director_group().items() if inside)) != sorted(want):
            if time.monotonic() > deadline:
                raise LabError(f"the router's director group holds {held}, not {sorted(want)}, after {timeout} s")
            time.sleep(0.1)
        return time.monotonic()

    def _write_top(self, sls):
        """Serve ``sls`` (or, when None, what the user's top file names), followed by
        the lab's own setting: the directors' metrics on the management network, where
        the lab's Prometheus scrapes them."""
        os.makedirs(os.path.join(self.pillar_overlay, "lvs_lab"), exist_ok=True)
        with open(os.path.join(self.pillar_overlay, "lvs_lab", "lab.sls"), "w", encoding="utf-8") as fh:
            yaml.safe_dump({"lvs": {"metrics": {"listen": str(plan.MGMT_NET)}}}, fh)
        if sls is None:
            try:
                with open(os.path.join(self.pillar_dir, "top.sls"), encoding="utf-8") as fh:
                    top = yaml.safe_load(fh)
                targets = [entries for env in top.values() for entries in env.values()]
            except (OSError, yaml.YAMLError, AttributeError) as err:
                raise LabError(f"cannot read the top file of {self.pillar_dir} (plain YAML wanted): {err}") from None
        else:
            top = {"base": {"*": [sls]}}
            targets = [top["base"]["*"]]
        for entries in targets:
            entries.append("lvs_lab.lab")
        with open(os.path.join(self.pillar_overlay, "top.sls"), "w", encoding="utf-8") as fh:
            yaml.safe_dump(top, fh)

    def set_pillar(self, tree):
        """Serve ``{"lvs": tree}`` as the site's pillar from now on (tests' pillar edits)."""
        os.makedirs(os.path.join(self.pillar_overlay, "lvs_lab"), exist_ok=True)
        with open(os.path.join(self.pillar_overlay, "lvs_lab", "edited.sls"), "w", encoding="utf-8") as fh:
            yaml.safe_dump({"lvs": tree}, fh)
        self._write_top("lvs_lab.edited")

    def reset_pillar(self):
        """Serve the lab's own site again (the user's pillar folder, ``--site``)."""
        self._write_top(f"lvs.{self.site_name}" if self.site_name else None)

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

    # ---------------------------------------------------------------- up
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

    def _wire(self, site):
        ns = plan.SWITCH_NS
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        for bridge in (plan.LAN_BRIDGE, plan.MGMT_BRIDGE):
            sh("ip", "-n", ns, "link", "add", bridge, "type", "bridge")
            sh("ip", "-n", ns, "link", "set", bridge, "up")
        sh("ip", "-n", ns, "addr", "add", f"{plan.MASTER_ADDRESS}/{plan.MGMT_NET.prefixlen}", "dev", plan.MGMT_BRIDGE)
        router = next(h for h in self.hosts.values() if h.role == "router")
        sh("ip", "netns", "add", self.hosts[plan.CLIENT].netns)
        sh("ip", "-n", self.hosts[plan.CLIENT].netns, "link", "set", "lo", "up")
        self._wire_router(router)
        for host in self.hosts.values():
            if host.engine != "uml":
                continue
            for network, bridge in (("lan", plan.LAN_BRIDGE), ("mgmt", plan.MGMT_BRIDGE)):
                sh("ip", "-n", ns, "tuntap", "add", "dev", host.tap(network), "mode", "tap")
                sh("ip", "-n", ns, "link", "set", host.tap(network), "master", bridge, "up")

    def _wire_router(self, router):
        """The router's namespace: LAN and management NICs into the switch, and its WAN
        NIC paired with the client's (the router's own LAN/WAN addresses, as an
        installer would set them; forwarding and NAT come from Salt)."""
        ns = plan.SWITCH_NS
        client = self.hosts[plan.CLIENT]
        sh("ip", "netns", "add", router.netns)
        sh("ip", "-n", router.netns, "link", "set", "lo", "up")
        for network, bridge, ifname, address in (
            ("lan", plan.LAN_BRIDGE, router.lan_interface, router.lan_address),
            ("mgmt", plan.MGMT_BRIDGE, "lab0", router.mgmt_address),
        ):
            peer = router.tap(network)
            sh("ip", "-n", ns, "link", "add", peer, "type", "veth", "peer", "name", ifname, "netns", router.netns)
            sh("ip", "-n", router.netns, "link", "set", ifname, "address", router.mac(network))
            sh("ip", "-n", ns, "link", "set", peer, "master", bridge, "up")
            sh("ip", "-n", router.netns, "addr", "add", address, "dev", ifname)
            sh("ip", "-n", router.netns, "link", "set", ifname, "up")
        wan_if = router.extra["wan_interface"]
        sh("ip", "-n", router.netns, "link", "add", wan_if, "type", "veth", "peer", "name", "eth0",
           "netns", client.netns)
        sh("ip", "-n", router.netns, "link", "set", wan_if, "address", router.mac("wan"))
        sh("ip", "-n", client.netns, "link", "set", "eth0", "address", client.mac("lan"))
        sh("ip", "-n", router.netns, "addr", "add", router.extra["wan_address"], "dev", wan_if)
        sh("ip", "-n", router.netns, "link", "set", wan_if, "up")
        sh("ip", "-n", client.netns, "addr", "add", client.lan_address, "dev", "eth0")
        sh("ip", "-n", client.netns, "link", "set", "eth0", "up")
        sh("ip", "-n", client.netns, "route", "add", "default", "via", client.gateway)

    def _unwire_router(self, router):
        """Take the router's namespace away as a power cut would: its processes killed,
        its NICs' pairs deleted (synchronously: the kernel frees a deleted namespace's
        devices later, in a work queue, so the next ``_wire_router`` could find the old
        names still taken), then the namespace itself."""
        pids = sh("ip", "netns", "pids", router.netns, capture=True, check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        for netns, link in ((plan.SWITCH_NS, router.tap("lan")), (plan.SWITCH_NS, router.tap("mgmt")),
                            (self.hosts[plan.CLIENT].netns, "eth0")):
            sh("ip", "-n", netns, "link", "del", link, check=False)
        sh("ip", "netns", "del", router.netns)

    def _minion_config(self, host):
        hdir = self.host_dir(host.name)
        in_guest = host.engine == "uml"
        run_dir = "/run/salt" if in_guest else os.path.join(hdir, "run")
        return {
            "id": host.name,
            "master": plan.MASTER_ADDRESS,
            "user": "root",
            "root_dir": hdir,
            "pki_dir": os.path.join(hdir, "pki"),
            # Salt puts these under root_dir (the host's folder): they outlive a reboot, as
            # /var/cache/salt does on a real host.
            "cachedir": os.path.join(run_dir, "cache"),
            "sock_dir": os.path.join(run_dir, "sock"),
            "pidfile": os.path.join(run_dir, "minion.pid"),
            "log_file": os.path.join(hdir, "minion.log"),
            "log_level_logfile": "info",
            # Lean for a kernel where system calls are expensive: jobs run in threads,
            # no DNS or GPU grains, no random waits at (re)connection.
            "multiprocessing": False,
            "enable_fqdns_grains": False,
            "enable_gpu_grains": False,
            "acceptance_wait_time": 1,
            "random_reauth_delay": 0,
            "recon_default": 200,
            "recon_max": 2000,
        }

    def _write_salt_config(self):
        import salt.crypt  # noqa: PLC0415

        mdir = self.master_conf_dir
        os.makedirs(os.path.join(mdir, "pki", "minions"), exist_ok=True)
        with open(os.path.join(mdir, "master"), "w", encoding="utf-8") as fh:
            yaml.safe_dump(
                {
                    "id": "lvs-lab-master",
                    "interface": plan.MASTER_ADDRESS,
                    "user": "root",
                    "root_dir": self._path("master"),
                    "pki_dir": os.path.join(mdir, "pki"),
                    "log_file": self._path("master", "master.log"),
                    "log_level_logfile": "info",
                    # The classic way: the checkout as file roots, modules synced to minions.
                    **lvs_salt.fileserver.master_config(REPO),
                    # Backend health: the beacons' reactor and the directors' ext_pillar.
                    **lvs_salt.master.config(),
                    "pillar_roots": {"base": self.pillar_roots},
                    "worker_threads": 4,
                    # Jobs on a UML kernel are slow to answer "still running?": the CLI waits
                    # for returns this long before it asks.
                    "timeout": 60,
                },
                fh,
            )
        for host in self.hosts.values():
            if not host.minion:
                continue
            hdir = self.host_dir(host.name)
            os.makedirs(os.path.join(hdir, "etc"), exist_ok=True)
            with open(os.path.join(hdir, "etc", "minion"), "w", encoding="utf-8") as fh:
                yaml.safe_dump(self._minion_config(host), fh)
            # Pre-seeded keys: the master knows every lab minion before it first connects.
            pki = os.path.join(hdir, "pki")
            os.makedirs(pki, exist_ok=True)
            private, public = salt.crypt.gen_keys(2048)
            for path, text, mode in (
                (os.path.join(pki, "minion.pem"), private, 0o400),  # never readable by others, even briefly
                (os.path.join(pki, "minion.pub"), public, 0o644),
                (os.path.join(mdir, "pki", "minions", host.name), public, 0o644),
            ):
                write_new(path, text, mode)

    def _start_master(self):
        sh(os.path.join(BIN, "salt-master"), "-c", self.master_conf_dir, "-d", netns=plan.SWITCH_NS)

    def master_pids(self):
        """The live processes of the lab's salt-master."""
        return [pid for pid in self.processes(zombies=False)
                if "salt-master" in _cmdline(pid) and self.master_conf_dir in _cmdline(pid)]

    def stop_master(self):
        """Stop the lab's salt-master (every process of it) as a crash would."""
        deadline = time.monotonic() + 15
        while pids := self.master_pids():
            if time.monotonic() > deadline:
                raise LabError("the lab's salt-master did not stop")
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)

    def start_master(self, timeout=240, minions=None):
        """Start the lab's salt-master again and wait until every minion (or those of
        ``minions``) answers it."""
        self._start_master()
        self.wait_minions(self.minions if minions is None else minions, timeout=timeout)

    def _stop_native_minion(self, host):
        pidfile = os.path.join(self.host_dir(host.name), "run", "minion.pid")
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError), \
                open(pidfile, encoding="utf-8") as fh:
            os.kill(int(fh.read()), signal.SIGKILL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            pids = [pid for pid in self.processes() if f"hosts/{host.name}/etc" in _cmdline(pid)]
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
        raise LabError(f"the minion of {host.name} did not stop")

    def _start_native_minion(self, host):
        sh(os.path.join(BIN, "salt-minion"), "-c", os.path.join(self.host_dir(host.name), "etc"), "-d",
           netns=host.netns)

    # ---------------------------------------------------------------- UML hosts
    def shim(self):
        """The ptrace shim every ``linux.uml`` of the lab runs with (built if needed)."""
        try:
            return uml.build_shim(self.state_dir)
        except uml.BuildError as err:
            raise LabError(str(err)) from None

    def boot(self, name):
        """Boot (or re-boot) the UML kernel of host ``name``; return without waiting."""
        host = self.hosts[name]
        hdir = self.host_dir(name)
        os.makedirs(hdir, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(hdir, "booted"))
        lab_parent = os.path.dirname(os.path.dirname(os.path.abspath(agent.__file__)))
        env = {
            "LAB_NAME": name,
            "LAB_LAN_IF": host.lan_interface,
            "LAB_LAN_ADDR": host.lan_address,
            "LAB_GATEWAY": host.gateway or "",
            "LAB_MGMT_ADDR": host.mgmt_address,
            "LAB_MODULES": GUEST_MODULES,
            "LAB_PYTHON": sys.executable,
            "LAB_PYTHONPATH": lab_parent,
            "LAB_BIND": " ".join(sorted({REPO, lab_parent, os.path.dirname(BIN), sys.base_prefix})),
            "LAB_WEB": " ".join(f"--port {p}" for p in host.extra.get("tcp_ports", [])) + "".join(
                f" --udp-port {p}" for p in host.extra.get("udp_ports", [])) if host.role == "realserver" else "",
            "LAB_MINION": os.path.join(BIN, "salt-minion") if host.minion else "",
        }
        with open(os.path.join(hdir, "host.env"), "w", encoding="utf-8") as fh:
            fh.write(shell_assignments(env))
        init = os.path.join(os.path.dirname(os.path.abspath(__file__)), "guest-init")
        argv = [
            UML,
            f"mem={UML_MEM}",
            "rootfstype=hostfs",
            "rootflags=/",
            "ro",
            f"init={init}",
            f"LAB_HOSTDIR={hdir}",
            "con0=null,fd:1",
            "con=null",
            f"umid=lvslab-{name}",
            f"uml_dir={self._path('uml')}",
            # Fixed MACs, as real NICs have: a rebooted host keeps its neighbours' ARP entries.
            f"vec0:transport=tap,ifname={host.tap('lan')},mac={host.mac('lan')}",
            f"vec1:transport=tap,ifname={host.tap('mgmt')},mac={host.mac('mgmt')}",
        ]
        os.makedirs(self._path("uml"), exist_ok=True)
        # Every kernel runs with the ptrace shim, on every CPU: where UML's FPU buffer is
        # as large as the CPU's XSAVE area it passes requests through (docs/lab.md).
        preload = f"LD_PRELOAD={self.shim()}"
        # Exec'd, not under a shell: linux.uml makes itself a session leader, and halt()
        # kills that session by the pid recorded here.
        with open(os.path.join(hdir, "console.log"), "wb") as console:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", plan.SWITCH_NS, "env", preload, *argv],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        for pidfile in ("kernel.pid", "kernel.pgid"):
            with open(os.path.join(hdir, pidfile), "w", encoding="utf-8") as fh:
                fh.write(str(proc.pid))

    def halt(self, name):
        """Stop the UML kernel of ``name`` at once (as pulling its power cord would)."""
        pidfile = os.path.join(self.host_dir(name), "kernel.pid")
        with contextlib.suppress(FileNotFoundError, ValueError):
            with open(pidfile, encoding="utf-8") as fh:
                pgid = int(fh.read())
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            os.unlink(pidfile)

    def wait_booted(self, names, timeout=120):
        """Wait until the kernels of ``names`` ran their init; raise LabError saying why
        one did not (at once when its kernel is gone), or lacks a kernel module."""
        deadline = time.monotonic() + timeout
        pending = set(names)
        while pending:
            pending = {n for n in pending if not os.path.exists(os.path.join(self.host_dir(n), "booted"))}
            dead = {n for n in pending if not self._kernel_running(n)}
            if dead or (pending and time.monotonic() > deadline):
                raise LabError(self._boot_failure(dead or pending, "stopped before its init ran" if dead
                                                  else f"did not finish booting in {timeout} s"))
            if pending:
                time.sleep(0.2)
        missing = {n for n in names if "lab: modprobe" in self._console(n)}
        if missing:
            raise LabError(self._boot_failure(missing, "booted without a kernel module the lab needs"))

    def _console(self, name):
        with contextlib.suppress(OSError), open(os.path.join(self.host_dir(name), "console.log"),
                                                encoding="utf-8", errors="replace") as fh:
            return fh.read()
        return ""

    def _kernel_running(self, name):
        """Whether the ``linux.uml`` process of ``name`` is still there (not a zombie)."""
        try:
            with open(os.path.join(self.host_dir(name), "kernel.pid"), encoding="utf-8") as fh:
                pid = int(fh.read())
            with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
                return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, ValueError, IndexError):
            return False

    def _boot_failure(self, names, problem):
        """One line per host: what its console says went wrong, and what to do."""
        release = uml.kernel_release(UML)
        lines = []
        for name in sorted(names):
            console = os.path.join(self.host_dir(name), "console.log")
            why = uml.diagnose(self._console(name), release=release, shim=os.path.join(self.state_dir,
                                                                                         uml.SHIM_NAME))
            if why is None:
                return self._hint(names, problem, "console.log")
            lines.append(f"{name} {problem}: {why} (console: {console})")
        return "\n".join(lines)

    def restart(self, name, timeout=180):
        """Power-cycle host ``name`` and wait until its minion answers again.

        A kernel host is killed and booted again; the router's namespace is deleted
        (with everything the kernel held for it) and made again, as a reboot would."""
        host = self.hosts.get(name)
        if host is None or not host.minion:
            raise LabError(f"no lab host with a minion named {name!r}; hosts: {', '.join(self.minions)}")
        if host.engine == "uml":
            self.halt(name)
            self.boot(name)
            self.wait_booted([name])
        else:
            self._stop_native_minion(host)
            self._unwire_router(host)
            self._wire_router(host)
            self._start_native_minion(host)
        self.wait_minions([name], timeout=timeout)

    # ---------------------------------------------------------------- Salt
    def salt_argv(self, *args):
        return ["ip", "netns", "exec", plan.SWITCH_NS, os.path.join(BIN, "salt"), "-c", self.master_conf_dir, *args]

    def salt(self, *args, timeout=600):
        """Run the ``salt`` CLI on the lab's master; return (exit code, stdout, stderr)."""
        proc = subprocess.run(self.salt_argv(*args), capture_output=True, text=True, timeout=timeout, check=False)
        return proc.returncode, proc.stdout, proc.stderr

    def salt_json(self, *args, timeout=600):
        """Run ``salt --out=json --static ARGS`` and return the returns by minion id."""
        code, out, err = self.salt("--out=json", "--static", *args, timeout=timeout)
        try:
            return json.loads(out) if out.strip() else {}
        except json.JSONDecodeError:
            raise LabError(f"salt {' '.join(args)} printed no JSON (exit {code}):\n{out}\n{err}") from None

    def salt_run(self, *args, timeout=300):
        """Run ``salt-run --out=json ARGS`` on the lab's master; return its data."""
        argv = ["ip", "netns", "exec", plan.SWITCH_NS, os.path.join(BIN, "salt-run"), "-c", self.master_conf_dir,
                "--out=json", *args]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        try:
            return json.loads(proc.stdout) if proc.stdout.strip() else None
        except json.JSONDecodeError:
            raise LabError(f"salt-run {' '.join(args)} printed no JSON (exit {proc.returncode}):\n"
                           f"{proc.stdout}\n{proc.stderr}") from None

    @property
    def master_cachedir(self):
        """The lab master's cache (Salt prefixes its default with the root_dir)."""
        return os.path.join(self._path("master"), "var", "cache", "salt", "master")

    def cut(self, name, cut=True):
        """Unplug (or plug back) the LAN cable of UML host ``name``: its tap leaves (or
        rejoins) the LAN bridge; the management network, and so its minion, stays. The tap
        itself stays up: UML's network driver stops sending for good once a write to a
        tap that is down fails."""
        tap = self.hosts[name].tap("lan")
        if cut:
            sh("ip", "-n", plan.SWITCH_NS, "link", "set", tap, "nomaster")
        else:
            sh("ip", "-n", plan.SWITCH_NS, "link", "set", tap, "master", plan.LAN_BRIDGE)

    def wait_minions(self, names, timeout=240):
        deadline = time.monotonic() + timeout
        pending = set(names)
        while pending:
            target = ",".join(sorted(pending))
            answered = self.salt_json("-L", target, "test.ping", "--timeout=3", timeout=60)
            pending -= {mid for mid, ret in answered.items() if ret is True}
            if not pending:
                return
            if time.monotonic() > deadline:
                raise LabError(self._hint(pending, "did not answer the lab's master", "minion.log"))
            time.sleep(1)

    def apply(self, *args):
        """``salt '*' state.apply ARGS`` on the whole site; raise LabError unless all succeeded."""
        returns = self.salt_json("--timeout=600", "*", "state.apply", *args, timeout=900)
        failures = []
        for mid in self.minions:
            ret = returns.get(mid)
            if not isinstance(ret, dict):
                failures.append(f"{mid}: {ret!r}" if ret is not None else f"{mid}: no return")
                continue
            failures += [f"{mid}: {state}: {r.get('comment')}" for state, r in ret.items() if not r.get("result")]
        if failures:
            raise LabError("state.apply failed:\n  " + "\n  ".join(failures))
        return returns

    # ---------------------------------------------------------------- exec
    def exec(self, name, argv, stdin=b"", out=None, err=None):
        """Run ``argv`` on lab host ``name``, passing its output to ``out``/``err``
        (binary streams, default this process's); return its exit code."""
        host = self.hosts.get(name)
        if host is None:
            raise LabError(f"no lab host {name!r}; hosts: {', '.join(sorted(self.hosts))}")
        out = out or sys.stdout.buffer
        err = err or sys.stderr.buffer
        if host.engine == "uml":
            return agent.run(host.mgmt_ip, argv, stdin=stdin, out=out, err=err, connect=connect_in_switch)
        proc = subprocess.run(["ip", "netns", "exec", host.netns, *argv], input=stdin, capture_output=True,
                              check=False)
        out.write(proc.stdout)
        err.write(proc.stderr)
        return proc.returncode

    def capture(self, name, *argv):
        """Run a command on ``name``; return (exit code, stdout text, stderr text)."""
        out, err = io.BytesIO(), io.BytesIO()
        code = self.exec(name, argv, out=out, err=err)
        return code, out.getvalue().decode(), err.getvalue().decode()

    # ---------------------------------------------------------------- down
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

    def processes(self, zombies=True):
        """PIDs of processes that belong to the lab (zombies too unless ``zombies`` is
        false): by command line, or by the process group of a kernel the lab started."""
        groups = set()
        for name in os.listdir(self._path("hosts")) if os.path.isdir(self._path("hosts")) else ():
            with contextlib.suppress(OSError, ValueError), \
                    open(os.path.join(self.host_dir(name), "kernel.pgid"), encoding="utf-8") as fh:
                groups.add(int(fh.read()))
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    cmdline = fh.read().decode(errors="replace")
                with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as fh:
                    state, _ppid, pgid = fh.read().rsplit(")", 1)[1].split()[:3]
                pgid = int(pgid)
            except (OSError, ValueError, IndexError):
                continue
            if state == "Z" and not zombies:
                continue
            if self.state_dir in cmdline or "umid=lvslab-" in cmdline or pgid in groups:
                pids.append(int(entry))
        return pids

    @staticmethod
    def namespaces():
        names = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
        return sorted(n for n in names if n == plan.SWITCH_NS or n.startswith(plan.SWITCH_NS + "-"))

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

