"""The cross-core envelope codec: what one frame in a mailbox ring carries.

Concern: bytes <-> (kind, correlation id, actor name, message). A fixed 12-byte struct header; the
message body is raw bytes (record batches: no pickling, no copy on the send side), None, a small
int, or a registered struct codec for hot message types; pickle only for everything else (control
messages and errors, where it does not matter). Must not know about rings, loops or actors.

    header  <B kind> <B encoding> <H name length> <Q correlation id>
    then    name (utf-8), body
    CODEC   body = <B codec id> head [tail]

A codec may split its message into a small struct head and a raw tail (a record batch): `encode`
then returns the tail as the frame's second part, which the ring copies from the caller's buffer
(the one copy on the send side), and the codec's `decode` may keep views of the tail (read in
place, valid as long as the frame: see `detach`).
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
    "UndecodableMessageError",
    "UnpicklableMessageError",
    "decode",
    "decode_fields",
    "detach",
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


class UnpicklableMessageError(TypeError):
    """A message (or a reply) that is neither bytes, None, an int nor a registered codec's type,
    and that pickle cannot encode (a lambda, a lock, an open file, a local class). Raised by the
    `tell`/`ask` that tried to send it, before anything reaches the mailbox."""


class UndecodableMessageError(EnvelopeError):
    """A sound frame whose pickled message does not unpickle on the receiving core (its class is
    not importable there): the sender's mistake, not a broken mailbox. The router answers the
    asker with it (or counts an undeliverable tell) and the core carries on."""

    def __init__(self, kind: int, corr: int, name: str, detail: str) -> None:
        super().__init__(f"a message to {name or 'a reply'!r} does not unpickle on the receiving "
                         f"core (is its class importable there?): {detail}")
        self.kind = kind
        self.corr = corr
        self.name = name
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        return (UndecodableMessageError, (self.kind, self.corr, self.name, self.detail))


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


# What a codec's encode returns: the body, or (head, tail) to write the tail without joining.
Packed = bytes | tuple[bytes, bytes | bytearray | memoryview]


@dataclass(frozen=True, slots=True)
class _Codec:
    type_id: int
    tag: bytes  # the codec id as the body's first byte
    cls: type
    encode: Callable[[Any], Packed]
    decode: Callable[[memoryview], Any]
    detach: Callable[[Any], Any] | None


_by_type: dict[type, _Codec] = {}
_by_id: dict[int, _Codec] = {}
# Types whose decoded messages may hold views of their frame: how to copy them out.
_detachers: dict[type, Callable[[Any], Any]] = {}


def register_codec(
    type_id: int,
    cls: type,
    encode: Callable[[Any], Packed],
    decode: Callable[[memoryview], Any],
    *,
    detach: Callable[[Any], Any] | None = None,
) -> None:
    """Register a compact codec for a hot message type (ids 0-255, the same on every core: register
    at import of a module every core imports, before the first frame).

    `encode(message)` returns the body, or `(head, tail)`: the tail (a record batch, any buffer)
    goes to the ring as the frame's second part, with no intermediate bytes. `decode(view)` gets
    the body after the codec id as a view into the frame. A `decode` that keeps views of it (the
    tail read in place) must come with `detach(message)`, which returns the message with those
    views copied out: `decode(copy=True)` and the router call it before a message outlives its
    frame (a queued tell or ask, a reply); only an ask handled inline, within the frame's drain,
    sees the views, and such a handler copies what it keeps. A message `encode` cannot pack
    (struct.error, OverflowError, ValueError, TypeError: a value out of its fields' range) goes
    by pickle instead."""
    if not 0 <= type_id <= 255:
        raise ValueError("type_id must fit one byte")
    existing = _by_id.get(type_id)
    if existing is not None and existing.cls is not cls:
        raise ValueError(f"codec id {type_id} already used by {existing.cls.__name__}")
    codec = _Codec(type_id, bytes((type_id,)), cls, encode, decode, detach)
    _by_type[cls] = codec
    _by_id[type_id] = codec
    if detach is not None:
        _detachers[cls] = detach
    else:
        _detachers.pop(cls, None)


def detach(message: Any) -> Any:
    """`message`, decoded with `copy=False`, made independent of its frame (the ring slot is
    reused once the frame is released): a raw view becomes bytes; a codec's message goes
    through its `detach`; anything else is already independent."""
    cls = type(message)
    if cls is memoryview:
        return bytes(message)
    copy_out = _detachers.get(cls)
    return message if copy_out is None else copy_out(message)


def encode(
    kind: Kind, corr: int, name: str, message: Any
) -> tuple[bytes, bytes | bytearray | memoryview]:
    """(header + name [+ a codec's head], body or tail): the two parts the ring writes into one
    frame without joining."""
    cls = type(message)
    if not name:  # replies: one struct call for the hot bodies
        if cls is int and -(1 << 63) <= message < (1 << 63):
            return _pack_header_int(kind, _INTENC, 0, corr, message), b""
        if message is None:
            return _pack_header(kind, _NONE, 0, corr), b""
    body: bytes | bytearray | memoryview
    head = b""
    if cls is bytes or cls is memoryview or cls is bytearray:
        enc, body = Encoding.RAW, message
    elif message is None:
        enc, body = Encoding.NONE, b""
    elif cls is int and -(1 << 63) <= message < (1 << 63):
        enc, body = Encoding.INT, _INT.pack(message)
    else:
        packed = _pack(cls, message)
        if packed is None:
            enc, body = Encoding.PICKLE, _pickle(message)
        else:
            enc, (head, body) = Encoding.CODEC, packed
    raw_name = _name_bytes.get(name)
    if raw_name is None:
        raw_name = name.encode()
        if len(_name_bytes) < _NAME_CACHE_MAX:
            _name_bytes[name] = raw_name
    if raw_name:
        return _pack_header(kind, enc, len(raw_name), corr) + raw_name + head, body
    return _pack_header(kind, enc, 0, corr) + head, body


def _pickle(message: Any) -> bytes:
    try:
        return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise UnpicklableMessageError(
            f"cannot send a {type(message).__qualname__} to another core: {exc}"
        ) from exc


def _pack(cls: type, message: Any) -> tuple[bytes, bytes | bytearray | memoryview] | None:
    """(codec id + head, tail) of a message with a registered codec, else None (pickle it)."""
    codec = _by_type.get(cls)
    if codec is None:
        return None
    try:
        packed = codec.encode(message)
    except (struct.error, OverflowError, ValueError, TypeError):
        return None  # a value its struct cannot hold (or text utf-8 cannot): pickle keeps it
    if isinstance(packed, tuple):  # (head, tail): the tail goes to the ring as is
        return codec.tag + packed[0], packed[1]
    return codec.tag, packed


def decode(frame: memoryview, *, copy: bool = True) -> Envelope:
    """Decode one frame. With `copy=False` a RAW body, and the tail a codec reads in place, stay
    views into the frame (`detach` copies them out later, if need be)."""
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
            try:
                message = pickle.loads(frame[start:])
            except Exception as exc:
                raise UndecodableMessageError(kind, corr, name, repr(exc)) from exc
        elif enc == _CODEC:
            codec = _by_id[frame[start]]
            message = codec.decode(frame[start + 1 :])
            if copy and codec.detach is not None:
                message = codec.detach(message)
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
