"""The planner behind the ipvs states: from the kernel's table to the wanted one."""

import lvstun.ipvs as rec

SVC = "tcp:10.10.24.88:80"


def _kernel(dests, scheduler="rr", spec=SVC):
    """A table record as ipvs.list returns it."""
    key = rec.parse_service(spec)
    return {**key, "scheduler": scheduler, "flags": [], "persistent": 0, "netmask": "255.255.255.255",
            "destinations": [
                {**rec.parse_dest(d), "forward": "tunnel", "weight": w, "u_threshold": 0, "l_threshold": 0,
                 "tun_type": "ipip", "tun_port": 0, "tun_flags": [], "active": a, "inactive": i}
                for d, (w, a, i) in dests.items()]}


def _want(dests, scheduler="rr", spec=SVC):
    return [rec.desired_service(spec, {"scheduler": scheduler,
                                       "destinations": {d: {"weight": w} for d, w in dests.items()}})]


def test_from_nothing_everything_is_added():
    ops, changes = rec.plan([], _want({"10.10.24.21:80": 1, "10.10.24.22:80": 2}))
    assert [op[0] for op in ops] == ["add_service", "add_dest", "add_dest"]
    assert changes[SVC] == {"old": None, "new": {"scheduler": "rr", "flags": [], "persistent": 0}}
    assert changes[f"{SVC} -> 10.10.24.22:80"]["new"]["weight"] == 2
    assert changes[f"{SVC} -> 10.10.24.22:80"]["new"]["forward"] == "tunnel"


def test_no_change_no_ops():
    current = [_kernel({"10.10.24.21:80": (1, 0, 0)})]
    assert rec.plan(current, _want({"10.10.24.21:80": 1})) == ([], {})


def test_weight_one_is_not_weight_ten():
    current = [_kernel({"10.10.24.21:80": (10, 0, 0)})]
    ops, changes = rec.plan(current, _want({"10.10.24.21:80": 1}))
    assert [op[0] for op in ops] == ["edit_dest"]
    assert changes == {f"{SVC} -> 10.10.24.21:80": {"old": {"weight": 10}, "new": {"weight": 1}}}


def test_removed_dest_with_connections_is_drained_not_cut():
    current = [_kernel({"10.10.24.21:80": (1, 0, 0), "10.10.24.22:80": (1, 3, 1)})]
    ops, changes = rec.plan(current, _want({"10.10.24.21:80": 1}))
    assert [(op[0], op[2]["weight"]) for op in ops] == [("edit_dest", 0)]
    assert changes[f"{SVC} -> 10.10.24.22:80"] == {"old": {"weight": 1}, "new": {"weight": 0, "draining": True}}
    # Next run, still busy at weight 0: nothing to do; once idle: deleted.
    current = [_kernel({"10.10.24.21:80": (1, 0, 0), "10.10.24.22:80": (0, 2, 0)})]
    assert rec.plan(current, _want({"10.10.24.21:80": 1})) == ([], {})
    current = [_kernel({"10.10.24.21:80": (1, 0, 0), "10.10.24.22:80": (0, 0, 0)})]
    ops, _ = rec.plan(current, _want({"10.10.24.21:80": 1}))
    assert [op[0] for op in ops] == ["del_dest"]


def test_remove_delete_cuts_at_once():
    current = [_kernel({"10.10.24.22:80": (1, 3, 1)})]
    ops, _ = rec.plan(current, _want({}), remove="delete")
    assert [op[0] for op in ops] == ["del_dest"]


def test_services_not_owned_are_never_touched():
    kube = _kernel({"10.96.0.5:443": (1, 0, 0)}, spec="tcp:10.96.0.1:443")
    assert rec.plan([kube], _want({"10.10.24.21:80": 1}))[0] == [
        op for op in rec.plan([], _want({"10.10.24.21:80": 1}))[0]]
    ops, _ = rec.plan([kube], [], owned=["tcp:10.10.24.99:80"])
    assert ops == []


def test_owned_service_no_longer_wanted_is_removed():
    old = _kernel({"10.10.24.21:80": (1, 0, 0)}, spec="tcp:10.10.24.89:80")
    ops, changes = rec.plan([old], [], owned=["tcp:10.10.24.89:80"])
    assert [op[0] for op in ops] == ["del_service"]
    assert changes["tcp:10.10.24.89:80"]["new"] is None
    assert rec.still_owned({rec.service_spec(old)}, [], ["tcp:10.10.24.89:80"]) == ["tcp:10.10.24.89:80"]
    assert rec.still_owned(set(), [], ["tcp:10.10.24.89:80"]) == []


def test_service_field_changes_are_old_new():
    current = [_kernel({}, scheduler="rr")]
    ops, changes = rec.plan(current, _want({}, scheduler="wrr"))
    assert [op[0] for op in ops] == ["edit_service"]
    assert changes[SVC] == {"old": {"scheduler": "rr"}, "new": {"scheduler": "wrr"}}


