"""The cross-core envelope codec: what one frame in a mailbox ring carries.

Concern: bytes <-> (kind, correlation id, actor name, message). A fixed 12-byte struct header; the
message body is raw bytes (record batches: no pickling, no copy on the send side), None, a small
int, or a registered struct codec for hot message types; pickle only for everything else (control
messages and errors, where it does not matter). Must not know about rings, loops or actors.

    header  <B kind> <B encoding> <H name length> <Q correlation id>
    then    name (utf-8), body
"""

from __future__ import annotations

import enum
import pickle
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

__all__ = [
    "HEADER",
    "Encoding",
    "Envelope",
    "EnvelopeError",
    "Kind",
    "decode",
    "decode_fields",
    "encode",
    "register_codec",
]

HEADER: Final = struct.Struct("<BBHQ")
_INT: Final = struct.Struct("<q")
_HEADER_SIZE: Final = HEADER.size
_unpack_header = HEADER.unpack_from
_unpack_int = _INT.unpack_from
_pack_header = HEADER.pack
_pack_header_int = struct.Struct("<BBHQq").pack  # a nameless frame with an int body, in one go


class Kind(enum.IntEnum):
    TELL = 1
    ASK = 2
    REPLY = 3
    ERROR = 4
    ASK_TWO_PHASE = 5
    SEQUENCED = 6
    ACKED = 7


class Encoding(enum.IntEnum):
    RAW = 0  # bytes
    NONE = 1
    INT = 2
    PICKLE = 3
    CODEC = 4  # a registered struct codec: first byte of the body is its id


class EnvelopeError(Exception):
    """A frame that does not decode (a bug in a peer core: the mailbox itself is checksummed
    by its framing)."""


class Envelope(NamedTuple):
    """A decoded frame. A NamedTuple, not a frozen dataclass: it is built once per frame on the
    hot path, and a frozen dataclass's __init__ costs about three times as much."""

    kind: Kind
    corr: int
    name: str
    message: Any


_KINDS: Final = {int(k): k for k in Kind}
_RAW, _NONE, _INTENC, _PICKLE, _CODEC = (
    int(e) for e in (Encoding.RAW, Encoding.NONE, Encoding.INT, Encoding.PICKLE, Encoding.CODEC)
)
# Actor names are few and repeat on every frame: cache their encodings both ways (bounded).
_NAME_CACHE_MAX: Final = 4096
_name_bytes: dict[str, bytes] = {}
_name_strs: dict[bytes, str] = {}


@dataclass(frozen=True, slots=True)
class _Codec:
    type_id: int
    cls: type
    encode: Callable[[Any], bytes]
    decode: Callable[[memoryview], Any]


_by_type: dict[type, _Codec] = {}
_by_id: dict[int, _Codec] = {}


def register_codec(
    type_id: int, cls: type, encode: Callable[[Any], bytes], decode: Callable[[memoryview], Any]
) -> None:
    """Register a compact codec for a hot message type (ids 0-255, the same on every core)."""
    if not 0 <= type_id <= 255:
        raise ValueError("type_id must fit one byte")
    existing = _by_id.get(type_id)
    if existing is not None and existing.cls is not cls:
        raise ValueError(f"codec id {type_id} already used by {existing.cls.__name__}")
    codec = _Codec(type_id, cls, encode, decode)
    _by_type[cls] = codec
    _by_id[type_id] = codec


def encode(kind: Kind, corr: int, name: str, message: Any) -> tuple[bytes, bytes | memoryview]:
    """(header + name, body): the two parts the ring writes into one frame without joining."""
    cls = type(message)
    if not name:  # replies: one struct call for the hot bodies
        if cls is int and -(1 << 63) <= message < (1 << 63):
            return _pack_header_int(kind, _INTENC, 0, corr, message), b""
        if message is None:
            return _pack_header(kind, _NONE, 0, corr), b""
    body: bytes | memoryview
    if cls is bytes or cls is memoryview or cls is bytearray:
        enc, body = Encoding.RAW, message
    elif message is None:
        enc, body = Encoding.NONE, b""
    elif cls is int and -(1 << 63) <= message < (1 << 63):
        enc, body = Encoding.INT, _INT.pack(message)
    else:
        codec = _by_type.get(cls)
        if codec is not None:
            enc, body = Encoding.CODEC, bytes((codec.type_id,)) + codec.encode(message)
        else:
            enc, body = Encoding.PICKLE, pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    raw_name = _name_bytes.get(name)
    if raw_name is None:
        raw_name = name.encode()
        if len(_name_bytes) < _NAME_CACHE_MAX:
            _name_bytes[name] = raw_name
    if raw_name:
        return _pack_header(kind, enc, len(raw_name), corr) + raw_name, body
    return _pack_header(kind, enc, 0, corr), body


def decode(frame: memoryview, *, copy: bool = True) -> Envelope:
    """Decode one frame. With `copy=False` a RAW body stays a view into the frame (in place)."""
    kind, corr, name, message = decode_fields(frame, copy=copy)
    return Envelope(_KINDS[kind], corr, name, message)


def decode_fields(frame: memoryview, *, copy: bool = True) -> tuple[int, int, str, Any]:
    """`decode` as a plain tuple with the kind as an int (a valid `Kind` value): the router's
    per-frame path, without building an `Envelope`."""
    try:
        kind, enc, name_len, corr = _unpack_header(frame)
        if kind not in _KINDS:
            raise EnvelopeError(f"unknown kind {kind}")
        start = _HEADER_SIZE + name_len
        if name_len:
            if start > len(frame):
                raise EnvelopeError("name runs past the frame")
            raw_name = frame[_HEADER_SIZE:start].tobytes()
            name = _name_strs.get(raw_name)
            if name is None:
                name = _learn_name(raw_name)
        else:
            name = ""
        message: Any
        if enc == _RAW:
            message = bytes(frame[start:]) if copy else frame[start:]
        elif enc == _NONE:
            message = None
        elif enc == _INTENC:
            message = _unpack_int(frame, start)[0]
        elif enc == _PICKLE:
            message = pickle.loads(frame[start:])
        elif enc == _CODEC:
            body = frame[start:]
            message = _by_id[body[0]].decode(body[1:])
        else:
            raise EnvelopeError(f"unknown encoding {enc}")
        return kind, corr, name, message
    except EnvelopeError:
        raise
    except Exception as exc:  # struct.error, KeyError, UnicodeError, UnpicklingError, ...
        raise EnvelopeError(f"undecodable frame: {exc!r}") from exc


def _learn_name(raw_name: bytes) -> str:
    name = raw_name.decode()
    if len(_name_strs) < _NAME_CACHE_MAX:
        _name_strs[raw_name] = name
    return name
