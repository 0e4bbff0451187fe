"""What the lab observes of the site it runs, apart from the pack: the site as the master
serves it, each director's IPVS weights (ipvsadm-save), the router's director group.

A part of :class:`lvs_lab.lab.Lab` (a mixin: the lab's state is the Lab's)."""

import json
import re
import subprocess
import time

from lvs_lab.saltd import load_site
from lvs_lab.system import LabError

_IPVSADM_DEST = re.compile(r"^-a -[tus] (\S+) -r (\S+) .*-w (\d+)")  # a destination in ipvsadm-save -n
SERVING_TIMEOUT = 60  # s: a site just applied serves by then (path checks: rise 2 x 0.5 s)


class SiteView:
    def site(self, key=None):
        """The lab's site ``key`` (None: its first) as the master serves it now to that
        site's minions (parsed and validated)."""
        minion = self.site_minions(key)[0] if self.extra_sites else "lvs-lab"
        return load_site(self.pillar_roots, minion=minion, cachedir=self._path("pillar-render"))

    def director_group(self, key=None):
        """``{director minion id: in the router's group}`` (a Linux router with several
        directors: the resilient nexthop group the pack keeps; lvstun.dirgroup)."""
        from lvstun import dirgroup  # noqa: PLC0415  (the pack's shared code, as the lab's tests use it)

        site = self.site(key)
        spec = dirgroup.spec(site)
        out = subprocess.run(["ip", "-n", self.hosts[site.router.minion_id].netns, "-j", "nexthop", "show", "id",
                              str(spec["group"])], capture_output=True, text=True, check=True).stdout
        held = {m["id"] for m in json.loads(out)[0]["group"]}
        return {name: member["id"] in held for name, member in spec["members"].items()}

    def director_weights(self, director):
        """``{(service "vip:port" ("[vip]:port"), real server address): weight}`` of every destination in
        ``director``'s IPVS table, read with ipvsadm-save (apart from the pack)."""
        code, out, err = self.capture(director, "ipvsadm-save", "-n")
        if code != 0:
            raise LabError(f"ipvsadm-save on {director} failed: {err.strip()}")
        found = {}
        for line in out.splitlines():
            match = _IPVSADM_DEST.match(line)
            if match:
                found[match.group(1), match.group(2).rsplit(":", 1)[0].strip("[]")] = int(match.group(3))
        return found

    def wait_serving(self, timeout, key=None):
        """Wait until every director of site ``key`` runs every backend of every service
        at the weight the pillar gives (a site just applied: each director's path checks
        have found its backends answering); raise LabError naming the others after
        ``timeout``."""
        from lvstun import health  # noqa: PLC0415  (the pack's shared code, as the lab's tests use it)
        from lvstun.address import join_hostport  # noqa: PLC0415

        site = self.site(key)
        want = {}
        for svc in site.services.values():
            live = health.live_weights(svc, {})
            want.update({(join_hostport(svc.vip, svc.port), b.address): live[b.minion_id] for b in svc.backends})
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

    def wait_director_group(self, want, timeout, key=None):
        """Wait until the router's group (of site ``key``) holds exactly the directors
        ``want``; return the monotonic time it did, or raise LabError."""
        deadline = time.monotonic() + timeout
        while (held := sorted(n for n, inside in self.director_group(key).items() if inside)) != sorted(want):
            if time.monotonic() > deadline:
                raise LabError(f"the router's director group holds {held}, not {sorted(want)}, after {timeout} s")
            time.sleep(0.1)
        return time.monotonic()
