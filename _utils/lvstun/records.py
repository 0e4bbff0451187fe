"""Every record the pack keeps, declared once: its file, its shape, who writes and who
reads it, and the lock its writers share.

A record is a JSON document under ``<cachedir>/lvs/`` of the minion (or the master),
written atomically and durably with its previous version kept (``lvstun.jsonstore``).
:func:`load` checks what it reads against the record's shape (``lvstun.shape``): a
record that does not parse, or parses into the wrong shape (damaged, hand-edited,
written by an older pack), is logged and replaced by its previous version when that
one fits, else by the record's default: never a traceback in a reader. :func:`store`
checks what a writer hands it, so a writer's bug fails before anything is written.

.. code-block:: python

    import lvstun.records
    down = lvstun.records.load(opts, lvstun.records.PATH_VERDICTS)["down"]
"""

import copy
import dataclasses
import logging

from . import jsonstore
from .shape import ANY, BOOL, NULL, NUMBER, STR, AnyOf, Fields, Int, ListOf, MapOf, problems

log = logging.getLogger(__name__)

WEIGHT = Int(0, 65535)


@dataclasses.dataclass(frozen=True)
class Record:
    """One record: ``name`` (its file, ``<name>.json``; a ``{}`` in it is filled by
    :meth:`named`), ``shape``, ``default`` (what a reader gets when there is none that
    fits), and in words its ``writer``, ``readers`` and ``lock``."""

    name: str
    shape: object
    default: object
    writer: str
    readers: str
    lock: str = None

    def named(self, key):
        """The record of one instance of a family (``ipvs-managed-{}``, a site's
        ``site.{}.health``): its name and lock."""
        return dataclasses.replace(self, name=self.name.format(key),
                                   lock=self.lock.format(key) if self.lock else self.lock)


# ------------------------------------------------------------------ shapes shared by records
HEALTH_ENTRY = Fields(required={"services": MapOf(BOOL), "host": BOOL},
                      optional={"down_at": NUMBER, "held": ListOf(STR), "checked_at": NUMBER,
                                "reported_at": NUMBER, "weights": MapOf(WEIGHT)})
DRAIN_ENTRY = Fields(required={"services": ListOf(STR)}, optional={"reason": STR, "at": NUMBER})
STAMP = Fields(required={"epoch": STR, "seq": Int(0)})
RECOVERY = Fields(required={"at": NUMBER, "what": STR}, optional={"lost": ListOf(STR)})
HEALTH_RECORD = Fields(optional={
    "epoch": STR, "seq": Int(0), "supersedes": ListOf(STR), "at": NUMBER,
    "health": MapOf(HEALTH_ENTRY), "maintenance": MapOf(DRAIN_ENTRY), "hosts_asked_at": NUMBER,
    "recoveries": ListOf(RECOVERY)})

# ------------------------------------------------------------------ the master's, one per site
# (``.named(site name)``: ``site.<name>.health``; the last dot-separated part is the kind,
# so no two sites' names meet)
HEALTH = Record(
    "site.{}.health", HEALTH_RECORD, {},
    writer="the lvs runner (under its lock), its copy pushed to every director",
    readers="the lvs runner, the ext_pillar lvs_health", lock="site.{}.health")
DRAINS = Record(
    "site.{}.drains", Fields(required={"epoch": STR, "seq": Int(0), "maintenance": MapOf(DRAIN_ENTRY)}), None,
    writer="the lvs runner, before HEALTH at every change (a second copy of the drains)",
    readers="the lvs runner, when it recovers a damaged HEALTH", lock="site.{}.health")
LEGACY_HEALTH = Record(
    "health", HEALTH_RECORD, {},
    writer="packs before sites (one record for the master's one site); never written now",
    readers="the lvs runner: each site's first record takes its own minions' part of it "
            "(lvstun.healthrecord.share)", lock="health")
PUSH_PENDING = Record(
    "site.{}.pending", MapOf(STAMP), {},
    writer="the lvs runner: the directors that have not confirmed the record pushed to them",
    readers="the lvs runner (pushed again at its next call), lvs.status", lock="site.{}.push")
