"""Which site a minion belongs to, on a master that serves many (docs/sites.md).

One master may run many sites: its top file gives each group of minions its own ``lvs``
tree (``'lb-eu-*': [lvs.eu]``), named by ``lvs:site``. The master side (the reactor's
gate, the ``lvs`` runner) takes a minion's site from that minion's own pillar as the
master last compiled it (Salt's minion data cache, bank ``pillar``: written at each
pillar refresh of the minion), never from the master's own id, which no top file needs
to name.

An :class:`Index` keeps, per site name, the newest tree any of its minions was given,
parsed once per distinct tree. A lookup reads the minion's cache entry again only when
its stamp moved (or is within the second it was written: the stamp counts seconds), so
a beacon event costs the same whatever the number of sites; a minion the index has not
seen yet makes it read every minion's entry, at most once per ``TTL`` seconds. A master
that keeps no minion's pillar (``minion_data_cache: False``) compiles an accepted
minion's pillar instead, at most once per ``TTL`` for all such names.

A minion the master keeps no pillar of (a host never started, a cleared cache) belongs
to the one site whose tree names it. Two sites may reuse addresses and service names
(separate networks), never a minion id: a site that names a minion another site names
too is in error, the error naming both.

.. code-block:: python

    import lvstun.sites
    site = lvstun.sites.index(opts).site_of("rs1")   # a lvstun.site.Site, or None
"""

import hashlib
import json
import logging
import os
import threading
import time

from . import site as site_mod

log = logging.getLogger(__name__)

TTL = 5  # seconds: how often names the index does not know may make it read every minion's entry
RECENT = 2  # seconds: a cache stamp this young is read again (two refreshes may share one stamp)


class _Entry:
    """What the index knows of one minion: its cache stamp, its site's name (None: no
    ``lvs`` tree), or the error of its tree's name."""

    __slots__ = ("error", "name", "stamp")

    def __init__(self, stamp, name=None, error=None):
        self.stamp, self.name, self.error = stamp, name, error


class _Tree:
    """A site's newest tree: its stamp, digest, and what parsing it gave (a Site or a
    SiteError)."""

    __slots__ = ("digest", "parsed", "stamp")

    def __init__(self, stamp, digest, parsed):
        self.stamp, self.digest, self.parsed = stamp, digest, parsed


class MinionPillars:
    """The pillars the master compiled for its minions (Salt's cache, bank ``pillar``)."""

    def __init__(self, opts):
        import salt.cache  # noqa: PLC0415 (only on the master)

        self.opts = opts
        self.cache = salt.cache.factory(opts, driver=opts.get("pillar.cache_driver"))
        self.pillarenv = opts.get("pillarenv")

    def _key(self, minion):
        return f"{minion}:{self.pillarenv}" if self.pillarenv else minion

    def minions(self):
        keys = self.cache.list("pillar") or []
        if self.pillarenv:
            suffix = f":{self.pillarenv}"
            return [key[:-len(suffix)] for key in keys if key.endswith(suffix)]
        return [key for key in keys if ":" not in key]

    def stamp(self, minion):
        """When the minion's pillar was last stored (seconds), or None."""
        return self.cache.updated("pillar", self._key(minion))

    def pillar(self, minion):
        found = self.cache.fetch("pillar", self._key(minion))
        return found if isinstance(found, dict) else None

    def compiled(self, minion):
        """The pillar compiled now for ``minion``, when the master keeps no minion's
        pillar (``minion_data_cache: False``) and ``minion`` has an accepted key; else
        None (with the cache on, a minion stores its pillar when it starts)."""
        import salt.pillar  # noqa: PLC0415 (only on the master)

        if self.opts.get("minion_data_cache", True) or not os.path.isfile(
                os.path.join(self.opts.get("pki_dir") or "", "minions", minion)):
            return None
        grains = self.cache.fetch("grains", minion)
        return salt.pillar.get_pillar(self.opts, grains if isinstance(grains, dict) else {}, minion,
                                      saltenv="base", pillarenv=self.pillarenv).compile_pillar()


