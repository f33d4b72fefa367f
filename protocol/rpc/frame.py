"""The internal RPC frame: a fixed 24-byte header, then the payload. Encoding side.

    offset size  field
    0      2     magic          0x5253 ("RS")
    2      1     version        1
    3      1     flags          bits 0-1 kind (1 request, 2 response, 3 one-way); bit 7 error;
                                bits 2-6 reserved, zero
    4      2     method id      uint16; a response echoes its request's
    6      2     status         `Status`; OK on requests and one-way messages; a response has
                                the error bit set iff its status is not OK
    8      8     correlation id uint64; a response echoes its request's (one-way: 0 allowed)
    16     4     payload length uint32, bounded by the receiver's max_frame_bytes
    20     4     CRC32C         over bytes 0-19, then the payload (Castagnoli, as Kafka batches)

All integers big-endian (network order, as Kafka). An error response carries a short UTF-8 message
as its payload (`error_payload` / `error_message`). The header is encoded apart from the payload
(`encode_header`) so a large payload, a record batch's memoryview, is handed to the transport as it
is and copied only by the transport.

Must not know: sockets, transports, clocks, what a method id means.
"""

from __future__ import annotations

import enum
import struct
from typing import Final

import crc32c as _crc32c

from redshank.protocol.fast_dataclass import dataclass
from redshank.protocol.rpc.errors import LocalProtocolError

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "HEADER",
    "MAGIC",
    "MAX_ERROR_MESSAGE_BYTES",
    "VERSION",
    "Buffer",
    "Frame",
    "FrameKind",
    "Status",
    "encode_frame",
    "encode_header",
    "error_message",
    "error_payload",
]

MAGIC: Final = 0x5253
VERSION: Final = 1
DEFAULT_MAX_FRAME_BYTES: Final = 64 * 1024 * 1024
MAX_ERROR_MESSAGE_BYTES: Final = 512
MAX_METHOD: Final = 0xFFFF
MAX_CORRELATION_ID: Final = (1 << 64) - 1
MAX_PAYLOAD: Final = 0xFFFF_FFFF

# magic .. payload length: the header bytes the CRC covers first.
FIELDS: Final = struct.Struct(">HBBHHQI")
CRC_FIELD: Final = struct.Struct(">I")
HEADER: Final = FIELDS.size + CRC_FIELD.size  # 24
ERROR_FLAG: Final = 0x80
KIND_MASK: Final = 0x03

Buffer = bytes | bytearray | memoryview


class FrameKind(enum.IntEnum):
    """Flags bits 0-1."""

    REQUEST = 1
    RESPONSE = 2
    ONE_WAY = 3


class Status(enum.IntEnum):
    """A response's outcome (header bytes 6-7). Anything but OK carries a message payload."""

    OK = 0
    UNKNOWN_METHOD = 1  # no handler is registered for the method id
    HANDLER_ERROR = 2  # the handler raised
    TOO_LARGE = 3  # the response would exceed the frame bound
    SHUTTING_DOWN = 4  # the server stopped before the handler answered


# Wire value -> member, a dict lookup (calling an IntEnum costs ~1 us, several per frame).
KINDS: Final[dict[int, FrameKind]] = {int(k): k for k in FrameKind}
STATUSES: Final[dict[int, Status]] = {int(s): s for s in Status}


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame. `payload` is read-only and owned by this frame alone (the decoder never
    reuses its memory), so a handler may keep it."""

    kind: FrameKind
    method: int
    correlation_id: int
    status: Status
    payload: memoryview

    @property
    def is_error(self) -> bool:
        return self.status is not Status.OK


def header_crc(fields: Buffer, payload: Buffer) -> int:
    """CRC32C of the 20 header bytes before the CRC, continued over the payload."""
    return int(_crc32c.crc32c(payload, _crc32c.crc32c(fields)))


def encode_header(
    kind: FrameKind,
    method: int,
    correlation_id: int,
    payload: Buffer,
    status: Status = Status.OK,
) -> bytes:
    """The 24 header bytes of a frame carrying `payload`; write them, then the payload itself."""
    if not 0 <= method <= MAX_METHOD:
        raise LocalProtocolError(f"method id {method} outside [0, {MAX_METHOD}]")
    if not 0 <= correlation_id <= MAX_CORRELATION_ID:
        raise LocalProtocolError(f"correlation id {correlation_id} outside uint64")
    size = payload.nbytes if isinstance(payload, memoryview) else len(payload)
    if size > MAX_PAYLOAD:
        raise LocalProtocolError(f"payload of {size} bytes does not fit a uint32 length")
    if kind not in KINDS or status not in STATUSES:
        raise LocalProtocolError(f"no frame kind {kind} or status {status}")
    if kind != FrameKind.RESPONSE and status != Status.OK:
        raise LocalProtocolError(f"a {KINDS[kind].name} frame carries no status "
                                 f"({STATUSES[status].name})")
    flags = kind | (ERROR_FLAG if status != Status.OK else 0)
    fields = FIELDS.pack(MAGIC, VERSION, flags, method, status, correlation_id, size)
    return fields + CRC_FIELD.pack(header_crc(fields, payload))


def encode_frame(
    kind: FrameKind,
    method: int,
    correlation_id: int,
    payload: Buffer = b"",
    status: Status = Status.OK,
) -> bytes:
    """Header and payload in one bytes object (one copy of the payload: for small frames)."""
    return encode_header(kind, method, correlation_id, payload, status) + bytes(payload)


def error_payload(message: str) -> bytes:
    """An error response's payload: the message in UTF-8, cut to `MAX_ERROR_MESSAGE_BYTES`."""
    return message.encode("utf-8", "replace")[:MAX_ERROR_MESSAGE_BYTES]


def error_message(payload: Buffer) -> str:
    """The message of an error response (a cut multi-byte character becomes U+FFFD)."""
    return bytes(payload).decode("utf-8", "replace")
