"""Zigzag signed varints and varlongs: the integer encoding inside magic-2 records (KIP-98).

A record's length, deltas, key/value/header lengths and header count are protobuf-style base-128
varints of the zigzag-mapped value (0, -1, 1, -2 ... -> 0, 1, 2, 3 ...). A varint carries an int32
in at most 5 bytes, a varlong an int64 in at most 10; anything longer, truncated, or out of range
is a `DecodeError`, so a decoder never loops past those bounds.

Must not know: the Kafka protocol's *unsigned* varints (compact lengths, tagged fields), which
live with the message codec in `_wire.py`; records, batches, or I/O.
"""

from __future__ import annotations

from redshank.protocol.errors import DecodeError, EncodeError

__all__ = [
    "INT32_MAX",
    "INT32_MIN",
    "INT64_MAX",
    "INT64_MIN",
    "decode_varint",
    "decode_varlong",
    "encode_varint",
    "encode_varlong",
    "varint_size",
    "zigzag_decode",
    "zigzag_encode",
]

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
_VARINT_MAX_BYTES = 5
_VARLONG_MAX_BYTES = 10
_UINT32_MAX = (1 << 32) - 1
_UINT64_MAX = (1 << 64) - 1

# Values -64..63 encode to one byte; they are most lengths and deltas in a record, so cache them.
_ONE_BYTE: tuple[bytes, ...] = tuple(bytes((z,)) for z in range(0x80))

Buffer = bytes | bytearray | memoryview


def zigzag_encode(value: int) -> int:
    """Map a signed integer to an unsigned one: 0, -1, 1, -2 -> 0, 1, 2, 3."""
    return value << 1 if value >= 0 else ((-value) << 1) - 1


def zigzag_decode(raw: int) -> int:
    """Inverse of `zigzag_encode`."""
    return (raw >> 1) ^ -(raw & 1)


def _encode_unsigned(raw: int) -> bytes:
    if raw < 0x80:
        return _ONE_BYTE[raw]
    out = bytearray()
    while raw >= 0x80:
        out.append((raw & 0x7F) | 0x80)
        raw >>= 7
    out.append(raw)
    return bytes(out)


def encode_varint(value: int) -> bytes:
    """Zigzag varint of an int32; EncodeError outside the int32 range."""
    if not INT32_MIN <= value <= INT32_MAX:
        raise EncodeError(f"varint value {value} outside int32")
    return _encode_unsigned(zigzag_encode(value))


def encode_varlong(value: int) -> bytes:
    """Zigzag varlong of an int64; EncodeError outside the int64 range."""
    if not INT64_MIN <= value <= INT64_MAX:
        raise EncodeError(f"varlong value {value} outside int64")
    return _encode_unsigned(zigzag_encode(value))


def varint_size(value: int) -> int:
    """Bytes `encode_varlong(value)` takes (the same as `encode_varint` for int32 values)."""
    raw = zigzag_encode(value)
    size = 1
    while raw >= 0x80:
        raw >>= 7
        size += 1
    return size


def _decode_unsigned(buf: Buffer, pos: int, max_bytes: int, limit: int) -> tuple[int, int]:
    if pos < 0:
        raise DecodeError(f"varint position {pos} is negative")
    end = len(buf)
    result = 0
    shift = 0
    for _ in range(max_bytes):
        if pos >= end:
            raise DecodeError(f"varint truncated at {pos}")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            if result > limit:
                raise DecodeError(f"varint {result:#x} overflows {limit.bit_length()} bits")
            return result, pos
        shift += 7
    raise DecodeError(f"varint longer than {max_bytes} bytes at {pos - max_bytes}")


def decode_varint(buf: Buffer, pos: int = 0) -> tuple[int, int]:
    """Decode the zigzag varint (int32) at `pos`; return (value, position after it)."""
    # One- and two-byte forms (|value| < 8192: most lengths and deltas in a record) skip the loop.
    if pos >= 0:
        try:
            byte = buf[pos]
            if byte < 0x80:
                return (byte >> 1) ^ -(byte & 1), pos + 1
            second = buf[pos + 1]
            if second < 0x80:
                raw = (byte & 0x7F) | (second << 7)
                return (raw >> 1) ^ -(raw & 1), pos + 2
        except IndexError:
            pass  # the loop below reports the truncation
    raw, pos = _decode_unsigned(buf, pos, _VARINT_MAX_BYTES, _UINT32_MAX)
    return (raw >> 1) ^ -(raw & 1), pos


def decode_varlong(buf: Buffer, pos: int = 0) -> tuple[int, int]:
    """Decode the zigzag varlong (int64) at `pos`; return (value, position after it)."""
    if pos >= 0:
        try:
            byte = buf[pos]
            if byte < 0x80:
                return (byte >> 1) ^ -(byte & 1), pos + 1
        except IndexError:
            pass
    raw, pos = _decode_unsigned(buf, pos, _VARLONG_MAX_BYTES, _UINT64_MAX)
    return (raw >> 1) ^ -(raw & 1), pos
