"""The internal RPC codec's exceptions.

Like h11's pair: `RemoteProtocolError` (a `DecodeError`) means the peer sent bytes that are not a
valid frame stream, and the stream is dead; `LocalProtocolError` (an `EncodeError`) means we
misused the codec (a method id or payload that does not fit the header). Must not know: sockets,
transports, what a method means.
"""

from __future__ import annotations

from redshank.protocol.errors import DecodeError, EncodeError

__all__ = [
    "BadChecksumError",
    "BadHeaderError",
    "FrameTooLargeError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "TruncatedFrameError",
]


class RemoteProtocolError(DecodeError):
    """The peer broke the frame protocol; the decoder is unusable from now on."""


class BadHeaderError(RemoteProtocolError):
    """Bad magic, unknown version, unknown flag bits or kind, or a status that contradicts them."""


class FrameTooLargeError(RemoteProtocolError):
    """A header declared a payload above the decoder's `max_frame_bytes` (nothing was buffered
    for it)."""


class BadChecksumError(RemoteProtocolError):
    """The frame's CRC32C does not match its header fields and payload."""


class TruncatedFrameError(RemoteProtocolError):
    """The stream ended inside a frame."""


class LocalProtocolError(EncodeError):
    """We asked the codec for a frame it cannot encode (field out of range, payload too large),
    or fed a decoder after its end of stream."""
