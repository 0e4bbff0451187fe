"""Salt in the lab: the pillar it serves (the site, a test's edits), the master's and
minions' configuration, the daemons, and the Salt CLI run against them.

A part of :class:`lvs_lab.lab.Lab` (a mixin: the lab's state is the Lab's)."""

import contextlib
import json
import os
import signal
import subprocess
import time

import yaml

import lvs_salt.fileserver
import lvs_salt.master
from lvs_lab import plan
from lvs_lab.system import (
    BIN,
    REPO,
    LabError,
    sh,
    write_new,
)

# The module types ``saltutil.sync_all`` pushes to a minion (Salt's list, in its order).
SYNC_FORMS = ("clouds", "beacons", "modules", "states", "sdb", "grains", "renderers", "returners", "output",
              "utils", "log_handlers", "executors", "proxy", "engines", "thorium", "serializers", "matchers",
              "resources")


def site_tree(name="seed"):
    """The ``lvs`` tree of the repository's site ``pillar/lvs/NAME.sls`` (plain YAML), to
    edit and serve with :meth:`Lab.set_pillar`."""
    with open(os.path.join(REPO, "pillar", "lvs", f"{name}.sls"), encoding="utf-8") as fh:
        return yaml.safe_load(fh)["lvs"]


def load_site(pillar_roots, cachedir, minion="lvs-lab"):
    """Compile the site's pillar with Salt itself (Jinja, top file) as the master would
    for ``minion`` and parse it.

    ``pillar_roots``: one folder or a list (the first holding a file wins, as on the
    master); ``cachedir``: where Salt may cache what it renders. Compiled in-process:
    Salt 3008 masks pillar values in ``salt-call`` output.
    """
    roots = [pillar_roots] if isinstance(pillar_roots, str) else list(pillar_roots)
    import salt.config  # noqa: PLC0415
    import salt.pillar  # noqa: PLC0415

    import lvstun.site  # noqa: PLC0415 (Salt is imported lazily: the CLI starts faster)

    opts = salt.config.minion_config(None)
    opts.update(
        id=minion,
        file_client="local",
        pillar_roots={"base": [os.path.abspath(root) for root in roots]},
        cachedir=cachedir,
    )
    pillar = salt.pillar.get_pillar(opts, {}, opts["id"], saltenv="base").compile_pillar()
    if pillar.get("_errors"):
        raise LabError(f"pillar errors in {', '.join(roots)}: {list(pillar['_errors'])}")
    try:
        return lvstun.site.parse(pillar)
    except lvstun.site.SiteError as err:
        raise LabError(str(err)) from None


def last_json(text):
    """The last of the JSON documents ``text`` holds, one after the other (salt-run prints
    a runner's progress events before its return), or None when it holds none."""
    decoder, at, found = json.JSONDecoder(), 0, None
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at >= len(text):
            return found
        found, at = decoder.raw_decode(text, at)


