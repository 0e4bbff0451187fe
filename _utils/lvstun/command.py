"""A command-line tool the pack drives (``nft``, ``ip``), run with a time limit; what
goes wrong is Salt's ``CommandExecutionError``, naming the command."""

import subprocess

from salt.exceptions import CommandExecutionError


def run(argv, timeout, stdin=None):
    """The finished process of ``argv``, whatever its exit code; a time-out or a program
    that cannot start is an error."""
    try:
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise CommandExecutionError(f"{' '.join(argv)} did not finish in {timeout} s") from None
    except OSError as err:
        raise CommandExecutionError(f"{' '.join(argv)} could not run: {err}") from err


def output(argv, timeout, stdin=None):
    """What ``argv`` printed; an exit code other than 0 is an error with its message."""
    proc = run(argv, timeout, stdin)
    if proc.returncode != 0:
        raise CommandExecutionError(f"{' '.join(argv)} failed: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout
