"""The cross-core envelope codec: round trips, in-place raw bodies, typed errors on bad frames."""

from __future__ import annotations

import pickle
import struct
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from redshank.actors.runtime.envelope import (
    HEADER,
    Encoding,
    EnvelopeError,
    Kind,
    UndecodableMessageError,
    UnpicklableMessageError,
    decode,
    decode_fields,
    detach,
    encode,
    register_codec,
)


@dataclass(frozen=True, slots=True)
class Offsets:
    base: int
    last: int


_OFFSETS = struct.Struct("<qq")
register_codec(
    7, Offsets, lambda o: _OFFSETS.pack(o.base, o.last), lambda b: Offsets(*_OFFSETS.unpack(b))
)


def roundtrip(kind: Kind, corr: int, name: str, message: Any) -> Any:
    first, second = encode(kind, corr, name, message)
    env = decode(memoryview(first + bytes(second)))
    assert (env.kind, env.corr, env.name) == (kind, corr, name)
    return env.message


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"batch" * 100,
        None,
        0,
        -(1 << 63),
        (1 << 63) - 1,
        1 << 70,
        "text",
        {"a": [1, 2]},
        Offsets(5, 9),
        ValueError("x"),
    ],
)
def test_round_trip(message: Any) -> None:
    out = roundtrip(Kind.ASK, 42, "partition-3", message)
    if isinstance(message, Exception):
        assert repr(out) == repr(message)
    else:
        assert out == message


def test_hot_types_do_not_pickle() -> None:
    for message, enc in [
        (b"x", Encoding.RAW),
        (None, Encoding.NONE),
        (5, Encoding.INT),
        (Offsets(1, 2), Encoding.CODEC),
    ]:
        first, _ = encode(Kind.TELL, 0, "n", message)
        assert first[1] == enc


def test_raw_body_can_be_read_in_place() -> None:
    frame = bytearray(b"".join(bytes(p) for p in encode(Kind.TELL, 0, "n", b"payload")))
    env = decode(memoryview(frame), copy=False)
    assert isinstance(env.message, memoryview) and env.message.obj is frame


def test_codec_ids_cannot_be_reused_for_another_type() -> None:
    with pytest.raises(ValueError):
        register_codec(7, dict, lambda o: b"", lambda b: {})


@given(st.binary(max_size=64))
def test_garbage_gets_a_typed_error(data: bytes) -> None:
    try:
        decode(memoryview(data))
    except EnvelopeError:
        pass


def test_truncated_and_unknown_frames() -> None:
    with pytest.raises(EnvelopeError):
        decode(memoryview(b"\x01\x00"))
    with pytest.raises(EnvelopeError):
        decode(memoryview(HEADER.pack(1, 0, 50, 0)))  # name longer than the frame
    with pytest.raises(EnvelopeError):
        decode(memoryview(HEADER.pack(99, 0, 0, 0)))  # unknown kind
    with pytest.raises(EnvelopeError):
        decode(memoryview(HEADER.pack(1, 9, 0, 0)))  # unknown encoding
    with pytest.raises(EnvelopeError):
        decode(memoryview(HEADER.pack(1, 3, 0, 0) + b"not a pickle"))


@given(
    st.sampled_from(list(Kind)),
    st.integers(min_value=0, max_value=(1 << 64) - 1),
    st.sampled_from(["", "echo", "partition-7"]),
    st.one_of(st.none(), st.integers(), st.binary(max_size=40), st.text(max_size=10)),
)
def test_decode_fields_matches_decode_for_every_kind_and_body(
    kind: Kind, corr: int, name: str, message: Any
) -> None:
    # Nameless int/None frames (replies) take a one-struct fast path in encode; big ints pickle.
    first, second = encode(kind, corr, name, message)
    frame = memoryview(first + bytes(second))
    env = decode(frame)
    assert tuple(env) == decode_fields(frame)
    assert (env.kind, env.corr, env.name, env.message) == (kind, corr, name, message)
    assert type(decode_fields(frame)[0]) is int


@dataclass(frozen=True, slots=True)
class Chunk:
    seq: int
    data: bytes | memoryview


_SEQ = struct.Struct("<q")
register_codec(
    8,
    Chunk,
    lambda c: (_SEQ.pack(c.seq), c.data),
    lambda b: Chunk(_SEQ.unpack_from(b)[0], b[_SEQ.size :]),
    detach=lambda c: Chunk(c.seq, bytes(c.data)),
)


def test_a_codec_tail_is_written_as_is_and_read_in_place() -> None:
    data = memoryview(b"x" * 1000)
    first, second = encode(Kind.TELL, 3, "n", Chunk(5, data))
    assert second is data and first[1] == Encoding.CODEC
    frame = bytearray(first) + second
    in_place = decode(memoryview(frame), copy=False).message
    assert isinstance(in_place.data, memoryview) and in_place.data.obj is frame
    copied = decode(memoryview(frame)).message  # copy=True: detached
    assert type(copied.data) is bytes and copied == Chunk(5, b"x" * 1000)
    assert type(detach(in_place).data) is bytes
    assert detach(in_place) == copied


def test_detach_copies_raw_views_and_leaves_the_rest() -> None:
    frame = bytearray(b"".join(bytes(p) for p in encode(Kind.TELL, 0, "n", b"payload")))
    view = decode(memoryview(frame), copy=False).message
    assert detach(view) == b"payload" and type(detach(view)) is bytes
    offsets = Offsets(1, 2)
    assert detach(offsets) is offsets and detach(None) is None


def test_a_value_the_codec_cannot_pack_goes_by_pickle() -> None:
    for message in (Offsets(1 << 64, 0), Chunk(-(1 << 80), b"abc")):
        first, _ = encode(Kind.TELL, 0, "n", message)
        assert first[1] == Encoding.PICKLE
        assert roundtrip(Kind.TELL, 0, "n", message) == message


def test_a_message_pickle_cannot_encode_raises_unpicklable_message_error() -> None:
    with pytest.raises(UnpicklableMessageError, match="another core") as info:
        encode(Kind.TELL, 0, "actor", lambda: None)
    assert isinstance(info.value, TypeError)


def test_a_body_that_does_not_unpickle_here_says_which_request_it_was() -> None:
    first, second = encode(Kind.ASK, 7, "actor", {"x": 1})
    frame = bytearray(first + bytes(second))
    frame[-2:] = b"\x00."  # the pickle's tail: still a sound frame, no longer a valid pickle
    with pytest.raises(UndecodableMessageError) as info:
        decode_fields(memoryview(frame))
    err = info.value
    assert (err.kind, err.corr, err.name) == (int(Kind.ASK), 7, "actor")
    assert isinstance(err, EnvelopeError)
    copy = pickle.loads(pickle.dumps(err))  # it travels back to the asker
    assert (copy.kind, copy.corr, copy.name, str(copy)) == (err.kind, err.corr, err.name, str(err))