ROLLING = Record(
    "site.{}.rolling",
    Fields(required={"targets": ListOf(STR), "done": ListOf(STR), "batch": Int(1)},
           optional={"current": ListOf(STR), "step": STR, "action": AnyOf((STR, NULL)), "reboot": BOOL,
                     "timeout": NUMBER, "reboot_timeout": NUMBER, "on_timeout": STR, "stopped": AnyOf((STR, NULL)),
                     "finished": BOOL, "at": NUMBER}),
    None, writer="lvs.rolling, at each step (holding its lock the whole rolling: one at a time)",
    readers="lvs.rolling resume=True", lock="site.{}.rolling")
DIRECTORS_SEEN = Record(
    "site.{}.directors", Fields(required={"up": MapOf(BOOL)}, optional={"at": AnyOf((NUMBER, NULL))}),
    {"up": {}}, writer="lvs.directors: the router's view of the directors that its hooks last fired on",
    readers="lvs.directors (what changed since)", lock="site.{}.directors")
HOOK_KEY = Record(
    "hook-key", Fields(required={"key": STR}), None,
    writer="the lvs runner, once (lvstun.hooks.new_key): the master's secret for its hooks' signatures",
    readers="the lvs runner (signs), lvs_reactor.hook (verifies)", lock="hook-key")

# ------------------------------------------------------------------ a real server's
BACKEND_REPORT = Record(
    "backend-health",
    Fields(required={"at": NUMBER, "services": MapOf(Fields(required={"healthy": BOOL},
                                                            optional={"reason": AnyOf((STR, NULL)), "alpha": BOOL,
                                                                      "weight": WEIGHT}))},
           optional={"tunnel": ListOf(STR)}),
    None, writer="the lvs_backend beacon", readers="lvs_health.report (asked by the runner)")

# ------------------------------------------------------------------ a director's
PATH_VERDICTS = Record(
    "path-checks",
    Fields(required={"down": MapOf(ListOf(STR))},
           optional={"at": NUMBER, "down_at": MapOf(NUMBER), "reasons": MapOf(AnyOf((STR, NULL)))}),
    {"down": {}}, writer="the lvs_paths beacon's thread", readers="lvs_health.local, the thread at its start")
HOSTS_REACH = Record(
    "hosts-reach", Fields(required={"at": NUMBER, "reachable": MapOf(BOOL)}), None,
    writer="the lvs_hosts beacon", readers="lvs_health.reachability (asked by the runner)")
RUNNER_COPY = Record(
    "runner-health", HEALTH_RECORD, {},
    writer="lvs_health.accept (a runner push, a highstate's pillar)",
    readers="lvs_health.record: every computation of this director's weights", lock="site")
WEIGHTS_SET = Record(
    "weights-set", MapOf(MapOf(WEIGHT)), {},
    writer="lvs_health.apply: the weights the pack last set", readers="lvs_health.apply (a repair is logged)",
    lock="site")
SITE_APPLIED = Record(
    "site-applied", Fields(required={"lvs": ANY}), None,
    writer="lvs_site.remember (the lvs_site.valid state)",
    readers="lvs_site.tree applied=True: the beacons, their threads, the runner's pushes", lock="site")
DIRECTOR_SITES = Record(
    "director-sites", MapOf(Fields(required={"lvs": ANY})), {},
    writer="the director's table and metrics states (lvs_health.table, lvs_health.exporter): the site each "
           "applied, in the same locked step as it wrote it",
    readers="lvs_health.apply (its thread and pushes write by the site those states last applied)", lock="site")
IPVS_SYNC = Record(
    "ipvs-sync", AnyOf((NULL, Fields(required={"interface": STR, "sync_id": Int(0, 255)},
                                     optional={"group": AnyOf((STR, NULL))}))), None,
    writer="ipvs.sync_apply", readers="ipvs.sync_check_absent, ipvs.sync_forget")
IPVS_MANAGED = Record(
    "ipvs-managed-{}", ListOf(STR), [],
    writer="the ipvs.managed state of that name", readers="the same state, ipvs.owned_absent")
EXPORTER_PROCESS = Record(
    "metrics-exporter",
    Fields(optional={"pid": AnyOf((Int(1), NULL)), "address": AnyOf((STR, NULL)), "port": AnyOf((Int(0, 65535), NULL)),
                     "code": AnyOf((STR, NULL))}),
    {}, writer="lvs_exporter.start/stop", readers="lvs_exporter")
