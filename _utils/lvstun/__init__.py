"""The pack's shared code: plain Python (no Salt dunders) used by its Salt modules,
states, beacons, runner and pillar, and by the lab.

Installed by pip as this package, or synced to minions from ``_utils/lvstun/`` by
``saltutil.sync_all`` (Salt puts ``extmods/utils`` on ``sys.path`` while it loads
modules); either way ``import lvstun.site`` works. Nothing is imported here, so
Salt's utils loader finds no code to run in this file.

Its modules, by concern:

- model: ``site`` (the schema and its parse: ``parse``, ``SiteError``, ``Site``),
  ``sites`` (which site a minion is of, on a master of many), ``roles``
  (``for_minion``: what each role holds), ``address``, ``dirgroup``, ``metrics``,
  ``ios``, ``dnsmsg``;
- IPVS: ``genl``, ``ipvsclient`` (``Client``), ``ipvs`` (records and plans),
  ``dumpchain``, ``uring``, ``netlink``;
- host: ``tun``, ``fou``, ``sysctl``, ``originals``, ``command``;
- checks: ``probe``, ``pathcheck``, ``health``, ``healthrecord``, ``gate``;
- operations (the runner's logic): ``sitestatus`` (what ``lvs.status`` shows),
  ``rolling`` (a rolling maintenance's plan), ``rollout`` (its run, step by step,
  through the master), ``hooks`` (its events for users);
- runtime: ``records`` (every record: ``load``, ``store``), ``healthstore`` (the master's
  health record of a site: ``changing``, ``current``), ``jsonstore``, ``shape``,
  ``converge``, ``drift``, ``beaconthread``, ``beaconconf``, ``exporter``, ``fresh``.
"""
