"""The reactor's gate on the master: which runner job a beacon event starts, if any
(``lvstun.gate``). ``lvs_salt/reactor.sls`` calls :func:`job` for every event it gets;
a flood of events thus starts at most one queued job per real server. A user's reactor
on the runner's hooks calls :func:`hook` to know an event is the runner's.

CLI Example (in the reactor's SLS; the gate's state lives in the reactor process):

.. code-block:: jinja

    {%- set job = salt['lvs_reactor.job'](tag) %}
"""

import logging

import lvstun.gate
import lvstun.hooks
import lvstun.records
import lvstun.site

log = logging.getLogger(__name__)

__virtualname__ = "lvs_reactor"


def __virtual__():
    if __opts__.get("__role") != "master":
        return False, "lvs_reactor runs in the master's reactor only"
    return __virtualname__


def job(tag):
    """The runner job the event ``tag`` calls for now: ``{"fun": "lvs.health", "minion":
    id}`` (a real server's report), ``{"fun": "lvs.hosts", "minion": id}`` (a director's
    probes: its site's directors are asked), ``{"fun": "lvs.directors", "minion": id}``
    (a router's probes of its directors: the router is asked), or ``{}`` (none: not the
    pack's event, a minion of no site in that role, or a job for it queued already). Only the tag's
    minion id is used, as a name the runner verifies; nothing of the payload.

    tag
        The event's tag (``salt/beacon/rs1/lvs_backend/``).

    CLI Example (the reactor SLS calls it; by hand, on the master):

    .. code-block:: bash

        salt-call --local lvs_reactor.job salt/beacon/rs1/lvs_backend/
    """
    kind, minion = lvstun.gate.job_for(tag)
    if kind is None:
        return {}
    try:
        admitted = lvstun.gate.admit(__opts__, kind, minion)
    except lvstun.site.SiteError as err:
        log.error("lvs: beacon event %s not acted on: the site's pillar is invalid: %s", tag, err)
        return {}
    if admitted is None:
        log.debug("lvs: beacon event %s dropped: no such minion of a site, or its job is queued already", tag)
        return {}
    return {"fun": f"lvs.{kind}", "minion": minion}


def hook(tag, data):
    """The hook event's data when the ``lvs`` runner fired it (its signature holds), else
    an empty dict: a reactor acts on a hook only through this (any minion can put any
    tag and payload on the master's bus). ``lvstun.hooks`` lists the tags.

    tag, data
        The event's, as the reactor SLS has them.

    CLI Example (in a reactor SLS, docs/hooks.md):

    .. code-block:: jinja

        {%- set hook = salt['lvs_reactor.hook'](tag, data) %}
        {%- if hook %} ... {{ hook.service }} ... {%- endif %}
    """
    found = lvstun.records.load(__opts__, lvstun.records.HOOK_KEY)
    verified = lvstun.hooks.verify(found["key"], tag, data) if found else None
    if verified is None:
        log.warning("lvs: event %s is not a hook the lvs runner signed: ignored", tag)
        return {}
    return verified
