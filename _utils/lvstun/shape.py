"""Shapes of the pack's JSON records, checked field by field where they are read.

A record read from disk may be damaged, hand-edited or written by an older version of
the pack: whatever parses as JSON is checked against its shape (:func:`problems`)
before anything uses it, and one that does not fit is treated as damaged (logged,
recovered), never as a traceback further on.

A shape is plain data:

- ``BOOL``, ``STR``, ``NULL``, ``NUMBER`` (a finite int or float, never a bool),
  ``Int(lo, hi)``, ``ANY`` (a part its reader checks itself);
- ``Fields(required={...}, optional={...})``: a JSON object with those keys (others are
  allowed and kept: a newer writer may add some);
- ``MapOf(value)``: an object whose keys are strings and values all of one shape;
- ``ListOf(item, most=None)``;
- ``AnyOf(shape, ...)``.

.. code-block:: python

    problems({"at": "x"}, Fields(required={"at": NUMBER}))   # ["at: 'x' is not a number"]
"""

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class Int:
    lo: int = None
    hi: int = None


@dataclasses.dataclass(frozen=True)
class Fields:
    required: dict = dataclasses.field(default_factory=dict)
    optional: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class MapOf:
    value: object


@dataclasses.dataclass(frozen=True)
class ListOf:
    item: object
    most: int = None


@dataclasses.dataclass(frozen=True)
class AnyOf:
    shapes: tuple


BOOL, STR, NUMBER, NULL = "bool", "str", "number", "null"
ANY = "any"  # any JSON value: a part its reader checks itself (the site tree)


def finite(value):
    """A number JSON can carry: an int or float that is not a bool, NaN or infinite."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _name(path):
    return ":".join(map(str, path)) or "(the record)"


# The plain shapes: what a value must be, and what is said when it is not.
_PLAIN = {
    ANY: (lambda value: True, ""),
    BOOL: (lambda value: isinstance(value, bool), "is not true or false"),
    STR: (lambda value: isinstance(value, str), "is not a string"),
    NUMBER: (finite, "is not a number"),
    NULL: (lambda value: value is None, "is not null"),
}


def _any_of(value, shape, path, out):
    if all(_walk(value, one, path, []) for one in shape.shapes):
        out.append(f"{_name(path)}: {value!r:.60} has none of the expected shapes")


def _int(value, shape, path, out):
    if isinstance(value, bool) or not isinstance(value, int):
        out.append(f"{_name(path)}: {value!r:.60} is not an integer")
    elif (shape.lo is not None and value < shape.lo) or (shape.hi is not None and value > shape.hi):
        out.append(f"{_name(path)}: {value} is out of range {shape.lo}-{shape.hi}")


def _fields(value, shape, path, out):
    if not isinstance(value, dict):
        out.append(f"{_name(path)}: {type(value).__name__} where an object is expected")
        return
    for key, sub in shape.required.items():
        if key not in value:
            out.append(f"{_name([*path, key])}: missing")
        else:
            _walk(value[key], sub, [*path, key], out)
    for key, sub in shape.optional.items():
        if key in value:
            _walk(value[key], sub, [*path, key], out)


def _map_of(value, shape, path, out):
    if not isinstance(value, dict):
        out.append(f"{_name(path)}: {type(value).__name__} where an object is expected")
        return
    for key, item in value.items():
        _walk(item, shape.value, [*path, key], out)


def _list_of(value, shape, path, out):
    if not isinstance(value, (list, tuple)):  # (a tuple is written as a JSON array too)
        out.append(f"{_name(path)}: {type(value).__name__} where a list is expected")
        return
    if shape.most is not None and len(value) > shape.most:
        out.append(f"{_name(path)}: {len(value)} items, at most {shape.most}")
    for index, item in enumerate(value):
        _walk(item, shape.item, [*path, index], out)


_COMPOUND = {AnyOf: _any_of, Int: _int, Fields: _fields, MapOf: _map_of, ListOf: _list_of}


def _walk(value, shape, path, out):
    if isinstance(shape, str) and shape in _PLAIN:
        fits, problem = _PLAIN[shape]
        if not fits(value):
            out.append(f"{_name(path)}: {value!r:.60} {problem}")
    elif type(shape) in _COMPOUND:
        _COMPOUND[type(shape)](value, shape, path, out)
    else:  # pragma: no cover - a shape written wrong is the pack's bug
        raise TypeError(f"not a shape: {shape!r}")
    return out


def problems(value, shape):
    """Every way ``value`` does not fit ``shape``, each naming its path (empty: it fits)."""
    return _walk(value, shape, [], [])
