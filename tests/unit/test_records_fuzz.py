"""Random JSON in every record, on the master and on a director: every runner function
and the director's own functions (its highstate's table included) answer or refuse
with a clear error, never a traceback (issue 24). Each record is written either as
arbitrary JSON, as a random value of its own shape (which reaches the logic behind the
check), or not at all."""

import json
import os
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from salt.exceptions import SaltInvocationError

import lvstun.jsonstore
import lvstun.records
import lvstun.shape as shape
from tests.unit.harness import Site

NAMES = st.sampled_from(["rs1", "rs2", "rs3", "director", "web", "*", "dns", "e", "0"]) | st.text(
    string.ascii_letters, max_size=4)
SCALARS = st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=True) | st.text(max_size=8)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(NAMES, inner, max_size=4),
                    max_leaves=20)


def of_shape(spec):
    """Random values that fit ``spec`` (``lvstun.shape``)."""
    if spec == shape.ANY:
        return JSON
    if spec == shape.BOOL:
        return st.booleans()
    if spec == shape.STR:
        return NAMES
    if spec == shape.NUMBER:
        return st.floats(-1e12, 1e12, allow_nan=False) | st.integers(-2**40, 2**40)
    if spec == shape.NULL:
        return st.none()
    if isinstance(spec, shape.Int):
        return st.integers(spec.lo if spec.lo is not None else -2**31, spec.hi if spec.hi is not None else 2**31)
    if isinstance(spec, shape.AnyOf):
        return st.one_of([of_shape(one) for one in spec.shapes])
    if isinstance(spec, shape.MapOf):
        return st.dictionaries(NAMES, of_shape(spec.value), max_size=3)
    if isinstance(spec, shape.ListOf):
        return st.lists(of_shape(spec.item), max_size=3 if spec.most is None else min(3, spec.most))
    if isinstance(spec, shape.Fields):
        optional = {key: of_shape(sub) for key, sub in spec.optional.items()}
        return st.fixed_dictionaries({key: of_shape(sub) for key, sub in spec.required.items()},
                                     optional=optional)
    raise TypeError(spec)


def content(record):
    return st.none() | JSON | of_shape(record.shape)


MASTER = (lvstun.records.HEALTH, lvstun.records.DRAINS, lvstun.records.PUSH_PENDING)
DIRECTOR = (lvstun.records.RUNNER_COPY, lvstun.records.PATH_VERDICTS, lvstun.records.HOSTS_REACH,
            lvstun.records.WEIGHTS_SET, lvstun.records.SITE_APPLIED, lvstun.records.BACKEND_REPORT)


def _write(opts, record, value, previous):
    path = lvstun.jsonstore.path(opts, record.name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    for target, data in ((path, value), (f"{path}.prev", previous)):
        if data is None:
            if os.path.exists(target):
                os.unlink(target)
        else:
            with open(target, "w", encoding="utf-8") as fh:
                json.dump(data, fh)  # NaN and infinities included: what a damaged file may hold


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(master=st.tuples(*[st.tuples(content(r), content(r)) for r in MASTER]),
       director=st.tuples(*[st.tuples(content(r), content(r)) for r in DIRECTOR]),
       report=JSON)
def test_random_records_never_raise_anything_but_a_clear_error(tmp_path_factory, monkeypatch, master, director,
                                                               report):
    site = Site(tmp_path_factory.mktemp("fuzz"), monkeypatch)
    for record, (value, previous) in zip(MASTER, master, strict=True):
        _write(site.runner.__opts__, record, value, previous)
    minion = site.directors["director"]
    for record, (value, previous) in zip(DIRECTOR, director, strict=True):
        _write(minion.health.__opts__, record, value, previous)
    site.reports["rs1"] = report
    calls = [lambda: site.runner.status(), lambda: site.runner.health("rs1"), lambda: site.runner.hosts(),
             lambda: site.runner.drain("rs2", reason="fuzz"), lambda: site.runner.undrain("rs2", service="web"),
             lambda: site.runner.undrain("rs2"),
             minion.health.record, minion.health.local, minion.health.report, minion.health.reachability,
             minion.health.held, minion.health.status, minion.health.apply, minion.highstate]
    for call in calls:
        try:
            call()
        except SaltInvocationError as err:
            assert str(err)  # a refusal that says why


def test_a_stored_record_is_checked_before_it_is_written(tmp_path):
    opts = {"cachedir": str(tmp_path)}
    with pytest.raises(ValueError, match="not storing record path-checks: down: list where an object"):
        lvstun.records.store(opts, lvstun.records.PATH_VERDICTS, {"down": ["rs1"]})
    with pytest.raises(ValueError):
        lvstun.records.store(opts, lvstun.records.HOSTS_REACH, {"at": float("nan"), "reachable": {}})
    assert not os.path.exists(lvstun.jsonstore.path(opts, "path-checks"))
