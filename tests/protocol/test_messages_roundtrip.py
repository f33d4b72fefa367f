"""Every generated message at every valid version: decode(encode(x)) == x, and re-encoding the
decoded value gives the same bytes, for the default instance and for schema-driven instances with
a non-default value in every field present in that version (plus a variant with nulls)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from redshank.protocol.errors import DecodeError, EncodeError
from redshank.protocol.messages import REQUESTS, RESPONSES, request_header, response_header
from redshank.tools.codegen.generate import default_spec_dir
from redshank.tools.codegen.samples import sample
from redshank.tools.codegen.spec import Message, load_api_specs

_PAIRS, _HEADERS = load_api_specs(default_spec_dir())
_HEADER_CLASSES = {
    "RequestHeader": request_header.RequestHeader,
    "ResponseHeader": response_header.ResponseHeader,
}


def _cases() -> list[Any]:
    cases = []
    for request, response in _PAIRS:
        assert request.api_key is not None
        key = request.api_key
        for msg, cls in ((request, REQUESTS[key]), (response, RESPONSES[key])):
            for v in range(msg.valid.lo, msg.valid.hi + 1):
                cases.append(pytest.param(msg, cls, v, id=f"{msg.name}-v{v}"))
    for h in _HEADERS:
        for v in range(h.valid.lo, h.valid.hi + 1):
            cases.append(pytest.param(h, _HEADER_CLASSES[h.name], v, id=f"{h.name}-v{v}"))
    return cases


CASES = _cases()


def _round_trip(cls: Any, obj: Any, version: int) -> None:
    data = obj.encode(version)
    back = cls.decode(data, version)
    assert back == obj
    assert back.encode(version) == data


def _assert_every_present_field_set(msg: Message, obj: Any, version: int) -> None:
    """The sample really exercises every field of this version (else the round trip is weak)."""
    defaults = {f.name: f.default for f in dataclasses.fields(obj)}
    for f in msg.body.fields:
        if f.present(version):
            assert getattr(obj, f.attr) != defaults[f.attr], f.name


@pytest.mark.parametrize(("msg", "cls", "version"), CASES)
def test_round_trip(msg: Message, cls: Any, version: int) -> None:
    assert (msg.valid.lo, msg.valid.hi) == cls.VALID_VERSIONS
    _round_trip(cls, cls(), version)
    for seed in range(3):
        obj = sample(msg.body, cls, version, seed)
        _assert_every_present_field_set(msg, obj, version)
        _round_trip(cls, obj, version)
    _round_trip(cls, sample(msg.body, cls, version, 99, null_rate=0.7), version)


@given(st.sampled_from([c.values for c in CASES]), st.integers(0, 2**31),
       st.floats(0.0, 1.0))
def test_round_trip_random_instances(case: Any, seed: int, null_rate: float) -> None:
    msg, cls, version = case
    _round_trip(cls, sample(msg.body, cls, version, seed, null_rate=null_rate), version)


def test_every_broker_api_is_registered() -> None:
    keys = {req.api_key for req, _ in _PAIRS}
    assert set(REQUESTS) == keys == set(RESPONSES)
    assert len(keys) >= 60
    assert len(CASES) > 500


def test_field_absent_in_version_is_an_error_unless_ignorable() -> None:
    from redshank.protocol.messages import produce

    # TransactionalId exists from v3 and is not ignorable: dropping it silently would be a bug.
    with pytest.raises(EncodeError):
        produce.ProduceRequest(transactional_id="tx").encode(2)
    # ProduceResponse.LogStartOffset (v5+) is ignorable: it is dropped without complaint.
    produce.ProduceResponse(
        responses=(
            produce.TopicProduceResponse(
                "t", (produce.PartitionProduceResponse(index=0, log_start_offset=7),)
            ),
        )
    ).encode(4)


def test_null_in_a_non_nullable_version_is_an_encode_error() -> None:
    from redshank.protocol.messages import metadata

    # Metadata topics is nullable from v1 only.
    with pytest.raises(EncodeError):
        metadata.MetadataRequest(topics=None).encode(0)
    assert metadata.MetadataRequest(topics=None).encode(1) == b"\xff\xff\xff\xff"


@pytest.mark.parametrize("version", [-1, 12, 1000])
def test_versions_outside_the_spec_are_typed_errors(version: int) -> None:
    from redshank.protocol.messages import produce

    with pytest.raises(EncodeError):
        produce.ProduceRequest().encode(version)
    with pytest.raises(DecodeError):
        produce.ProduceRequest.decode(b"", version)
