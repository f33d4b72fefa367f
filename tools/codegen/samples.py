"""Build instances of the generated messages from the spec: every field present in a version
gets a value that differs from its default (or None where the version allows null).

Used by the round-trip and fuzz tests and by the codec benchmark; the spec drives it, so every
(API, version) is covered without hand-written fixtures.

Must not know: the broker; it reads specs and generated classes only.
"""

from __future__ import annotations

import dataclasses
import random
import types
import typing
import uuid
from typing import Any

from redshank.tools.codegen.spec import Field, Struct

__all__ = ["sample"]

_INT_RANGES = {
    "int8": (-(1 << 7), (1 << 7) - 1),
    "int16": (-(1 << 15), (1 << 15) - 1),
    "uint16": (0, (1 << 16) - 1),
    "int32": (-(1 << 31), (1 << 31) - 1),
    "uint32": (0, (1 << 32) - 1),
    "int64": (-(1 << 63), (1 << 63) - 1),
}
_TEXT = "abcxyz-_.09ÄéΩ漢"


def _nested_class(cls: type, attr: str) -> type:
    hint = typing.get_type_hints(cls)[attr]
    while True:
        args = [a for a in typing.get_args(hint) if a is not type(None) and a is not Ellipsis]
        origin = typing.get_origin(hint)
        if origin in (tuple, typing.Union, types.UnionType):
            hint = args[0]
            continue
        assert isinstance(hint, type)
        return hint


def _scalar(type_: str, rng: random.Random, default: Any) -> Any:
    for _ in range(100):
        value: Any
        if type_ in _INT_RANGES:
            lo, hi = _INT_RANGES[type_]
            value = rng.choice([lo, hi, rng.randint(lo, hi), rng.randint(-1, 1000) % (hi + 1)])
            value = min(max(value, lo), hi)
        elif type_ == "bool":
            value = not default
        elif type_ == "float64":
            value = rng.choice([0.5, -1.25e300, rng.uniform(-1e6, 1e6)])
        elif type_ == "string":
            value = "".join(rng.choice(_TEXT) for _ in range(rng.randint(1, 12)))
        elif type_ in ("bytes", "records"):
            value = rng.randbytes(rng.randint(1, 40))
        elif type_ == "uuid":
            value = uuid.UUID(int=rng.getrandbits(128) | 1)
        else:
            raise ValueError(type_)
        if value != default:
            return value
    raise AssertionError(f"no non-default {type_} found")


def _value(f: Field, cls: type, version: int, rng: random.Random, null_rate: float) -> Any:
    default = next(x.default for x in dataclasses.fields(cls) if x.name == f.attr)
    if version in f.nullable and default is not None and rng.random() < null_rate:
        return None
    if f.struct is not None:
        sub = _nested_class(cls, f.attr)
        if f.is_array:
            n = rng.randint(1, 3)
            return tuple(_struct(f.struct, sub, version, rng, null_rate) for _ in range(n))
        return _struct(f.struct, sub, version, rng, null_rate)
    if f.is_array:
        return tuple(_scalar(f.elem, rng, None) for _ in range(rng.randint(1, 4)))
    return _scalar(f.type, rng, default)


def _struct(struct: Struct, cls: type, version: int, rng: random.Random, null_rate: float) -> Any:
    values = {
        f.attr: _value(f, cls, version, rng, null_rate)
        for f in struct.fields
        if f.present(version)
    }
    return cls(**values)


def sample(body: Struct, cls: type, version: int, seed: int, null_rate: float = 0.0) -> Any:
    """An instance of `cls` (generated from `body`) with a non-default value in every field of
    `version`; with `null_rate` > 0 that share of nullable fields is None instead."""
    return _struct(body, cls, version, random.Random(seed), null_rate)
