"""Sans-IO codec of the internal node-to-node RPC: frames (fixed header, CRC32C, payload), their
status codes, and an incremental, bounded decoder. Must not know: sockets, clocks, logging."""

from redshank.protocol.rpc.decoder import FrameDecoder
from redshank.protocol.rpc.errors import (
    BadChecksumError,
    BadHeaderError,
    FrameTooLargeError,
    LocalProtocolError,
    RemoteProtocolError,
    TruncatedFrameError,
)
from redshank.protocol.rpc.frame import (
    DEFAULT_MAX_FRAME_BYTES,
    HEADER,
    MAGIC,
    MAX_ERROR_MESSAGE_BYTES,
    VERSION,
    Buffer,
    Frame,
    FrameKind,
    Status,
    encode_frame,
    encode_header,
    error_message,
    error_payload,
)

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "HEADER",
    "MAGIC",
    "MAX_ERROR_MESSAGE_BYTES",
    "VERSION",
    "BadChecksumError",
    "BadHeaderError",
    "Buffer",
    "Frame",
    "FrameDecoder",
    "FrameKind",
    "FrameTooLargeError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "Status",
    "TruncatedFrameError",
    "encode_frame",
    "encode_header",
    "error_message",
    "error_payload",
]
