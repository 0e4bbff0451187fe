"""The master's cached pillars as ``lvstun.sites`` reads them, in memory: each minion's
pillar and its stamp; every read and compilation counted (pure logic, no master)."""

import copy

import lvstun.sites


class Pillars:
    """``{minion: pillar}``, each stored at ``stamp`` (seconds)."""

    def __init__(self, pillars=None, stamp=1000.0):
        self.pillars, self.stamps = {}, {}
        self.reads, self.compiles, self.listings = [], [], 0
        for minion, pillar in (pillars or {}).items():
            self.give(minion, pillar, stamp)

    def give(self, minion, pillar, stamp):
        """``minion``'s pillar refreshed at ``stamp``."""
        self.pillars[minion], self.stamps[minion] = copy.deepcopy(pillar), stamp

    def minions(self):
        self.listings += 1
        return sorted(self.pillars)

    def stamp(self, minion):
        return self.stamps.get(minion)

    def pillar(self, minion):
        self.reads.append(minion)
        return copy.deepcopy(self.pillars.get(minion))

    def compiled(self, minion):
        """(The master keeps every pillar: none compiled; counted all the same.)"""
        self.compiles.append(minion)


def of_trees(*trees, stamp=1000.0):
    """Pillars where every minion of each tree (its router, directors, real servers) has
    that tree."""
    pillars = {}
    for tree in trees:
        lvs = tree["lvs"]
        for minion in [lvs["router"]["id"], *lvs["directors"], *lvs["realservers"]]:
            pillars[minion] = tree
    return Pillars(pillars, stamp)


def install(monkeypatch, pillars, opts):
    """``pillars`` as the master's, for this process's index of ``opts``: the Index."""
    index = lvstun.sites.Index(pillars)
    monkeypatch.setitem(lvstun.sites._INDEXES, opts.get("cachedir"), index)
    return index
