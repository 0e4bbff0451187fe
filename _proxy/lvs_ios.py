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
and the proxy keeps running. Jobs run in threads of the proxy and share the one session,
and so does Salt's keep-alive (``alive``, every minute): each use of the session holds
one lock, and nothing but commands is ever typed into the CLI. Whether the session is up
is asked of the SSH transport, not with netmiko's ``is_alive`` (it types a NUL byte,
which a CLI may answer with a bell that a command running at the same time then reads
as its prompt); each answer is read up to the device's own prompt, learnt at login,
never guessed again per command.

CLI Example (through the ``iosnat`` execution module):

.. code-block:: bash

    salt router iosnat.running
"""

import functools
import logging
import re
import threading

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
_SESSION = threading.RLock()  # one user of the session at a time: the jobs' threads, the keep-alive


def _serialized(func):
    """Run ``func`` holding the session's lock."""

    @functools.wraps(func)
    def locked(*args, **kwargs):
        with _SESSION:
            return func(*args, **kwargs)

    return locked


def __virtual__():
    if not HAS_NETMIKO:
        return False, "lvs_ios proxy: netmiko is not installed"
    return __virtualname__


@_serialized
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
    """Salt's keep-alive: whether the session is up. A session in use by a job is up (the
    job reopens it if it fails): answering False then would make Salt close it under the
    job."""
    if not _SESSION.acquire(blocking=False):
        return True
    try:
        return _session_up(_STATE["conn"])
    finally:
        _SESSION.release()


def _session_up(conn):
    """Whether ``conn``'s SSH channel is open, asked of the transport (no CLI input)."""
    channel = getattr(conn, "remote_conn", None)
    if channel is None or getattr(channel, "closed", True):
        return False
    transport = channel.get_transport()
    return bool(transport is not None and transport.is_active())


@_serialized
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


@_serialized
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
    if _session_up(conn):
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


def _prompt(conn):
    """The pattern of the device's privileged prompt (``edge1#``), from the name netmiko
    learnt at login, at the end of what was read."""
    return re.escape(conn.base_prompt) + r"#\s*$"


@_serialized
def show(command):
    """Return the device's answer to a ``show`` command (privileged EXEC).

    CLI Example:

    .. code-block:: bash

        salt router lvs_ios.show 'show running-config'
    """
    if not command.startswith("show "):
        raise DeviceError(f"not a show command: {command!r}")
    try:
        conn = _connection()
        return conn.send_command(command, expect_string=_prompt(conn), read_timeout=_timeout())
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


@_serialized
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


@_serialized
def save():
    """Copy the running config to the startup config (``write memory``, confirmed when the
    device asks); return the device's answer, or raise ``DeviceError`` when it did not say
    ``[OK]``."""
    try:
        conn = _connection()
        expect = f"(?:{_prompt(conn)}|(?i:{_CONFIRM.pattern}))"
        answer = conn.send_command("write memory", expect_string=expect, read_timeout=_timeout())
        if _CONFIRM.search(answer):
            answer += conn.send_command("", expect_string=_prompt(conn), cmd_verify=False,
                                        read_timeout=_timeout())
    except DeviceError:
        raise
    except Exception as err:  # pylint: disable=broad-except
        _drop()
        raise DeviceError(f"session lost during write memory: {_words(err)}") from err
    if "[OK]" not in answer:
        raise DeviceError(f"write memory: {answer.strip()}")
    return answer
