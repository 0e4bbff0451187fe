"""The shape every "check, then repair" state of the pack shares.

An execution module offers ``check(...)`` (every drift as a record of
:mod:`lvstun.drift`) and an ``apply(...)`` that repairs them; the state reports the
drifts as its changes (``{name: {"old": have, "new": want}}``), predicts them under
``test=True`` (result None), applies, and checks again to verify.
"""

from salt.exceptions import SaltException

from . import drift


def converge(ret, test, check, apply, what, detail=None):
    """Fill the state return ``ret`` for the thing described by ``what``; return it.
    ``detail(drifts)``, when given, is added to the comment (what is or would be sent)."""
    try:
        drifts = check()
    except SaltException as err:
        ret.update(result=False, comment=f"cannot check {what}: {err}")
        return ret
    if not drifts:
        ret.update(result=True, comment=f"{what} is as wanted")
        return ret
    ret["changes"] = drift.as_changes(drifts)
    if test:
        ret.update(result=None, comment=f"{len(drifts)} setting(s) of {what} would be changed"
                                        + (f": {detail(drifts)}" if detail else ""))
        return ret
    try:
        done = apply()
        left = check()
    except SaltException as err:
        # Report what was done apart from what failed: the drifts a new check no longer finds.
        try:
            left = drift.as_changes(check())
        except SaltException:
            left = ret["changes"]
        ret["changes"] = {name: change for name, change in ret["changes"].items() if name not in left}
        ret.update(result=False, comment=f"failed to change {what}: {err}; not done: {sorted(left)}")
        return ret
    if left:
        ret.update(result=False, comment=f"{what} still differs after the change: "
                                         f"{sorted(map(drift.name, left))}")
        return ret
    ret.update(result=True, comment=f"{len(drifts)} setting(s) of {what} changed"
                                    + (f": {detail(done)}" if detail else ""))
    return ret
