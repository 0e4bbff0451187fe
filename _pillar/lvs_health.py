"""ext_pillar: the health record of the ``lvs`` runner, for the site's directors (the
record of the site the director's own pillar names, ``lvs:site``).

With it, a highstate on a director computes the same weights as the reactor
(``lvstun.roles.ipvs_services``): a backend that is down or drained for maintenance
stays at weight 0 through any ``state.apply`` or pillar edit; and a director that
missed a push keeps this version when it supersedes its copy (its stamp is given too).

.. code-block:: yaml

    # /etc/salt/master.d/lvs.conf (lvs_salt.master.config())
    ext_pillar:
      - lvs_health: {}
"""

import lvstun.health
import lvstun.records
import lvstun.site

__virtualname__ = "lvs_health"


def __virtual__():
    return __virtualname__


def ext_pillar(minion_id, pillar, *args, **kwargs):  # pylint: disable=unused-argument
    tree = pillar.get("lvs") if isinstance(pillar, dict) else None
    directors = tree.get("directors") if isinstance(tree, dict) else None
    if not isinstance(directors, dict) or minion_id not in directors:
        return {}
    try:
        name = lvstun.site.site_name(tree)
    except lvstun.site.SiteError:
        return {}  # the site's own validation says why (lvs_site.valid)
    record = lvstun.records.load(__opts__, lvstun.records.HEALTH.named(name))  # its site's (lvs:site)
    if not record.get("epoch"):
        return {}  # none written yet (the runner writes the first version)
    # The whole version, its stamp included: a director that missed a push takes it in
    # its next highstate when it supersedes its copy (lvstun.healthrecord).
    return {lvstun.health.PILLAR_KEY: {key: record[key] for key in (
        "epoch", "seq", "supersedes", "at", "health", "maintenance") if key in record}}
