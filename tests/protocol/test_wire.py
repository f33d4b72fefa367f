"""Wire primitives: unsigned varints, (compact) strings/bytes/arrays, uuid, tagged sections; every
bad input is a DecodeError and no declared length is trusted before it is checked."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from redshank.protocol import _wire as w
from redshank.protocol.errors import DecodeError, EncodeError


@given(st.integers(0, 2**32 - 1))
def test_uvarint_round_trip(value: int) -> None:
    data = w.uvarint(value)
    assert len(data) <= 5
    assert w.read_uvarint(memoryview(data + b"\xaa"), 0) == (value, len(data))


@pytest.mark.parametrize(
    "data",
    [b"", b"\x80", b"\xff\xff", b"\x80\x80\x80\x80\x80\x01", b"\xff\xff\xff\xff\x1f"],
    ids=["empty", "cut", "cut2", "six-bytes", "over-32-bits"],
)
def test_bad_uvarints(data: bytes) -> None:
    with pytest.raises(DecodeError):
        w.read_uvarint(memoryview(data), 0)


def test_uvarint_encode_range() -> None:
    assert w.uvarint(0) == b"\x00" and w.uvarint(300) == b"\xac\x02"
    with pytest.raises(ValueError):
        w.uvarint(-1)


@given(st.text(max_size=40))
def test_strings_round_trip_all_forms(text: str) -> None:
    for enc, dec in ((w.string, w.read_string), (w.compact_string, w.read_compact_string),
                     (w.nullable_string, w.read_nullable_string),
                     (w.compact_nullable_string, w.read_compact_nullable_string)):
        data = enc(text)
        assert dec(memoryview(data), 0) == (text, len(data))


def test_null_forms() -> None:
    assert w.nullable_string(None) == b"\xff\xff"
    assert w.compact_nullable_string(None) == b"\x00"
    assert w.read_nullable_string(memoryview(b"\xff\xff"), 0) == (None, 2)
    assert w.read_compact_nullable_bytes(memoryview(b"\x00"), 0) == (None, 1)
    assert w.read_records(memoryview(b"\xff\xff\xff\xff"), 0) == (None, 4)
    with pytest.raises(EncodeError):
        w.string(None)
    with pytest.raises(EncodeError):
        w.compact_bytes(None)


@pytest.mark.parametrize(
    ("reader", "data"),
    [
        (w.read_string, b"\xff\xff"),  # null where not nullable
        (w.read_string, b"\xff\xfe"),  # negative length
        (w.read_string, b"\x00\x05abc"),  # runs past the end
        (w.read_string, b"\x00\x02\xc3\x28"),  # invalid UTF-8
        (w.read_nullable_string, b"\xff\xfe"),
        (w.read_compact_string, b"\x00"),  # compact null where not nullable
        (w.read_compact_string, b"\x05ab"),
        (w.read_bytes, b"\xff\xff\xff\xff"),
        (w.read_bytes, b"\x7f\xff\xff\xffab"),  # 2 GiB declared, 2 bytes present
        (w.read_nullable_bytes, b"\x80\x00\x00\x00"),
        (w.read_compact_bytes, b"\xff\xff\xff\xff\x0f"),
        (w.read_records, b"\x7f\xff\xff\xff"),
        (w.read_compact_records, b"\x03a"),
        (w.read_uuid, b"\x00" * 15),
    ],
)
def test_bad_lengths_and_contents(reader: object, data: bytes) -> None:
    with pytest.raises(DecodeError):
        reader(memoryview(data), 0)  # type: ignore[operator]


def test_records_are_zero_copy() -> None:
    buf = b"\x00\x00\x00\x03abcX"
    view, end = w.read_records(memoryview(buf), 0)
    assert view is not None and bytes(view) == b"abc" and end == 7 and view.obj is buf


def test_array_lengths_checked_against_remaining_bytes() -> None:
    assert w.read_array_len(memoryview(b"\x00\x00\x00\x02" + b"\x00" * 8), 0, 4, False) == (2, 4)
    with pytest.raises(DecodeError):  # 2 x 4 bytes cannot fit in 7
        w.read_array_len(memoryview(b"\x00\x00\x00\x02" + b"\x00" * 7), 0, 4, False)
    assert w.read_array_len(memoryview(b"\xff\xff\xff\xff"), 0, 4, True) == (-1, 4)
    with pytest.raises(DecodeError):
        w.read_array_len(memoryview(b"\xff\xff\xff\xff"), 0, 4, False)
    with pytest.raises(DecodeError):
        w.read_array_len(memoryview(b"\xff\xff\xff\xfe"), 0, 4, True)
    assert w.read_compact_array_len(memoryview(b"\x00"), 0, 1, True) == (-1, 1)
    with pytest.raises(DecodeError):
        w.read_compact_array_len(memoryview(b"\x00"), 0, 1, False)
    with pytest.raises(DecodeError):
        w.read_compact_array_len(memoryview(b"\xff\xff\xff\xff\x0f"), 0, 1, False)


def test_uuid_and_tagged_section() -> None:
    u = uuid.uuid4()
    assert w.read_uuid(memoryview(u.bytes), 0) == (u, 16)
    assert w.to_uuid(bytes(16)) == uuid.UUID(int=0)
    parts: w.Parts = []
    w.tagged_section(parts, [(0, b"ab"), (300, b"")])
    data = b"".join(parts)
    assert data == b"\x02\x00\x02ab\xac\x02\x00"
    assert w.skip_tagged(memoryview(data), 0) == len(data)
    with pytest.raises(DecodeError):
        w.skip_tagged(memoryview(b"\x01\x00\x05ab"), 0)  # field runs past the end
