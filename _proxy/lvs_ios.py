"""Proxy minion for a Cisco IOS front router, over SSH with netmiko.

Netmiko, not napalm: the pack changes a handful of lines (static NAT, ``ip nat inside|
outside``, VIP routes) and must know which line the device refused, in the device's own
words. Netmiko sends one CLI line at a time and returns what the device answered;
napalm's IOS driver works by whole-config merge or replace through SCP and ``configure
replace``, which needs the device's file system and hides per-line errors.

Configuration (the proxy's pillar or its ``/etc/salt/proxy`` file):

.. code-block:: yaml

    proxy:
      proxytype: lvs_ios
      host: 192.0.2.1
      port: 22                # default
      username: salt
      password: ...
      secret: ...             # enable secret, if the login lands in user EXEC mode
      device_type: cisco_ios  # any netmiko Cisco IOS-like driver
      timeout: 15             # seconds for each answer
    multiprocessing: False    # jobs share the proxy's one SSH session (not forked)
    metaproxy: lvs_proxy      # Salt 3008.4: see _metaproxy/lvs_proxy.py
    autoload_dynamic_modules: False  # optional: the pack is installed on the proxy's host

The session is opened at start and reopened when it was lost; a connection error (wrong
credentials, unreachable device) fails the call that needed it with netmiko's message,
and the proxy keeps running.

CLI Example (through the ``iosnat`` execution module):

.. code-block:: bash

    salt router iosnat.running
"""

import logging
import re

from salt.exceptions import CommandExecutionError as DeviceError

try:
    import netmiko

    HAS_NETMIKO = True
except ImportError:
    HAS_NETMIKO = False

__proxyenabled__ = ["lvs_ios"]
__virtualname__ = "lvs_ios"

log = logging.getLogger(__name__)

# What IOS answers to a line it did not take: "% Invalid input ...", "% Incomplete
# command.", "% 10.0.0.1 already mapped ...", "%Translation not found".
_ERROR = re.compile(r"^\s*%.*$", re.MULTILINE)
_CONFIRM = re.compile(r"\[(?:no|yes|confirm)\]:?\s*$", re.IGNORECASE)
_PROMPT = r"(?:\)#|\[(?:no|yes|confirm)\]:?\s*$)"

_STATE = {"opts": None, "conn": None, "error": None, "initialized": False}


def __virtual__():
    if not HAS_NETMIKO:
        return False, "lvs_ios proxy: netmiko is not installed"
    return __virtualname__


def init(opts):
    """Open the session to the device (an error is kept for the first call to report)."""
    _STATE.update(opts=opts, initialized=True)
    try:
        _connection()
    except DeviceError as err:
        log.error("lvs_ios: %s", err)


def initialized():
    return _STATE["initialized"]


def alive(opts):
    conn = _STATE["conn"]
    return bool(conn and conn.is_alive())


def ping():
    """True when the device answers (opening the session if needed)."""
    try:
        _connection().find_prompt()
    except (DeviceError, OSError, EOFError) as err:
        log.warning("lvs_ios: ping: %s", err)
        _drop()
        return False
    except Exception as err:  # pylint: disable=broad-except
        log.warning("lvs_ios: ping: %s", err)
        _drop()
        return False
    return True


def shutdown(opts):
    _drop()


def grains():
    return {"lvs_ios": {"host": _settings().get("host")}}


def _settings():
    return dict((_STATE["opts"] or {}).get("proxy") or {})


def _drop():
    conn, _STATE["conn"] = _STATE["conn"], None
    if conn is not None:
        try:
            conn.disconnect()
        except Exception:  # pylint: disable=broad-except
            pass


def _connection():
    conn = _STATE["conn"]
    if conn is not None and conn.is_alive():
        return conn
    _drop()
    conf = _settings()
    args = {
        "device_type": conf.get("device_type", "cisco_ios"),
        "host": conf.get("host"),
        "port": int(conf.get("port", 22)),
        "username": conf.get("username"),
        "password": conf.get("password"),
        "secret": conf.get("secret", ""),
        "timeout": int(conf.get("timeout", 15)),
        "conn_timeout": int(conf.get("timeout", 15)),
        "fast_cli": True,
    }
    try:
        conn = netmiko.ConnectHandler(**args)
        if not conn.check_enable_mode():
            conn.enable()
    except Exception as err:  # pylint: disable=broad-except  (netmiko raises many kinds)
        _STATE["error"] = f"cannot open a session to {args['host']}:{args['port']}: {_words(err)}"
        raise DeviceError(_STATE["error"]) from err
    _STATE["conn"], _STATE["error"] = conn, None
    return conn


def show(command):
    """Return the device's answer to a ``show`` command (privileged EXEC).

    CLI Example:

    .. code-block:: bash

        salt router lvs_ios.show 'show running-config'
    """
    if not command.startswith("show "):
        raise DeviceError(f"not a show command: {command!r}")
    try:
        return _connection().send_command(command, read_timeout=_timeout())
    except DeviceError:
        raise
    except Exception as err:  # pylint: disable=broad-except
        _drop()
        raise DeviceError(f"session lost during {command!r}: {_words(err)}") from err


def _words(err):
    """An exception as one line: netmiko's message, or its kind when it has none."""
    text = " ".join(str(err).split())
    return text or type(err).__name__


def _timeout():
    return float(_settings().get("timeout", 15))


def configure(blocks):
    """Send blocks of config lines (each a list: ``["interface Gi0/1", "ip nat inside",
    "exit"]`` or one global line) in config mode, one line at a time; stop at the first
    line the device refuses. A ``[no]:`` confirmation (an in-use static entry being
    removed) is answered ``yes``: the pack only removes what it means to remove.

    Returns ``{"applied": n, "error": None}`` or, at the first failure,
    ``{"applied": n, "error": {"line": ..., "answer": ..., "lost": bool}}`` where ``n``
    counts the blocks the device took in full. Config mode is left in every case.
    """
    applied = 0
    try:
        conn = _connection()
        conn.config_mode()
    except DeviceError as err:
        return {"applied": 0, "error": {"line": None, "answer": str(err), "lost": True}}
    except Exception as err:  # pylint: disable=broad-except
        _drop()
        return {"applied": 0, "error": {"line": None, "answer": f"session lost: {_words(err)}", "lost": True}}
    line = None
    try:
        for block in blocks:
            for line in block:
                answer = conn.send_command(line, expect_string=_PROMPT, strip_prompt=False,
                                           strip_command=True, read_timeout=_timeout())
                if _CONFIRM.search(answer):
                    answer = conn.send_command("yes", expect_string=_PROMPT, strip_prompt=False,
                                               strip_command=True, read_timeout=_timeout())
                error = _ERROR.search(answer)
                if error:
                    conn.exit_config_mode()
                    return {"applied": applied,
                            "error": {"line": line, "answer": error.group(0).strip(), "lost": False}}
            applied += 1
        conn.exit_config_mode()
    except Exception as err:  # pylint: disable=broad-except
        _drop()
        return {"applied": applied, "error": {"line": line, "answer": f"session lost: {_words(err)}", "lost": True}}
    return {"applied": applied, "error": None}


def save():
    """Copy the running config to the startup config (``write memory``); return the
    device's answer, or raise ``DeviceError`` when it did not say ``[OK]``."""
    try:
        answer = _connection().save_config()
    except DeviceError:
        raise
    except Exception as err:  # pylint: disable=broad-except
        _drop()
        raise DeviceError(f"session lost during write memory: {_words(err)}") from err
    if "[OK]" not in answer:
        raise DeviceError(f"write memory: {answer.strip()}")
    return answer
