"""rpk-style record format strings for `redshank topic produce` and `consume` (sans-IO).

A format is literal text with placeholders; `\\n`, `\\t`, `\\r` and `\\\\` are escapes and `%%` is a
literal percent sign:

    %t topic      %k key        %v value        %h headers as k=v,k=v      %p partition
    %o offset     %d timestamp (ms since epoch) %K key length  %V value length  %H header count

Reading (produce) uses %k, %v, %h and %p: each placeholder takes the input up to the literal text
that follows it in the format (so two placeholders need text between them), and a record ends
with the format's last literal. `'%k %v\\n'` reads lines of "key value"; `'%v'` alone reads all
of the input as one value. An empty %k is a record with no key; an empty %h has no headers.

Writing (consume) renders every placeholder; a missing key or value renders as nothing.

This module knows bytes and strings only: no client, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import field
from typing import NoReturn

from redshank.protocol.fast_dataclass import dataclass

__all__ = [
    "INPUT_FIELDS",
    "OUTPUT_FIELDS",
    "FormatError",
    "InputRecord",
    "OutputRecord",
    "RecordReader",
    "Template",
    "compile_format",
    "format_headers",
    "parse_headers",
]

OUTPUT_FIELDS = frozenset("tkvhpodKVH")
INPUT_FIELDS = frozenset("kvhp")
_ESCAPES = {"n": b"\n", "t": b"\t", "r": b"\r", "\\": b"\\"}

Headers = list[tuple[str, bytes | None]]


class FormatError(ValueError):
    """A format string that cannot be used, or input that does not match its format."""


@dataclass(frozen=True, slots=True)
class Template:
    """A compiled format: literal bytes and one-letter placeholders, in order."""

    parts: tuple[bytes | str, ...]

    def fields(self) -> set[str]:
        return {p for p in self.parts if isinstance(p, str)}


def compile_format(fmt: str, allowed: frozenset[str] = OUTPUT_FIELDS) -> Template:
    parts: list[bytes | str] = []
    literal = bytearray()
    i = 0
    while i < len(fmt):
        ch = fmt[i]
        nxt = fmt[i + 1] if i + 1 < len(fmt) else ""
        if ch == "\\" and nxt in _ESCAPES:
            literal += _ESCAPES[nxt]
            i += 2
        elif ch == "%" and nxt == "%":
            literal += b"%"
            i += 2
        elif ch == "%":
            if nxt not in allowed:
                shown = f"%{nxt}" if nxt else "a trailing %"
                raise FormatError(f"format {fmt!r}: {shown} is not one of "
                                  + " ".join(f"%{c}" for c in sorted(allowed)))
            if literal:
                parts.append(bytes(literal))
                literal.clear()
            parts.append(nxt)
            i += 2
        else:
            literal += ch.encode()
            i += 1
    if literal:
        parts.append(bytes(literal))
    return Template(tuple(parts))


def format_headers(headers: Sequence[tuple[str, bytes | None]] | None) -> bytes:
    return b",".join(k.encode() if v is None else k.encode() + b"=" + v
                     for k, v in headers or ())


def parse_headers(text: bytes) -> Headers:
    out: Headers = []
    for item in text.split(b",") if text else ():
        key, sep, value = item.partition(b"=")
        out.append((key.decode(errors="replace"), value if sep else None))
    return out


@dataclass(frozen=True, slots=True)
class OutputRecord:
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]] = ()

    def render(self, template: Template) -> bytes:
        out = bytearray()
        for part in template.parts:
            if isinstance(part, bytes):
                out += part
            else:
                out += self._field(part)
        return bytes(out)

    def _field(self, name: str) -> bytes:
        if name == "v":
            return self.value or b""
        if name == "k":
            return self.key or b""
        if name == "t":
            return self.topic.encode()
        if name == "p":
            return b"%d" % self.partition
        if name == "o":
            return b"%d" % self.offset
        if name == "d":
            return b"%d" % self.timestamp
        if name == "h":
            return format_headers(self.headers)
        if name == "K":
            return b"%d" % len(self.key or b"")
        if name == "V":
            return b"%d" % len(self.value or b"")
        return b"%d" % len(self.headers)


@dataclass(slots=True)
class InputRecord:
    value: bytes | None = None
    key: bytes | None = None
    partition: int | None = None
    headers: Headers = field(default_factory=list)


class RecordReader:
    """Bytes in (any chunking), records out: `feed(chunk)` then `close()` at end of input."""

    def __init__(self, template: Template) -> None:
        for a, b in zip(template.parts, template.parts[1:], strict=False):
            if isinstance(a, str) and isinstance(b, str):
                raise FormatError(f"placeholders %{a} and %{b} need text between them to be"
                                  " read from input")
        if not template.fields():
            raise FormatError("the format reads no field (use %v)")
        self.template = template
        tail = template.parts[-1]
        self._terminator = tail if isinstance(tail, bytes) else b""
        self._buf = b""
        self._records = 0

    def feed(self, chunk: bytes) -> Iterator[InputRecord]:
        self._buf += chunk
        yield from self._drain(eof=False)

    def close(self) -> Iterator[InputRecord]:
        yield from self._drain(eof=True)
        if self._buf:
            raise FormatError(f"record {self._records + 1}: input ends inside a record"
                              f" ({self._buf[:40]!r})")

    def _drain(self, eof: bool) -> Iterator[InputRecord]:
        start = 0
        while start < len(self._buf):
            parsed = self._parse_one(start, eof)
            if parsed is None:
                break
            record, start = parsed
            self._records += 1
            yield record
        self._buf = self._buf[start:]

    def _parse_one(self, pos: int, eof: bool) -> tuple[InputRecord, int] | None:
        """One record from `pos`, and where the next one starts; None: not all here yet."""
        buf, parts = self._buf, self.template.parts
        record = InputRecord()
        for i, part in enumerate(parts):
            if isinstance(part, bytes):
                if len(buf) - pos < len(part):
                    if eof and i == len(parts) - 1 and part.startswith(buf[pos:]):
                        return record, len(buf)  # the last line may lack its newline
                    if not eof and part.startswith(buf[pos:]):
                        return None
                    self._mismatch(part, buf[pos:pos + len(part)])
                if buf[pos:pos + len(part)] != part:
                    self._mismatch(part, buf[pos:pos + len(part)])
                pos += len(part)
                continue
            if i + 1 < len(parts):
                delim = parts[i + 1]
                assert isinstance(delim, bytes)
                end = buf.find(delim, pos)
                last = i + 2 == len(parts)
                # A field never runs over the record's end ('%k %v\n' on a line with no
                # space is a bad line, not a key that swallows the next line).
                stop = buf.find(self._terminator, pos) if self._terminator and not last else -1
                if stop >= 0 and (end < 0 or stop < end):
                    self._mismatch(delim, buf[pos:stop + len(self._terminator)])
                if end < 0:
                    if not (eof and last):
                        return None
                    end = len(buf)
            else:
                if not eof:
                    return None
                end = len(buf)
            self._set(record, part, buf[pos:end])
            pos = end
        return record, pos

    def _mismatch(self, wanted: bytes, got: bytes) -> NoReturn:
        raise FormatError(f"record {self._records + 1}: expected {wanted!r} in {got!r}")

    def _set(self, record: InputRecord, name: str, text: bytes) -> None:
        if name == "v":
            record.value = text
        elif name == "k":
            record.key = text or None
        elif name == "h":
            record.headers = parse_headers(text)
        else:
            try:
                record.partition = int(text)
            except ValueError:
                raise FormatError(f"record {self._records + 1}: partition {text!r} is not a"
                                  " number") from None
