"""`redshank.protocol.fast_dataclass.dataclass`: a frozen value type built without the per-field
`object.__setattr__` keeps what callers rely on from frozen dataclasses (eq, field hash, repr,
`replace`, pickling, slots, ordering); eq=False keeps identity hashing; non-frozen classes are
untouched."""

from __future__ import annotations

import dataclasses
import pickle

from redshank.protocol.fast_dataclass import dataclass
from redshank.protocol.record_batch import BatchHeader


@dataclass(frozen=True, slots=True, order=True)
class _Point:
    x: int
    y: int = 0


@dataclass(frozen=True, eq=False)
class _Token:
    name: str


@dataclass(slots=True)
class _Mutable:
    n: int


def test_frozen_value_semantics_are_kept() -> None:
    a, b = _Point(1, 2), _Point(1, 2)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert repr(a) == "_Point(x=1, y=2)"
    assert dataclasses.replace(a, y=5) == _Point(1, 5)
    assert pickle.loads(pickle.dumps(a)) == a
    assert sorted([_Point(2), _Point(1, 3)]) == [_Point(1, 3), _Point(2)]
    assert not hasattr(a, "__dict__")  # still slotted
    assert dataclasses.fields(a)[1].default == 0


def test_eq_false_keeps_identity_hash() -> None:
    t1, t2 = _Token("a"), _Token("a")
    assert t1 != t2 and len({t1, t2}) == 2


def test_non_frozen_classes_are_left_alone() -> None:
    m = _Mutable(1)
    m.n = 2
    assert m.n == 2 and _Mutable.__hash__ is None  # eq without frozen: unhashable, as usual


def test_hot_types_use_it() -> None:
    fields = tuple(range(13))
    assert BatchHeader(*fields) == BatchHeader(*fields)
    assert hash(BatchHeader(*fields)) == hash(BatchHeader(*fields))
