"""Zigzag varints/varlongs: known encodings, round trips at the type bounds, bounded decoding."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from redshank.protocol.errors import DecodeError, EncodeError
from redshank.protocol.varint import (
    INT32_MAX,
    INT32_MIN,
    INT64_MAX,
    INT64_MIN,
    decode_varint,
    decode_varlong,
    encode_varint,
    encode_varlong,
    varint_size,
    zigzag_decode,
    zigzag_encode,
)

# (value, encoding) pairs from the protobuf/Kafka zigzag definition.
KNOWN = [
    (0, b"\x00"),
    (-1, b"\x01"),
    (1, b"\x02"),
    (-2, b"\x03"),
    (63, b"\x7e"),
    (-64, b"\x7f"),
    (64, b"\x80\x01"),
    (300, b"\xd8\x04"),
    (INT32_MAX, b"\xfe\xff\xff\xff\x0f"),
    (INT32_MIN, b"\xff\xff\xff\xff\x0f"),
]


@pytest.mark.parametrize(("value", "encoded"), KNOWN)
def test_known_encodings(value: int, encoded: bytes) -> None:
    assert encode_varint(value) == encoded
    assert encode_varlong(value) == encoded
    assert decode_varint(encoded) == (value, len(encoded))
    assert decode_varlong(encoded) == (value, len(encoded))
    assert varint_size(value) == len(encoded)


def test_zigzag_maps_small_magnitudes_to_small_numbers() -> None:
    assert [zigzag_encode(v) for v in (0, -1, 1, -2, 2)] == [0, 1, 2, 3, 4]
    assert [zigzag_decode(z) for z in (0, 1, 2, 3, 4)] == [0, -1, 1, -2, 2]
    assert zigzag_encode(INT64_MIN) == (1 << 64) - 1


def test_varlong_extremes_take_ten_bytes() -> None:
    for value in (INT64_MAX, INT64_MIN):
        encoded = encode_varlong(value)
        assert len(encoded) == 10 == varint_size(value)
        assert decode_varlong(encoded) == (value, 10)


def test_decoding_at_an_offset_returns_the_next_position() -> None:
    buf = b"junk" + encode_varint(-300) + encode_varlong(1 << 40)
    value, pos = decode_varint(buf, 4)
    assert value == -300
    assert decode_varlong(memoryview(buf), pos) == (1 << 40, len(buf))


def test_out_of_range_values_cannot_be_encoded() -> None:
    for bad in (INT32_MAX + 1, INT32_MIN - 1):
        with pytest.raises(EncodeError):
            encode_varint(bad)
    for bad in (INT64_MAX + 1, INT64_MIN - 1):
        with pytest.raises(EncodeError):
            encode_varlong(bad)


def test_truncated_varints_are_decode_errors() -> None:
    for buf in (b"", b"\x80", b"\xff\xff\xff\xff"):
        with pytest.raises(DecodeError, match="truncated"):
            decode_varint(buf)
    with pytest.raises(DecodeError, match="truncated"):
        decode_varlong(b"\xff" * 9)
    with pytest.raises(DecodeError, match="truncated"):
        decode_varint(b"\x00", 1)


def test_overlong_varints_are_bounded_decode_errors() -> None:
    # A continuation bit on the 5th (varint) or 10th (varlong) byte is rejected without reading
    # further, however long the run of continuation bytes.
    with pytest.raises(DecodeError, match="longer than 5"):
        decode_varint(b"\x80" * 5 + b"\x00")
    with pytest.raises(DecodeError, match="longer than 10"):
        decode_varlong(b"\x80" * 1000)


def test_values_overflowing_the_type_are_decode_errors() -> None:
    # 5 bytes hold 35 bits; an int32 varint may use only 32 of them.
    with pytest.raises(DecodeError, match="overflows 32"):
        decode_varint(b"\xff\xff\xff\xff\x1f")
    with pytest.raises(DecodeError, match="overflows 64"):
        decode_varlong(b"\xff" * 9 + b"\x7f")


def test_negative_position_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="negative"):
        decode_varint(b"\x00\x00", -1)


@given(st.integers(INT32_MIN, INT32_MAX))
def test_varint_round_trip(value: int) -> None:
    encoded = encode_varint(value)
    assert len(encoded) <= 5
    assert decode_varint(encoded) == (value, len(encoded))


@given(st.integers(INT64_MIN, INT64_MAX))
def test_varlong_round_trip(value: int) -> None:
    encoded = encode_varlong(value)
    assert len(encoded) == varint_size(value) <= 10
    assert decode_varlong(encoded) == (value, len(encoded))


@given(st.binary(max_size=24), st.integers(-2, 26))
def test_fuzz_decoders_raise_only_decode_errors(buf: bytes, pos: int) -> None:
    for decode, max_len in ((decode_varint, 5), (decode_varlong, 10)):
        try:
            value, end = decode(buf, pos)
        except DecodeError:
            continue
        assert 0 < end - pos <= max_len
        assert decode(encode_varlong(value)) == (value, varint_size(value))
