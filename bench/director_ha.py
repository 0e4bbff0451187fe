"""Benchmark: what a director's death costs, on a two-director lab.

.. code-block:: bash

    lvs-lab up --site two_vips          # or an IPv6 site: lvs-lab up --site ipv6_ha
    .venv/bin/python bench/director_ha.py --trials 5

Each trial, from the client: a new request to every service (HTTP to the web VIP, a
datagram to the DNS VIP) every 50 ms, and 20 slow downloads (30 s each) spread over both
directors; 8 s in, one director's kernel is killed. It prints, per trial and as medians:

- the outage: how long after the kill until no new request fails (the last failed
  request's start), when the last failed request ended (its 1 s timeout later), and how
  many failed;
- the downloads that got every byte (the ones through the dead director continue on the
  other: the sync daemons gave it their connections);
- how long the router took to take the dead director out of its group;
- after a reboot, how long until the director is back in the group (boot, the minion's
  startup highstate, ``ha:rise`` probes);
- for ``salt-run lvs.drain DIRECTOR`` under the same load: failed requests and broken
  downloads (both must be 0) and how long until the runner found the director idle.

The same trials run again with the salt-master stopped before the kill (the failover is
the router's own; the master is started again before the reboot, since a director
rebuilds its table from the pillar the master serves). The defaults of ``lvs:ha``
apply: probes every 0.5 s with a 0.4 s timeout, fall 2, rise 2. ``--tuned INTERVAL
TIMEOUT`` runs the master-up trials once more with those probe settings in the pillar
(as the baseline is run tuned too).

The baseline, in the same run (``--keepalived ADVERT_INT`` ...; 0 skips it): what users
build with keepalived instead, VRRP between the two directors. Debian's keepalived runs
on both (``vrrp_instance``, ``nopreempt``, the given advertisement interval; VRRP
version 3 below 1 s), holding a virtual address on the LAN; the router routes every VIP
to that address (the pack's group and probes paused), and the director holding it is
killed under the same load. The IPVS sync daemons keep running, as a keepalived site
would have them. Everything is put back afterwards (a highstate). On an IPv6 site the
VRRP address is IPv6 (VRRP version 3, which IPv6 needs) and the router's routes ``ip -6``.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from lvs_lab import keepalived, load  # noqa: E402
from lvs_lab.lab import Lab  # noqa: E402
from lvs_lab.saltd import site_tree  # noqa: E402
from lvs_lab.system import LabError  # noqa: E402
from lvstun.address import host_cidr  # noqa: E402

BOTH = []  # the lab site's two directors (minion ids), set by main()


def kill_under_load(lab, victim, taken_over):
    """20 slow downloads, then a request every 50 ms, then ``victim``'s kernel killed;
    ``taken_over()`` returns once the flows have another way (the pack's group, or the
    VRRP backup): ``{"outage", "failed", "survived", "out"}``."""
    downloads = load.start_downloads(lab, 20, 30)
    time.sleep(3)
    steady = load.start_steady(lab, 20)
    time.sleep(5)
    killed_at, killed_mono = time.time(), time.monotonic()
    lab.halt(victim)
    taken_over()
    out = time.monotonic() - killed_mono
    failed, ended, outage = load.outage(steady.result(), killed_at)
    return {"outage": outage, "ended": ended, "failed": failed,
            "survived": sum(1 for d in downloads.result() if d["ok"]), "out": out}


def trial(lab, victim, master_down=False):
    if master_down:
        lab.stop_master()
    result = kill_under_load(lab, victim, lambda: lab.wait_director_group([d for d in BOTH if d != victim], 60))
    if master_down:  # a rebooted director needs its pillar from the master to rebuild its table
        lab.start_master(minions=[m for m in lab.minions if m != victim])
    booted = time.monotonic()
    lab.boot(victim)
    lab.wait_booted([victim])
    return {**result, "back": lab.wait_director_group(BOTH, 300) - booted}


def drain_trial(lab, director):
    downloads = load.start_downloads(lab, 20, 20)
    time.sleep(3)
    steady = load.start_steady(lab, 12)
    time.sleep(3)
    drained = lab.salt_run("lvs.drain", director, "timeout=30")
    results = steady.result()
    broken = sum(1 for d in downloads.result() if not d["ok"])
    lab.salt_run("lvs.undrain", director)
    lab.wait_director_group(BOTH, 60)
    return {"failed": sum(1 for r in results if not r[2]), "requests": len(results), "broken": broken,
            "idle": drained.get("idle"), "waited": drained.get("waited")}


KEEPALIVED_CONF = """global_defs {{
  router_id {name}
}}
vrrp_instance lvs_bench {{
  state BACKUP
  nopreempt
  interface eth0
  virtual_router_id 77
  priority {priority}
  advert_int {advert}
  {version}
  virtual_ipaddress {{
    {address}/{prefix} dev eth0
  }}
}}
"""


def _spare_address(site):
    """A LAN address no host of the site uses (the VRRP address)."""
    import netaddr  # noqa: PLC0415

    taken = {h.address for h in site.hosts.values()} | {site.gateway} | {s.vip for s in site.services.values()}
    net = netaddr.IPNetwork(site.subnet)  # from its top (an IPv6 /64 is not listed whole)
    return next(str(ip) for ip in (netaddr.IPAddress(net.last - k, net.version) for k in range(1, 1 << 16))
                if str(ip) not in taken)


def _keepalived_start(lab, name, priority, advert, address, prefix):
    version = "version 3" if advert < 1 or ":" in address else ""  # below 1 s, and IPv6: VRRPv3
    keepalived.start(lab, name, KEEPALIVED_CONF.format(name=name, priority=priority, advert=advert, address=address,
                                                       prefix=prefix, version=version), "-P")


def _holder(lab, address, among=BOTH):
    """Which of the directors ``among`` holds the VRRP address (a dead one is not asked)."""
    for name in among:
        code, out, _ = lab.capture(name, "ip", "-br", "addr", "show", "dev", "eth0")
        if code == 0 and f" {address}/" in f" {out}":
            return name
    return None


def _wait(what, predicate, timeout):
    deadline = time.monotonic() + timeout
    while not (found := predicate()):
        if time.monotonic() > deadline:
            sys.exit(f"keepalived baseline: {what} not within {timeout} s")
        time.sleep(0.05)
    return found


def keepalived_trials(lab, trials, advert):
    """The VRRP baseline (see the module's text); returns the trials' figures."""
    import netaddr  # noqa: PLC0415

    site = lab.site()
    address, prefix = _spare_address(site), netaddr.IPNetwork(site.subnet).prefixlen
    router = site.router.minion_id
    netns = lab.hosts[router].netns
    family = ["-6"] if site.version == 6 else []
    lab.salt_json(router, "beacons.disable_beacon", "lvs_directors")
    results = []
    try:
        for priority, name in ((150, BOTH[0]), (100, BOTH[1])):
            _keepalived_start(lab, name, priority, advert, address, prefix)
        _wait("a VRRP master", lambda: _holder(lab, address), 30)
        for vip in sorted({svc.vip for svc in site.services.values()}):
            subprocess.run(["ip", "-n", netns, *family, "route", "replace", host_cidr(vip), "via", address, "dev",
                            site.router.lan_interface, "proto", "77"], check=True)
        for _ in range(trials):
            victim = _holder(lab, address)
            other = next(n for n in BOTH if n != victim)
            result = kill_under_load(lab, victim, lambda other=other: _wait(
                "the backup taking the address", lambda: _holder(lab, address, [other]), 30))
            booted = time.monotonic()
            lab.boot(victim)
            lab.wait_booted([victim])
            lab.wait_minions([victim])
            _keepalived_start(lab, victim, 100, advert, address, prefix)  # its init would start it
            results.append({**result, "back": time.monotonic() - booted})
    finally:
        for name in BOTH:
            try:
                lab.capture(name, "true")
            except OSError:  # a trial cut short with its victim down
                lab.boot(name)
                lab.wait_booted([name])
                lab.wait_minions([name])
            keepalived.stop(lab, name, f"ip addr del {address}/{prefix} dev eth0 2>/dev/null;")
        lab.salt_json(router, "beacons.enable_beacon", "lvs_directors")
        for attempt in range(3):  # a rebooted director's startup highstate may still run
            try:
                lab.apply()
                break
            except LabError:
                if attempt == 2:
                    raise
                time.sleep(15)
        lab.wait_director_group(BOTH, 120)
    return results


def tuned_trials(lab, trials, interval, timeout):
    """The master-up trials with the site's ``lvs:ha`` probe settings changed (and put back)."""
    tree = site_tree(lab.site_name)
    tree.setdefault("ha", {}).update(interval=interval, timeout=timeout)
    lab.set_pillar(tree)
    try:
        lab.apply()
        return [trial(lab, BOTH[i % 2]) for i in range(trials)]
    finally:
        lab.reset_pillar()
        lab.apply()


def report(title, trials):
    print(f"\n{title} ({len(trials)} trials)")
    for i, t in enumerate(trials, 1):
        print(f"  trial {i}: outage {t['outage']:.2f} s (last failure ended {t['ended']:.2f} s), "
              f"{t['failed']} failed requests, {t['survived']}/20 "
              f"downloads whole, out after {t['out']:.2f} s, back {t['back']:.1f} s after boot")
    for key, unit in (("outage", "s"), ("ended", "s"), ("failed", ""), ("survived", "/20"), ("out", "s"),
                      ("back", "s")):
        values = [t[key] for t in trials]
        print(f"  median {key}: {statistics.median(values):.2f}{unit} (min {min(values):.2f}, max {max(values):.2f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--keepalived", type=float, nargs="*", default=[1.0],
                        help="VRRP advertisement intervals of the keepalived baseline (none: skip it)")
    parser.add_argument("--only-baseline", action="store_true", help="run the keepalived baseline alone")
    parser.add_argument("--tuned", type=float, nargs=2, metavar=("INTERVAL", "TIMEOUT"),
                        help="also run the master-up trials with these lvs:ha probe settings")
    parser.add_argument("--no-defaults", action="store_true", help="skip the trials with the default lvs:ha")
    args = parser.parse_args()
    lab = Lab()
    directors = sorted(host.minion_id for host in lab.site().directors) if lab.hosts else []
    if len(directors) != 2:
        sys.exit("bring a two-director lab up first: lvs-lab up --site two_vips (or --site ipv6_ha)")
    BOTH[:] = directors
    lab.wait_director_group(BOTH, 60)
    for advert in args.keepalived:
        report(f"baseline: keepalived VRRP (advert_int {advert}) between the directors, the holder's kernel "
               "killed under the same load ('out' = until the backup took the address)",
               keepalived_trials(lab, args.trials, advert))
    if args.only_baseline:
        return
    if not args.no_defaults:
        up = [trial(lab, BOTH[i % 2]) for i in range(args.trials)]
        report("master up: a director's kernel killed under steady load", up)
        down = [trial(lab, BOTH[i % 2], master_down=True) for i in range(args.trials)]
        report("master stopped first, then a director's kernel killed (restarted before the reboot)", down)
    if args.tuned:
        interval, timeout = args.tuned
        report(f"master up, probes tuned (ha:interval {interval:g} s, ha:timeout {timeout:g} s): a director's "
               "kernel killed under steady load", tuned_trials(lab, args.trials, interval, timeout))
    print("\nsalt-run lvs.drain DIRECTOR under the same load, then lvs.undrain")
    for i in range(args.trials):
        t = drain_trial(lab, BOTH[i % 2])
        print(f"  trial {i + 1}: {t['failed']} of {t['requests']} requests failed, {t['broken']}/20 downloads "
              f"broken, idle {t['idle']} after {t['waited']} s")


if __name__ == "__main__":
    main()