class Index:
    """The sites of one master and the site of each of its minions (see the module)."""

    def __init__(self, pillars, clock=time.monotonic, wall=time.time):
        self.pillars, self.clock, self.wall = pillars, clock, wall
        self._lock = threading.RLock()
        self._minions = {}  # minion id -> _Entry
        self._trees = {}  # site name -> _Tree
        self._conflicts = {}  # site name -> the error of a minion it shares with another site
        self._claims = {}  # minion id -> the names of the (valid) sites whose trees name it
        self._scanned_at = None
        self._compiled_at = None

    # -- the public surface
    def site_of(self, minion):
        """The site whose tree names ``minion``: the one its own pillar names, or, when the
        master keeps no pillar of it (a host never started, a cleared cache) or its own
        names no site, the one site whose tree names it; None when no site names it.
        Raises ``SiteError`` when that site is invalid or shares a minion with another."""
        with self._lock:
            entry = self._minions.get(minion)
            if entry is None and self._may_scan():
                self.scan()
                entry = self._minions.get(minion)
            if entry is None or self._moved(minion, entry):
                entry = self._read(minion)
            if entry is not None and entry.error is not None:
                raise entry.error
            name = entry.name if entry is not None else None
            if name is None:
                claimed = self._claims.get(minion, ())
                name = claimed[0] if len(claimed) == 1 else None  # (two: each site's error says so)
                if name is None:
                    return None
            found = self._site(name)
            return found if found.role_of(minion) else None

    def sites(self, name=None):
        """``{name: Site or SiteError}`` of every site (every minion's entry read afresh
        where it moved); ``name``: only that one (a ``SaltInvocationError``-worthy
        ``KeyError`` when no minion has it)."""
        with self._lock:
            self.scan()
            names = sorted(self._trees) if name is None else [name]
            if name is not None and name not in self._trees:
                raise KeyError(f"no minion's pillar has the site {name!r} (sites: {', '.join(sorted(self._trees))})")
            out = {}
            for each in names:
                try:
                    out[each] = self._site(each)
                except site_mod.SiteError as err:
                    out[each] = err
            return out

    def scan(self):
        """Read every minion's entry whose stamp moved."""
        with self._lock:
            self._scanned_at = self.clock()
            for minion in self.pillars.minions():
                entry = self._minions.get(minion)
                if entry is None or self._moved(minion, entry):
                    self._read(minion)

    # -- inside
    def _may_scan(self):
        return self._scanned_at is None or self.clock() - self._scanned_at >= TTL

    def _moved(self, minion, entry):
        stamp = self.pillars.stamp(minion)
        return stamp != entry.stamp or (stamp is not None and self.wall() - stamp < RECENT)

    def _read(self, minion):
        stamp = self.pillars.stamp(minion)
        pillar = self.pillars.pillar(minion) if stamp is not None else None
        if pillar is None:
            # No pillar kept for it: compiled where the master keeps none (at most once per
            # TTL for all such names), else unknown until it stores one.
            if self._compiled_at is not None and self.clock() - self._compiled_at < TTL:
                return self._minions.get(minion)
            self._compiled_at = self.clock()
            pillar, stamp = self.pillars.compiled(minion), self.wall()
            if pillar is None:
                return None
        tree = pillar.get(site_mod.PILLAR_KEY) if isinstance(pillar, dict) else None
        if not isinstance(tree, dict):
            entry = self._minions[minion] = _Entry(stamp)
            return entry
        try:
            name = site_mod.site_name(tree)
        except site_mod.SiteError as err:
            entry = self._minions[minion] = _Entry(stamp, error=err)
            return entry
        entry = self._minions[minion] = _Entry(stamp, name)
        self._offer(name, tree, stamp)
        return entry

    def _offer(self, name, tree, stamp):
        """``tree`` (given at ``stamp``) becomes site ``name``'s when it is the newest."""
        known = self._trees.get(name)
        if known is not None and known.stamp > stamp:
            return
        digest = hashlib.sha256(json.dumps(tree, sort_keys=True, default=str).encode()).hexdigest()
        if known is not None and known.digest == digest:
            known.stamp = stamp
            return
        try:
            parsed = site_mod.parse(tree)
        except site_mod.SiteError as err:
            parsed = err
        self._trees[name] = _Tree(stamp, digest, parsed)
        self._claims = _claims(self._trees)
        self._conflicts = _conflicts(self._claims)
        if known is not None:
            log.info("lvs: site %s changed (its minions' pillar)", name)

    def _site(self, name):
        tree = self._trees[name]
        if isinstance(tree.parsed, site_mod.SiteError):
            raise tree.parsed
        if name in self._conflicts:
            raise site_mod.SiteError([self._conflicts[name]])
        return tree.parsed


def _claims(trees):
    """``{minion: [site names]}``: the valid sites whose trees name each minion."""
    claims = {}
    for name, tree in sorted(trees.items()):
        if isinstance(tree.parsed, site_mod.Site):
            for minion in _minions_of(tree.parsed):
                claims.setdefault(minion, []).append(name)
    return claims


def _conflicts(claims):
    """``{site name: error}`` for every site that names a minion another site names."""
    out = {}
    for minion, names in sorted(claims.items()):
        if len(names) > 1:
            for name in names:
                out.setdefault(name, f"lvs:site: minion {minion!r} is claimed by the sites "
                                     f"{' and '.join(repr(n) for n in sorted(names))} (a minion belongs to one site)")
    return out


def _minions_of(site):
    return [*site.hosts, *([site.router.minion_id] if site.router else [])]


_INDEXES = {}
_INDEXES_LOCK = threading.Lock()


def index(opts):
    """This process's index of the master's sites (one per cache directory)."""
    key = opts.get("cachedir")
    with _INDEXES_LOCK:
        found = _INDEXES.get(key)
        if found is None:
            found = _INDEXES[key] = Index(MinionPillars(opts))
        return found