EXPORTER_VIEW = Record(
    "metrics-view",
    Fields(optional={"services": MapOf(Fields(
        required={"service": STR, "backends": MapOf(Fields(required={"backend": STR}, optional={
            "weight": WEIGHT, "sorry": BOOL, "healthy": BOOL, "drained": BOOL}))},
        optional={"vip": STR, "port": Int(0, 65535), "protocol": STR, "scheduler": STR, "floor": Int(0)}))}),
    {}, writer="lvs_exporter.set_view (a highstate, lvs_health.apply)", readers="the exporter at each scrape")

# ------------------------------------------------------------------ any host's
HOST_ORIGINALS = Record(
    "host-originals",
    Fields(optional={"sysctls": MapOf(ANY), "addresses": MapOf(ListOf(STR)),
                     "links": MapOf(Fields(required={"exists": BOOL, "up": BOOL},
                                           optional={"mtu": AnyOf((Int(0), NULL))})),
                     "default_route": AnyOf((STR, NULL)), "default_route6": AnyOf((STR, NULL)),
                     "mss_tables": ListOf(AnyOf((Int(0), STR))),
                     "nft_tables": ListOf(STR), "fou_ports": ListOf(Int(1, 65535)),
                     "fou_ports6": ListOf(Int(1, 65535))}),
    {}, writer="the role states, before they change a host", readers="lvs.clean")

# ------------------------------------------------------------------ a router's
DIRECTORS_LIVE = Record(
    "directors-live", Fields(required={"at": AnyOf((NUMBER, NULL)), "up": MapOf(BOOL)},
                             optional={"reasons": MapOf(STR)}), {"at": None, "up": {}},
    writer="the lvs_directors beacon's thread", readers="lvs_directors", lock="directors-group")
DIRECTORS_DRAINED = Record(
    "directors-drained", ListOf(STR), [], writer="lvs_directors.drain/undrain", readers="lvs_directors",
    lock="directors-group")
DIRECTORS_SPEC = Record(
    "directors-spec",
    Fields(required={"spec": AnyOf((NULL, Fields(
        required={"group": Int(1), "interface": STR, "members": MapOf(Fields(required={"id": Int(1), "via": STR})),
                  "vips": ListOf(STR), "probe": Fields(required={"check": MapOf(ANY), "vip": STR})},
        optional={"priority": Int(0), "buckets": Int(1), "idle_timer": Int(0), "unbalanced_timer": Int(0),
                  "interval": NUMBER, "timeout": NUMBER, "rise": Int(1), "fall": Int(1)})))}),
    None, writer="lvs_directors.apply (the router's state)", readers="lvs_directors.spec, the probes' thread",
    lock="directors-group")
IOSNAT_OWNED = Record(
    "iosnat-owned", ListOf(ListOf(AnyOf((STR, NULL)))), [],
    writer="iosnat (the IOS router's state): [parent or null, line] of each line the pack owns", readers="iosnat")

ALL = tuple(value for value in list(globals().values()) if isinstance(value, Record))


def check(record, data):
    """The problems of ``data`` as ``record`` (empty: it fits)."""
    return problems(data, record.shape)


def load(opts, record):
    """The record as stored, when it fits its shape; else (damaged, or of the wrong
    shape: logged) its previous version when that one fits; else its default."""
    found = jsonstore.load(opts, record.name, None, valid=lambda data: check(record, data))
    return copy.deepcopy(record.default) if found is None else found


def store(opts, record, data):
    """Write ``data`` as ``record`` (checked first: a writer's bug raises ValueError
    and writes nothing)."""
    wrong = check(record, data)
    if wrong:
        raise ValueError(f"lvs: not storing record {record.name}: {'; '.join(wrong[:5])}")
    jsonstore.store(opts, record.name, data)


def locked(opts, record, timeout=jsonstore.LOCK_TIMEOUT):
    """The lock ``record``'s writers share (``lvstun.jsonstore.locked``)."""
    return jsonstore.locked(opts, record.lock, timeout)
