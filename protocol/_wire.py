"""Kafka wire primitives used by the generated codec in `messages/`.

Readers take `(buf: memoryview, pos)` and return `(value, new_pos)`; they raise only
`DecodeError` and check every declared length against the bytes actually present before
allocating anything, so a huge length in a short buffer costs nothing. Writers return `bytes`
(or append to a list of parts that the caller joins once). Fixed-width runs are packed inline by
the generated code with precompiled `struct.Struct` objects; this module holds the
variable-width forms: (compact) strings, bytes, records, arrays, unsigned varints, tagged
sections.

Must not know: any message, sockets, files, clocks.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from redshank.protocol.errors import DecodeError, EncodeError

__all__ = [
    "F64",
    "I8",
    "I16",
    "I32",
    "I64",
    "U16",
    "U32",
    "Parts",
    "array_len",
    "bytes_",
    "compact_array_len",
    "compact_bytes",
    "compact_nullable_bytes",
    "compact_nullable_string",
    "compact_records",
    "compact_string",
    "fixed_array",
    "nullable_bytes",
    "nullable_string",
    "pack_array",
    "read_array_len",
    "read_bytes",
    "read_compact_array_len",
    "read_compact_bytes",
    "read_compact_nullable_bytes",
    "read_compact_nullable_string",
    "read_compact_records",
    "read_compact_string",
    "read_nullable_bytes",
    "read_nullable_string",
    "read_records",
    "read_string",
    "read_tag_header",
    "read_uuid",
    "read_uvarint",
    "records",
    "run_decode",
    "run_decode_from",
    "run_encode",
    "run_encode_parts",
    "skip_tagged",
    "string",
    "tagged_section",
    "to_uuid",
    "uvarint",
]

Parts = list[bytes | bytearray | memoryview]

I8 = struct.Struct(">b")
I16 = struct.Struct(">h")
I32 = struct.Struct(">i")
I64 = struct.Struct(">q")
U16 = struct.Struct(">H")
U32 = struct.Struct(">I")
F64 = struct.Struct(">d")

_I16_NULL = I16.pack(-1)
_I32_NULL = I32.pack(-1)
# An unsigned varint of up to 35 bits covers every int32 length plus one (Kafka caps at 5 bytes).
_MAX_VARINT_BYTES = 5
_UUID_ZERO = uuid.UUID(int=0)


# --- unsigned varints -------------------------------------------------------------------------


def read_uvarint(buf: memoryview, pos: int) -> tuple[int, int]:
    """An unsigned LEB128 varint of at most 5 bytes (the widths Kafka's protocol uses)."""
    end = len(buf)
    if pos >= end:
        raise DecodeError(f"varint truncated at {pos}")
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    value = b & 0x7F
    shift = 7
    i = pos + 1
    while True:
        if i >= end:
            raise DecodeError(f"varint truncated at {i}")
        if i - pos >= _MAX_VARINT_BYTES:
            raise DecodeError(f"varint longer than {_MAX_VARINT_BYTES} bytes at {pos}")
        b = buf[i]
        value |= (b & 0x7F) << shift
        i += 1
        if b < 0x80:
            if value > 0xFFFFFFFF:
                raise DecodeError(f"varint at {pos} exceeds 32 bits")
            return value, i
        shift += 7


_SMALL_UVARINTS = tuple(bytes((i,)) for i in range(128))


def uvarint(value: int) -> bytes:
    if 0 <= value < 128:
        return _SMALL_UVARINTS[value]
    if value < 0 or value > 0xFFFFFFFF:
        raise ValueError(f"unsigned varint out of range: {value}")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# --- strings ----------------------------------------------------------------------------------


def _text(buf: memoryview, pos: int, n: int) -> tuple[str, int]:
    end = pos + n
    if end > len(buf):
        raise DecodeError(f"string of {n} bytes at {pos} runs past the end ({len(buf)})")
    try:
        return str(buf[pos:end], "utf-8"), end
    except UnicodeDecodeError as exc:
        raise DecodeError(f"string at {pos} is not UTF-8") from exc


def read_string(buf: memoryview, pos: int) -> tuple[str, int]:
    (n,) = I16.unpack_from(buf, pos)
    if n < 0:
        raise DecodeError(f"null or negative length {n} for a non-nullable string at {pos}")
    return _text(buf, pos + 2, n)


def read_nullable_string(buf: memoryview, pos: int) -> tuple[str | None, int]:
    (n,) = I16.unpack_from(buf, pos)
    if n == -1:
        return None, pos + 2
    if n < 0:
        raise DecodeError(f"negative string length {n} at {pos}")
    return _text(buf, pos + 2, n)


def read_compact_string(buf: memoryview, pos: int) -> tuple[str, int]:
    if pos < len(buf) and buf[pos] < 0x80:  # one-byte length: the common case, no call
        n = buf[pos]
        pos += 1
    else:
        n, pos = read_uvarint(buf, pos)
    if n == 0:
        raise DecodeError(f"null for a non-nullable compact string at {pos}")
    return _text(buf, pos, n - 1)


def read_compact_nullable_string(buf: memoryview, pos: int) -> tuple[str | None, int]:
    if pos < len(buf) and buf[pos] < 0x80:
        n = buf[pos]
        pos += 1
    else:
        n, pos = read_uvarint(buf, pos)
    if n == 0:
        return None, pos
    return _text(buf, pos, n - 1)


def _null(kind: str) -> EncodeError:
    return EncodeError(f"None given for a non-nullable {kind} in this version")


def string(value: str | None) -> bytes:
    if value is None:
        raise _null("string")
    raw = value.encode("utf-8")
    return I16.pack(len(raw)) + raw


def nullable_string(value: str | None) -> bytes:
    return _I16_NULL if value is None else string(value)


def compact_string(value: str | None) -> bytes:
    if value is None:
        raise _null("string")
    raw = value.encode("utf-8")
    return uvarint(len(raw) + 1) + raw


def compact_nullable_string(value: str | None) -> bytes:
    return b"\x00" if value is None else compact_string(value)


# --- bytes and records ------------------------------------------------------------------------


def _slice(buf: memoryview, pos: int, n: int) -> tuple[memoryview, int]:
    end = pos + n
    if end > len(buf):
        raise DecodeError(f"{n} bytes at {pos} run past the end ({len(buf)})")
    return buf[pos:end], end


def read_bytes(buf: memoryview, pos: int) -> tuple[bytes, int]:
    (n,) = I32.unpack_from(buf, pos)
    if n < 0:
        raise DecodeError(f"null or negative length {n} for non-nullable bytes at {pos}")
    view, end = _slice(buf, pos + 4, n)
    return bytes(view), end


def read_nullable_bytes(buf: memoryview, pos: int) -> tuple[bytes | None, int]:
    (n,) = I32.unpack_from(buf, pos)
    if n == -1:
        return None, pos + 4
    if n < 0:
        raise DecodeError(f"negative bytes length {n} at {pos}")
    view, end = _slice(buf, pos + 4, n)
    return bytes(view), end


def read_compact_bytes(buf: memoryview, pos: int) -> tuple[bytes, int]:
    n, pos = read_uvarint(buf, pos)
    if n == 0:
        raise DecodeError(f"null for non-nullable compact bytes at {pos}")
    view, end = _slice(buf, pos, n - 1)
    return bytes(view), end


def read_compact_nullable_bytes(buf: memoryview, pos: int) -> tuple[bytes | None, int]:
    n, pos = read_uvarint(buf, pos)
    if n == 0:
        return None, pos
    view, end = _slice(buf, pos, n - 1)
    return bytes(view), end


def read_records(buf: memoryview, pos: int) -> tuple[memoryview | None, int]:
    """Records are a zero-copy slice of the input: batches stay opaque (ARCHITECTURE.md 3)."""
    (n,) = I32.unpack_from(buf, pos)
    if n == -1:
        return None, pos + 4
    if n < 0:
        raise DecodeError(f"negative records length {n} at {pos}")
    return _slice(buf, pos + 4, n)


def read_compact_records(buf: memoryview, pos: int) -> tuple[memoryview | None, int]:
    n, pos = read_uvarint(buf, pos)
    if n == 0:
        return None, pos
    return _slice(buf, pos, n - 1)


def bytes_(value: bytes | bytearray | memoryview | None) -> bytes:
    if value is None:
        raise _null("bytes")
    return I32.pack(len(value)) + value


def nullable_bytes(value: bytes | bytearray | memoryview | None) -> bytes:
    return _I32_NULL if value is None else bytes_(value)


def compact_bytes(value: bytes | bytearray | memoryview | None) -> bytes:
    if value is None:
        raise _null("bytes")
    return uvarint(len(value) + 1) + value


def compact_nullable_bytes(value: bytes | bytearray | memoryview | None) -> bytes:
    return b"\x00" if value is None else compact_bytes(value)


# --- uuid ---------------------------------------------------------------------------------------


def read_uuid(buf: memoryview, pos: int) -> tuple[uuid.UUID, int]:
    end = pos + 16
    if end > len(buf):
        raise DecodeError(f"uuid truncated at {pos}")
    raw = bytes(buf[pos:end])
    return (_UUID_ZERO if raw == bytes(16) else uuid.UUID(bytes=raw)), end


# --- arrays -------------------------------------------------------------------------------------


def read_array_len(buf: memoryview, pos: int, min_size: int, nullable: bool) -> tuple[int, int]:
    """An int32 element count (-1 = null), checked against the bytes left before any loop runs.

    `min_size` is the fewest bytes one element can occupy; a count that cannot fit is an error.
    """
    (n,) = I32.unpack_from(buf, pos)
    pos += 4
    if n < 0:
        if n == -1 and nullable:
            return -1, pos
        raise DecodeError(f"bad array length {n} at {pos - 4}")
    if n * min_size > len(buf) - pos:
        left = len(buf) - pos
        raise DecodeError(f"array of {n} elements at {pos - 4} cannot fit in {left} bytes")
    return n, pos


def read_compact_array_len(
    buf: memoryview, pos: int, min_size: int, nullable: bool
) -> tuple[int, int]:
    start = pos
    if pos < len(buf) and buf[pos] < 0x80:
        n = buf[pos]
        pos += 1
    else:
        n, pos = read_uvarint(buf, pos)
    if n == 0:
        if nullable:
            return -1, pos
        raise DecodeError(f"null for a non-nullable compact array at {start}")
    n -= 1
    if n * min_size > len(buf) - pos:
        raise DecodeError(f"array of {n} elements at {start} cannot fit in {len(buf) - pos} bytes")
    return n, pos


def fixed_array(buf: memoryview, pos: int, code: str, n: int) -> tuple[Any, ...]:
    """`n` big-endian fixed-width values (struct code `code`) at `pos`; bounds already checked."""
    return struct.unpack_from(f">{n}{code}", buf, pos)


def array_len(n: int) -> bytes:
    return I32.pack(n)


def compact_array_len(n: int) -> bytes:
    return uvarint(n + 1)


def pack_array(code: str, values: tuple[Any, ...]) -> bytes:
    return struct.pack(f">{len(values)}{code}", *values)


# --- tagged fields ------------------------------------------------------------------------------


def read_tag_header(buf: memoryview, pos: int) -> tuple[int, int, int]:
    """One tagged-field header: returns (tag, start of its data, end of its data)."""
    tag, pos = read_uvarint(buf, pos)
    size, pos = read_uvarint(buf, pos)
    end = pos + size
    if end > len(buf):
        raise DecodeError(f"tagged field {tag} of {size} bytes at {pos} runs past the end")
    return tag, pos, end


def tagged_section(parts: Parts, fields: list[tuple[int, bytes]]) -> None:
    """Append a tagged-field section: count, then (tag, size, data) in ascending tag order."""
    parts.append(uvarint(len(fields)))
    for tag, data in fields:
        parts.append(uvarint(tag))
        parts.append(uvarint(len(data)))
        parts.append(data)


def skip_tagged(buf: memoryview, pos: int) -> int:
    """Skip a whole tagged-field section of unknown tags; returns the position after it."""
    count, pos = read_uvarint(buf, pos)
    for _ in range(count):
        _tag, _start, pos = read_tag_header(buf, pos)
    return pos


def to_uuid(raw: bytes) -> uuid.UUID:
    return _UUID_ZERO if raw == _ZERO16 else uuid.UUID(bytes=raw)


_ZERO16 = bytes(16)


def records(parts: Parts, value: bytes | bytearray | memoryview | None) -> None:
    """int32 length then the batches themselves, appended without a copy (joined once)."""
    if value is None:
        parts.append(_I32_NULL)
    else:
        parts.append(I32.pack(len(value)))
        parts.append(value)


def compact_records(parts: Parts, value: bytes | bytearray | memoryview | None) -> None:
    if value is None:
        parts.append(b"\x00")
    else:
        parts.append(uvarint(len(value) + 1))
        parts.append(value)


# --- entry points of the generated classes ------------------------------------------------------

_T = TypeVar("_T")

# What a generated encoder raises when handed a value that does not fit its field (wrong type,
# out of range, None where the version is not nullable): all become EncodeError.
_ENCODE_FAILURES = (struct.error, TypeError, AttributeError, ValueError, OverflowError)
# What slicing and unpacking raise on bad input that the readers above do not check themselves.
_DECODE_FAILURES = (struct.error, IndexError, ValueError, TypeError, OverflowError)


def run_encode(
    obj: _T, version: int, table: tuple[Callable[[_T, Parts], None], ...], lo: int
) -> bytes:
    return b"".join(run_encode_parts(obj, version, table, lo))


def run_encode_parts(
    obj: _T, version: int, table: tuple[Callable[[_T, Parts], None], ...], lo: int
) -> Parts:
    """The encoding as a list of buffers (records stay the caller's objects, uncopied)."""
    i = version - lo
    if i < 0 or i >= len(table):
        raise EncodeError(f"{type(obj).__name__} has no version {version}")
    parts: Parts = []
    try:
        table[i](obj, parts)
    except EncodeError:
        raise
    except _ENCODE_FAILURES as exc:
        raise EncodeError(f"{type(obj).__name__} v{version}: {exc}") from exc
    return parts


def run_decode_from(
    buf: bytes | bytearray | memoryview,
    pos: int,
    version: int,
    table: tuple[Callable[[memoryview, int], tuple[_T, int]], ...],
    lo: int,
    name: str,
) -> tuple[_T, int]:
    i = version - lo
    if i < 0 or i >= len(table):
        raise DecodeError(f"{name} has no version {version}")
    try:
        view = memoryview(buf)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        if pos < 0 or pos > len(view):
            raise DecodeError(f"{name}: start position {pos} outside the buffer")
        return table[i](view, pos)
    except DecodeError:
        raise
    except _DECODE_FAILURES as exc:
        raise DecodeError(f"{name} v{version}: {exc}") from exc


def run_decode(
    buf: bytes | bytearray | memoryview,
    version: int,
    table: tuple[Callable[[memoryview, int], tuple[_T, int]], ...],
    lo: int,
    name: str,
) -> _T:
    """Decode a whole buffer: bytes left over after the message are an error."""
    i = version - lo
    if i < 0 or i >= len(table):
        raise DecodeError(f"{name} has no version {version}")
    try:
        view = memoryview(buf)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        obj, end = table[i](view, 0)
    except DecodeError:
        raise
    except _DECODE_FAILURES as exc:
        raise DecodeError(f"{name} v{version}: {exc}") from exc
    if end != len(view):
        raise DecodeError(f"{name} v{version}: {len(view) - end} trailing bytes")
    return obj
