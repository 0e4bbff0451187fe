"""keepalived in a lab host, for the benchmarks' baselines (Debian's keepalived, which
the bootstrap installs): a configuration written into the host's /run, one daemon
started with pid files of its own, stopped again (it removes what it configured)."""

import io

CONF = "/run/lvs-bench-keepalived.conf"
PIDS = ("-p", "/run/lvs-bench-keepalived.pid", "-r", "/run/lvs-bench-vrrp.pid", "-c", "/run/lvs-bench-checkers.pid")


def start(lab, name, conf, *flags):
    """Start keepalived on lab host ``name`` with the configuration text ``conf``
    (``flags``: ``-C`` for the checkers alone, ``-P`` for VRRP alone)."""
    sink = io.BytesIO()
    code = lab.exec(name, ["sh", "-c", f"cat > {CONF}"], stdin=conf.encode(), out=sink, err=sink)
    assert code == 0, sink.getvalue()
    code, _, err = lab.capture(name, "keepalived", *flags, "-f", CONF, *PIDS)
    assert code == 0, err


def stop(lab, name, then=""):
    """Stop it (and wait a second for it to take down what it set up); ``then``: a shell
    command run after."""
    lab.capture(name, "sh", "-c", f"kill $(cat {PIDS[1]}) 2>/dev/null; sleep 1; {then} true")


CHECKER_CONF = """global_defs {{
  router_id lvs_bench_checker
}}
virtual_server {vip} {port} {{
  delay_loop 1
  lb_algo rr
  lb_kind TUN
  protocol TCP
{reals}}}
"""
CHECKER_REAL = """  real_server {address} {port} {{
    weight 1
    inhibit_on_failure
    TCP_CHECK {{
      connect_timeout 1
      retry 0
    }}
  }}
"""


def start_checker(lab, director, service):
    """keepalived's checker alone (``-C``) in ``director``, beside the pack's table: a
    virtual server of its own (``service``'s VIP on a port no service uses), the same real
    servers, the tightest usual TCP check (``delay_loop 1``, ``connect_timeout 1``,
    ``retry 0``) and ``inhibit_on_failure`` (weight 0, not removal). Returns its spec
    ``vip:port``."""
    site = lab.site()
    svc = site.services[service]
    used = {s.port for s in site.services.values() if s.vip == svc.vip}
    port = next(p for p in range(svc.port + 8000, 65536) if p not in used)
    reals = "".join(CHECKER_REAL.format(address=site.hosts[b.minion_id].address, port=b.port)
                    for b in svc.backends)
    start(lab, director, CHECKER_CONF.format(vip=svc.vip, port=port, reals=reals), "-C")
    return f"{svc.vip}:{port}"
