"""States: a director's IPVS table and metrics view, by the site and its health when
the state runs.

A director's weights follow the site and the health record (the runner's newest and
the director's own path checks), and the record changes while a highstate runs: the
runner pushes a backend back in, the path checks take one out. A template renders
seconds before its states run (tens on a slow host), so weights computed there would
undo what changed meanwhile, and keep a backend that came back at weight 0 until
the next change. These states compute the table and the view (``lvs_site.config``:
the highstate's pillar, the newest record, this director's verdicts) when they run,
under the lock ``lvs_health.apply`` takes (the site's: ``lvstun.records.SITE_APPLIED``),
and hand them to ``ipvs.managed`` and ``lvs_exporter.running``: one decision, whoever
writes it (the path checks' thread, a push, a highstate), from the same records.

.. code-block:: yaml

    lvs-director-ipvs:
      lvs_health.table:
        - name: lvs-site
        - remove: drain

    lvs-director-metrics:
      lvs_health.exporter:
        - port: 9847
        - subnet: 172.31.254.0/24
"""

import lvstun.records
import lvstun.roles
from lvstun.fresh import fresh

fresh(lvstun.records)
fresh(lvstun.roles)


def __virtual__():
    if "lvs_site.config" not in __salt__:
        return False, "the lvs_site execution module is not loaded"
    return True


def _by_site_now(run):
    with lvstun.records.locked(__opts__, lvstun.records.SITE_APPLIED):
        return run(__salt__["lvs_site.config"]())


def _table(name, remove, cfg):
    ret = __states__["ipvs.managed"](name, services=cfg["services"], remove=remove)
    if not __opts__["test"]:
        # From now on the director's thread and the runner's pushes write by this site.
        __salt__["lvs_site.note_applied"]("table")
        if ret["result"]:
            __salt__["lvs_health.note_set"](lvstun.roles.weights_of(cfg["services"]))
    return ret


def _exporter(name, port, address, subnet, cfg):
    ret = __states__["lvs_exporter.running"](name, port, address=address, subnet=subnet,
                                             site_view=cfg["metrics"]["view"])
    if not __opts__["test"]:
        __salt__["lvs_site.note_applied"]("metrics")
    return ret


def table(name, remove="drain"):
    """The IPVS services of the site, their weights as the site and its health say now
    (``ipvs.managed`` with ``lvs_site.config``'s ``services``).

    name
        The ownership name of the services (``ipvs.managed``'s ``name``).
    remove
        ``drain`` (default: weight 0, deleted once idle) or ``delete``: what becomes of
        services and destinations the site no longer has.

    .. code-block:: yaml

        lvs-director-ipvs:
          lvs_health.table:
            - name: lvs-site
    """
    return _by_site_now(lambda cfg: _table(name, remove, cfg))


def exporter(name, port, address=None, subnet=None):
    """The director's exporter, its view (pillar weights, health, drains) as the site
    and its health say now (``lvs_exporter.running`` with ``lvs_site.config``'s view).

    name
        The state's ID (it names the report only).
    port
        The exporter's TCP port.
    address, subnet
        Where it listens (``lvs_exporter.running``).

    .. code-block:: yaml

        lvs-director-metrics:
          lvs_health.exporter:
            - port: 9847
            - address: 10.10.24.2
    """
    return _by_site_now(lambda cfg: _exporter(name, port, address, subnet, cfg))
