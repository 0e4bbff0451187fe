"""States: the director's Prometheus exporter (``lvstun.exporter``, docs/monitoring.md).

.. code-block:: yaml

    lvs-director-metrics:
      lvs_exporter.running:
        - port: 9847
        - address: 10.10.24.2          # or subnet: 172.31.254.0/24 (this host's address in it)
        - site_view: {services: {...}}  # lvstun.metrics.view

    lvs-director-metrics:
      lvs_exporter.absent: []

The exporter is one process that the state starts (and restarts when its address or
port changes, or the pack's code it runs: an upgrade); after a reboot the director's
startup highstate starts it again.
"""

import lvstun.converge
from lvstun.fresh import fresh

fresh(lvstun.converge)


def running(name, port, address=None, subnet=None, site_view=None):
    """The exporter answers on ``address:port`` (or this host's address in ``subnet``)
    and labels the counters with ``site_view``; it is restarted when the pack's code
    changed since it started.

    name
        The state's ID (it names the report only).
    port
        Its TCP port.
    address
        The address to listen on (a director's LAN address).
    subnet
        Instead of ``address``: listen on this host's lowest address in it, never a VIP.
    site_view
        The site's view (``lvstun.metrics.view``): names, pillar weights, health, drains.

    .. code-block:: yaml

        lvs-director-metrics:
          lvs_exporter.running:
            - port: 9847
            - address: 10.10.24.2
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    return lvstun.converge.converge(
        ret, __opts__["test"], lambda: __salt__["lvs_exporter.check"](port, address, subnet, site_view),
        lambda: __salt__["lvs_exporter.apply"](port, address, subnet, site_view), "the LVS exporter")


def absent(name):
    """No exporter runs and no view is kept (the site turned metrics off, or the host left).

    name
        The state's ID (it names the report only).

    .. code-block:: yaml

        lvs-director-metrics:
          lvs_exporter.absent: []
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    return lvstun.converge.converge(
        ret, __opts__["test"], lambda: __salt__["lvs_exporter.check_absent"](),
        lambda: __salt__["lvs_exporter.forget"](), "the LVS exporter")