class SaltDaemons:
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

    def _write_top(self, sls):
        """Serve ``sls`` (or, when None, what the user's top file names) to the lab's
        first site, and ``lvs.<site>`` to each further site, each followed by the lab's
        own setting: the directors' metrics on the management network, where the lab's
        Prometheus scrapes them. With one site, every target is the user's (``'*'``);
        with several, each site's minions are its target (a list), as a master serving
        many sites has it."""
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
        with open(os.path.join(self.pillar_overlay, "lvs_lab", "first.yaml"), "w", encoding="utf-8") as fh:
            yaml.safe_dump(top, fh)
        self._serve_top()

    def _serve_top(self):
        """Write the top file: the first site's (``lvs_lab/first.yaml``), alone or beside
        the further sites."""
        with open(os.path.join(self.pillar_overlay, "lvs_lab", "first.yaml"), encoding="utf-8") as fh:
            top = yaml.safe_load(fh)
        if self.extra_sites:
            first = [entry for entries in (e for env in top.values() for e in env.values())
                     for entry in entries if not isinstance(entry, dict)]
            top = {"base": {self._site_target(None): [{"match": "list"}, *dict.fromkeys(first)]}}
            for key in self.extra_sites:
                top["base"][self._site_target(key)] = [{"match": "list"}, f"lvs.{key}", "lvs_lab.lab"]
        with open(os.path.join(self.pillar_overlay, "top.sls"), "w", encoding="utf-8") as fh:
            yaml.safe_dump(top, fh)

    @property
    def extra_sites(self):
        """The lab's further sites (their ``pillar/lvs/<site>.sls`` names), in order."""
        return list(dict.fromkeys(h.site for h in sorted(self.hosts.values(), key=lambda h: h.index)
                                  if h.site is not None))

    def set_pillar(self, tree, key=None):
        """Serve ``{"lvs": tree}`` as the pillar of the lab's site ``key`` (None: its first
        site) from now on (tests' pillar edits). A further site's is served in place of
        ``pillar/lvs/<key>.sls`` (the lab's pillar root comes first)."""
        if key is not None:
            os.makedirs(os.path.join(self.pillar_overlay, "lvs"), exist_ok=True)
            with open(self._site_overlay(key), "w", encoding="utf-8") as fh:
                yaml.safe_dump({"lvs": tree}, fh)
            return
        os.makedirs(os.path.join(self.pillar_overlay, "lvs_lab"), exist_ok=True)
        with open(os.path.join(self.pillar_overlay, "lvs_lab", "edited.sls"), "w", encoding="utf-8") as fh:
            yaml.safe_dump({"lvs": tree}, fh)
        self._write_top("lvs_lab.edited")

    def site_minions(self, key=None):
        """The minion ids of the lab's site ``key`` (None: its first site)."""
        return sorted(name for name, host in self.hosts.items() if host.minion and host.site == key)

    def _site_target(self, key):
        return ",".join(self.site_minions(key))

    def reset_pillar(self, key=None):
        """Serve the lab's own site again (the user's pillar folder, ``--site``), or the
        further site ``key``'s own."""
        if key is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._site_overlay(key))
            return
        self._write_top(f"lvs.{self.site_name}" if self.site_name else None)

    def _site_overlay(self, key):
        return os.path.join(self.pillar_overlay, "lvs", f"{key}.sls")

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
            # The pack is put in place once, before the minion first starts (``seed_pack``),
            # not synced again at every highstate (Salt's default, which users keep): on UML a
            # highstate's sync of every module type takes 10 of its 14 s, and the lab
            # never changes the pack under a running site. A default minion syncing at
            # its highstate is tested on the host (tests/functional/test_fileserver.py).
            "autoload_dynamic_modules": False,
        }

    def _write_salt_config(self):
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
                    # Backend health: the beacons' reactor and the directors' ext_pillar;
                    # the runner's hooks write a line each to hooks.log (docs/hooks.md).
                    **lvs_salt.master.config(hook_command=[
                        "/bin/sh", "-c", 'printf "%s|%s|%s|%s\\n" "$1" "$2" "$3" "$4" >> "$0"', self.hooks_log]),
                    "pillar_roots": {"base": self.pillar_roots},
                    "worker_threads": 4,
                    # Jobs on a UML kernel are slow to answer "still running?": the CLI waits
                    # for returns this long before it asks.
                    "timeout": 60,
                },
                fh,
            )
        self._write_minion_configs(self.hosts.values())

    def _write_minion_configs(self, hosts):
        """Each minion's config and its keys, pre-seeded: the master knows every lab
        minion before it first connects."""
        import salt.crypt  # noqa: PLC0415

        mdir = self.master_conf_dir
        for host in hosts:
            if not host.minion:
                continue
            hdir = self.host_dir(host.name)
            os.makedirs(os.path.join(hdir, "etc"), exist_ok=True)
            with open(os.path.join(hdir, "etc", "minion"), "w", encoding="utf-8") as fh:
                yaml.safe_dump(self._minion_config(host), fh)
            pki = os.path.join(hdir, "pki")
            os.makedirs(pki, exist_ok=True)
            private, public = salt.crypt.gen_keys(2048)
            for path, text, mode in (
                (os.path.join(pki, "minion.pem"), private, 0o400),  # never readable by others, even briefly
                (os.path.join(pki, "minion.pub"), public, 0o644),
                (os.path.join(mdir, "pki", "minions", host.name), public, 0o644),
            ):
                write_new(path, text, mode)

    def forget_minion(self, name):
        """Delete minion ``name``'s key and what the master caches of it (``salt-key -d``)."""
        sh(os.path.join(BIN, "salt-key"), "-c", self.master_conf_dir, "-y", "-q", "-d", name, capture=True)

    def _start_master(self):
        sh(os.path.join(BIN, "salt-master"), "-c", self.master_conf_dir, "-d", netns=plan.SWITCH_NS)

    def master_pids(self):
        """The live processes of the lab's salt-master (its renamed children too)."""
        return self.processes(zombies=False,
                              matching=lambda line: "salt-master" in line and self.master_conf_dir in line)

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
            pids = self.processes(zombies=False, matching=lambda line: f"hosts/{host.name}/etc" in line)
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
            return last_json(proc.stdout)
        except json.JSONDecodeError:
            raise LabError(f"salt-run {' '.join(args)} printed no JSON (exit {proc.returncode}):\n"
                           f"{proc.stdout}\n{proc.stderr}") from None

    @property
    def hooks_log(self):
        """Where the lab's hook command writes a line per hook the runner fires."""
        return self._path("master", "hooks.log")

    @property
    def master_cachedir(self):
        """The lab master's cache (Salt prefixes its default with the root_dir)."""
        return os.path.join(self._path("master"), "var", "cache", "salt", "master")

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

    def seed_pack(self, hosts):
        """Put the pack's modules in each minion's extension modules before it starts:
        Salt's own sync (``salt.utils.extmods.sync``, what ``saltutil.sync_all`` runs on
        a minion) run once here, with the checkout the master serves as a local file
        client, and its result copied to each minion of ``hosts``.

        The files and folders are those a first ``saltutil.sync_all`` would write; on UML
        that sync took about 70 s per lab boot (each minion fetching every module from the
        master with a kernel where system calls are expensive). A UML minion syncing from
        the master is tested in the lab (``test_site_seed``), a host's in
        ``tests/functional/test_fileserver.py``.
        """
        import logging  # noqa: PLC0415
        import shutil  # noqa: PLC0415

        import salt.config  # noqa: PLC0415
        import salt.utils.extmods  # noqa: PLC0415

        staged = self._path("pack-extmods")
        shutil.rmtree(staged, ignore_errors=True)
        opts = salt.config.minion_config(None)
        opts.update(file_client="local", cachedir=self._path("pack-cache"), extension_modules=staged,
                    **lvs_salt.fileserver.master_config(REPO))
        salt_log = logging.getLogger("salt")
        level = salt_log.level
        salt_log.setLevel(logging.WARNING)  # the file list's walk logs each file of the tree at trace
        try:
            for form in SYNC_FORMS:
                if os.path.isdir(os.path.join(REPO, "_" + form)):
                    salt.utils.extmods.sync(opts, form, saltenv=["base"])
        finally:
            salt_log.setLevel(level)
        for host in hosts:
            if host.minion:
                extmods = salt.config.minion_config(
                    os.path.join(self.host_dir(host.name), "etc", "minion"))["extension_modules"]
                shutil.copytree(staged, extmods, dirs_exist_ok=True)

    def apply(self, *args, minions=None):
        """``salt '*' state.apply ARGS`` on every site (or on the list ``minions``); raise
        LabError unless all succeeded."""
        target = ["-L", ",".join(minions)] if minions else ["*"]
        returns = self.salt_json("--timeout=600", *target, "state.apply", *args, timeout=900)
        failures = []
        for mid in minions or self.minions:
            ret = returns.get(mid)
            if not isinstance(ret, dict):
                failures.append(f"{mid}: {ret!r}" if ret is not None else f"{mid}: no return")
                continue
            failures += [f"{mid}: {state}: {r.get('comment')}" for state, r in ret.items() if not r.get("result")]
        if failures:
            raise LabError("state.apply failed:\n  " + "\n  ".join(failures))
        return returns
