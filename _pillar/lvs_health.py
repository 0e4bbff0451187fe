"""ext_pillar: the health record of the ``lvs`` runner, for the site's directors.

With it, a highstate on a director computes the same weights as the reactor
(``lvstun.roles.ipvs_services``): a backend that is down or drained for maintenance
stays at weight 0 through any ``state.apply`` or pillar edit.

.. code-block:: yaml

    # /etc/salt/master.d/lvs.conf (lvs_salt.master.config())
    ext_pillar:
      - lvs_health: {}
"""

import lvstun.health
import lvstun.owned

__virtualname__ = "lvs_health"


def __virtual__():
    return __virtualname__


def ext_pillar(minion_id, pillar, *args, **kwargs):  # pylint: disable=unused-argument
    tree = pillar.get("lvs") if isinstance(pillar, dict) else None
    directors = tree.get("directors") if isinstance(tree, dict) else None
    if not isinstance(directors, dict) or minion_id not in directors:
        return {}
    record = lvstun.owned.load(__opts__, "health", {}) or {}
    return {lvstun.health.PILLAR_KEY: {"health": record.get("health", {}),
                                        "maintenance": record.get("maintenance", {})}}