def test_desired_dest_checks_every_field_before_any_change():
    import pytest  # noqa: PLC0415

    with pytest.raises(rec.SpecError, match="tunnel flag 'fast' is not one of"):
        rec.desired_dest("10.10.24.21:80", {"tun_flags": ["fast"]}, SVC)
    with pytest.raises(rec.SpecError, match="forward 'pigeon' is not one of"):
        rec.desired_dest("10.10.24.21:80", {"forward": "pigeon"}, SVC)
    assert rec.desired_dest("10.10.24.21:80", {"tun_type": "gue", "tun_port": 6080, "tun_flags": ["csum"]}, SVC) == {
        "address": "10.10.24.21", "port": 80, "forward": "tunnel", "weight": 1, "u_threshold": 0, "l_threshold": 0,
        "tun_type": "gue", "tun_port": 6080, "tun_flags": ["csum"]}


def test_a_service_held_exactly_as_wanted_is_unchanged_and_any_difference_is_not():
    """``ipvs.managed`` plans only the services whose settings differ (issue 26)."""
    def want_of(dests, scheduler="rr"):
        return [rec.desired_service(SVC, {"scheduler": scheduler, "destinations": dests})]

    want = want_of({"10.10.24.21:80": {"weight": 2}, "10.10.24.22:80": {}})
    kernel = _kernel({"10.10.24.21:80": (2, 0, 0), "10.10.24.22:80": (1, 5, 0)})
    held = {rec.service_spec(kernel): (rec.service_values(kernel), {(d["address"], d["port"]): rec.dest_values(d)
                                                                    for d in kernel["destinations"]})}
    wanted = rec.as_wanted(want)
    assert rec.unchanged(wanted, held) == {SVC}  # connections do not count
    assert rec.plan([kernel], want)[0] == []
    for change in ({"weight": 3}, {"forward": "route"}, {"u_threshold": 9}):
        other = rec.as_wanted(want_of({"10.10.24.21:80": {"weight": 2, **change}, "10.10.24.22:80": {}}))
        assert rec.unchanged(other, held) == set()
    extra = rec.as_wanted(want_of({"10.10.24.21:80": {"weight": 2}}))  # the kernel holds one more: not unchanged
    assert rec.unchanged(extra, held) == set()
    assert rec.unchanged(rec.as_wanted(want_of({"10.10.24.21:80": {"weight": 2}, "10.10.24.22:80": {}},
                                               scheduler="wrr")), held) == set()
    assert rec.unchanged(wanted, {}) == set()


def test_thousands_of_changes_are_reported_per_service_and_a_few_one_by_one():
    few = rec.plan([], _want({"10.10.24.21:80": 1}))[1]
    assert rec.summarized(few) == few
    desired = [rec.desired_service(f"tcp:10.20.{i // 250}.{i % 250 + 1}:80",
                                   {"destinations": {f"10.10.24.{21 + j}:80": {"weight": 1} for j in range(10)}})
               for i in range(100)]
    _, changes = rec.plan([], desired)
    assert len(changes) == 1100
    report = rec.summarized(changes)
    assert len(report) == 100
    assert report["tcp:10.20.0.1:80"] == {"old": None, "new": {"scheduler": "wlc", "flags": [], "persistent": 0},
                                          "destinations": {"added": 10, "changed": 0, "drained": 0, "removed": 0}}


def test_records_made_from_the_checked_table_are_those_desired_service_makes():
    """ipvs.managed checks a table once (rec.wanted) and builds its records from that."""
    table = {
        "tcp:10.10.24.88:80": {"scheduler": "sh", "flags": ["sh-port"], "persistent": 300, "netmask": "255.255.255.0",
                               "destinations": {"10.10.24.21:80": {"weight": 3},
                                                "10.10.24.22:80": {"forward": "route", "u_threshold": 9},
                                                "10.10.24.23:80": {"tun_type": "gue", "tun_port": 6080,
                                                                   "tun_flags": ["remcsum", "csum"]}}},
        "udp:10.10.24.89:53": {"destinations": None},
        "fwmark:7": {},
    }
    wanted = rec.wanted(table)
    made = [rec.desired_service(spec, settings) for spec, settings in table.items()]
    assert rec.records(wanted, list(wanted)) == made


def test_a_backend_of_defaults_and_a_weight_is_checked_as_one_that_names_them():
    """The usual backend (no settings, or a weight only) comes out as the same backend
    with every default named, and a bad weight fails with the same error."""
    spec = "10.10.24.21:80"
    named = {"forward": "tunnel", "u_threshold": 0, "l_threshold": 0, "tun_type": "ipip", "tun_port": 0,
             "tun_flags": []}
    assert rec.dest_settings(spec) == rec.dest_settings(spec, {}) == rec.dest_settings(spec, named) \
        == rec.dest_settings(spec, {**named, "weight": 1})
    for weight in (0, 1, 7, rec.MAX_WEIGHT):
        assert rec.dest_settings(spec, {"weight": weight}) == rec.dest_settings(spec, {**named, "weight": weight})
    for weight in (-1, rec.MAX_WEIGHT + 1, True, "1", 1.0, None):
        errors = []
        for settings in ({"weight": weight}, {**named, "weight": weight}):
            try:
                rec.dest_settings(spec, settings)
            except rec.SpecError as err:
                errors.append(str(err))
        assert len(errors) == 2 and errors[0] == errors[1], (weight, errors)
