"""Big-endian primitives shared by the command and snapshot encodings, and their one error type.

Concern: writing and reading int8/16/32/64, UUIDs, strings and counted arrays, so that every
failure on input is a `ControllerDecodeError` (a damaged log or snapshot must not crash the core
with a `struct.error` or `UnicodeDecodeError`). Must not know: what the fields mean.
"""

from __future__ import annotations

import struct
import uuid

from redshank.protocol.errors import DecodeError, EncodeError

__all__ = ["ControllerDecodeError", "Reader", "Writer"]

_I8 = struct.Struct(">b")
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")


class ControllerDecodeError(DecodeError):
    """Controller command or snapshot bytes are malformed: a bad batch, an unknown command type
    or version, a truncated or over-long payload, a value out of range."""


class Writer:
    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def _pack(self, fmt: struct.Struct, v: int) -> None:
        try:
            self._parts.append(fmt.pack(v))
        except struct.error:
            raise EncodeError(f"{v} does not fit {fmt.format!r}") from None

    def i8(self, v: int) -> None:
        self._pack(_I8, v)

    def i16(self, v: int) -> None:
        self._pack(_I16, v)

    def i32(self, v: int) -> None:
        self._pack(_I32, v)

    def i64(self, v: int) -> None:
        self._pack(_I64, v)

    def uuid(self, v: uuid.UUID) -> None:
        self._parts.append(v.bytes)

    def string(self, v: str | None) -> None:
        """int16 length (-1: null) then UTF-8."""
        if v is None:
            self.i16(-1)
            return
        raw = v.encode()
        if len(raw) > 0x7FFF:
            raise EncodeError(f"string of {len(raw)} bytes does not fit an int16 length")
        self.i16(len(raw))
        self._parts.append(raw)

    def done(self) -> bytes:
        return b"".join(self._parts)


class Reader:
    __slots__ = ("_buf", "_pos")

    def __init__(self, buf: bytes) -> None:
        self._buf = buf
        self._pos = 0

    def _take(self, n: int) -> bytes:
        if n < 0 or self._pos + n > len(self._buf):
            raise ControllerDecodeError(f"truncated at byte {self._pos} (wanted {n})")
        out = self._buf[self._pos : self._pos + n]
        self._pos += n
        return out

    def i8(self) -> int:
        return int(_I8.unpack(self._take(1))[0])

    def i16(self) -> int:
        return int(_I16.unpack(self._take(2))[0])

    def i32(self) -> int:
        return int(_I32.unpack(self._take(4))[0])

    def i64(self) -> int:
        return int(_I64.unpack(self._take(8))[0])

    def uuid(self) -> uuid.UUID:
        return uuid.UUID(bytes=self._take(16))

    def flag(self) -> bool:
        v = self.i8()
        if v not in (0, 1):
            raise ControllerDecodeError(f"boolean byte {v}")
        return v == 1

    def nullable_string(self) -> str | None:
        n = self.i16()
        if n == -1:
            return None
        try:
            return self._take(n).decode()
        except UnicodeDecodeError as exc:
            raise ControllerDecodeError(f"string is not UTF-8: {exc}") from None

    def string(self) -> str:
        s = self.nullable_string()
        if s is None:
            raise ControllerDecodeError("null in a non-nullable string")
        return s

    def count(self) -> int:
        """An int32 element count; each element takes at least one byte, so a count larger than
        what is left is refused before any list is built."""
        n = self.i32()
        if n < 0 or n > len(self._buf) - self._pos:
            raise ControllerDecodeError(f"array count {n} with {len(self._buf) - self._pos} "
                                        "bytes left")
        return n

    def end(self) -> None:
        if self._pos != len(self._buf):
            raise ControllerDecodeError(f"{len(self._buf) - self._pos} trailing bytes")
