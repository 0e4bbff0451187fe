"""``lvs-lab``: the seed's LVS-TUN site on real kernels, deployed with Salt.

CLI examples:

.. code-block:: bash

    lvs-lab up                       # build pillar/ (the seed's site), state.apply
    lvs-lab up --site two_vips       # pillar/lvs/two_vips.sls instead
    lvs-lab up --add-site second     # and pillar/lvs/second.sls beside it (one master)
    lvs-lab add-site second          # a further site beside a lab that is up
    lvs-lab remove-site second
    lvs-lab restart director         # power-cycle a host; it comes back configured
    lvs-lab exec rs1 -- ip addr show tunl0
    lvs-lab salt -- '*' test.ping
    lvs-lab traffic --count 30
    lvs-lab down
    lvs-lab demo                     # up, traffic, down: the README's main command
"""

import argparse
import os
import sys

from lvs_lab import lab as lab_mod
from lvs_lab import traffic
from lvs_lab.progress import Progress

DEFAULT_PILLAR = os.path.join(lab_mod.REPO, "pillar")


def _split_command(argv):
    """Split ``NODE -- CMD ...``: argparse keeps everything after ``--`` as is."""
    return argv[1:] if argv and argv[0] == "--" else argv


def cmd_up(args):
    lab_mod.Lab().up(args.pillar, Progress(), site=args.site, apply=not args.no_apply, more_sites=args.add_site)
    done = "nothing applied yet" if args.no_apply else "state.apply succeeded"
    print(f"lab up: {', '.join(lab_mod.Lab().minions)} answer the master; {done}")
    return 0


def cmd_add_site(args):
    lab = _up_lab().add_site(args.name, Progress(), apply=not args.no_apply)
    print(f"site {args.name} up beside the lab: {', '.join(lab.site_minions(args.name))} answer the master")
    return 0


def cmd_remove_site(args):
    _up_lab().remove_site(args.name, Progress())
    print(f"site {args.name} taken away")
    return 0


def cmd_down(args):
    lab_mod.Lab().down(Progress())
    print("lab down: nothing left behind")
    return 0


def cmd_restart(args):
    lab = _up_lab()
    with Progress().step(f"restarting {args.node} and waiting for its minion"):
        lab.restart(args.node)
    print(f"{args.node} restarted; its minion answers (it re-applies its highstate at start)")
    return 0


def cmd_exec(args):
    command = _split_command(args.command)
    if not command:
        raise lab_mod.LabError("lvs-lab exec NODE -- CMD ...: no command given")
    return _up_lab().exec(args.node, command)


def cmd_salt(args):
    os.execvp("ip", _up_lab().salt_argv(*_split_command(args.args)))


def cmd_traffic(args):
    lab = _up_lab()
    report = traffic.run(lab, lab.site(), count=args.count, service=args.service)
    print(traffic.describe(report))
    return 0 if report["ok"] else 1


def cmd_demo(args):
    progress = Progress()
    lab = lab_mod.Lab()
    if lab.hosts:
        progress.say("a lab was left up: taking it down first")
        lab.down(progress)
    try:
        lab = lab_mod.Lab().up(args.pillar, progress, site=args.site)
        site = lab.site()
        reports = []
        for service in site.services:
            with progress.step(f"sending {args.count} requests from client to service {service}"):
                reports.append(traffic.run(lab, site, count=args.count, service=service))
        for report in reports:
            print(traffic.describe(report))
        return 0 if all(report["ok"] for report in reports) else 1
    finally:
        lab_mod.Lab().down(progress)
        progress.say("lab down: nothing left behind")


def _up_lab():
    lab = lab_mod.Lab()
    if not lab.hosts:
        raise lab_mod.LabError(f"no lab is up (no state in {lab.state_dir}): run `lvs-lab up`")
    return lab


def parser():
    top = argparse.ArgumentParser(prog="lvs-lab", description=__doc__.splitlines()[0])
    sub = top.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="build the site on real kernels and apply the states")
    up.add_argument("--pillar", default=DEFAULT_PILLAR, help="the site's pillar root (default: %(default)s)")
    up.add_argument("--site", help="use PILLAR/lvs/SITE.sls instead of the pillar's top file (e.g. two_vips)")
    up.add_argument("--add-site", action="append", default=[], metavar="NAME",
                    help="also build PILLAR/lvs/NAME.sls beside it, served by the same master (repeatable)")
    up.add_argument("--no-apply", action="store_true",
                    help="start the hosts and Salt but apply nothing (hosts as their installer left them)")
    up.set_defaults(func=cmd_up)
    add = sub.add_parser("add-site", help="build PILLAR/lvs/NAME.sls beside a lab that is up (one master)")
    add.add_argument("name")
    add.add_argument("--no-apply", action="store_true", help="start its hosts but apply nothing")
    add.set_defaults(func=cmd_add_site)
    rm = sub.add_parser("remove-site", help="take a site added beside the lab away")
    rm.add_argument("name")
    rm.set_defaults(func=cmd_remove_site)
    rs = sub.add_parser("restart", help="power-cycle a lab host and wait for its minion")
    rs.add_argument("node")
    rs.set_defaults(func=cmd_restart)
    sub.add_parser("down", help="stop everything and remove all the lab made").set_defaults(func=cmd_down)
    ex = sub.add_parser("exec", help="run a command on a lab host: exec NODE -- CMD ...")
    ex.add_argument("node")
    ex.add_argument("command", nargs=argparse.REMAINDER)
    ex.set_defaults(func=cmd_exec)
    sa = sub.add_parser("salt", help="run the salt CLI on the lab's master: salt -- ARGS ...")
    sa.add_argument("args", nargs=argparse.REMAINDER)
    sa.set_defaults(func=cmd_salt)
    tr = sub.add_parser("traffic", help="send requests from client to a service's public address")
    tr.add_argument("--count", type=int, default=30)
    tr.add_argument("--service", help="the service's name in the pillar (default: the first one)")
    tr.set_defaults(func=cmd_traffic)
    de = sub.add_parser("demo", help="up, traffic, down: the README's main command")
    de.add_argument("--pillar", default=DEFAULT_PILLAR)
    de.add_argument("--site", help="use PILLAR/lvs/SITE.sls instead of the pillar's top file")
    de.add_argument("--count", type=int, default=30)
    de.set_defaults(func=cmd_demo)
    return top


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except lab_mod.LabError as err:
        print(f"lvs-lab: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`lvs-lab exec HOST -- CMD | head`): end quietly, as any
        # Unix tool does, and keep Python from complaining when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a tool killed by it


if __name__ == "__main__":
    sys.exit(main())
