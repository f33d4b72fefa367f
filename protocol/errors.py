"""The protocol layer's exceptions.

Like h11's RemoteProtocolError / LocalProtocolError: `DecodeError` and its subclasses mean the
peer sent bad bytes (the only exceptions a decoder may raise on any input); `EncodeError` means we
misused the API (a value that does not fit the field or version).
"""

from __future__ import annotations

__all__ = [
    "CorruptBatchError",
    "CorruptRecordError",
    "DecodeError",
    "DecompressionBombError",
    "DecompressionError",
    "EncodeError",
    "ProtocolError",
    "UnknownCompressionError",
]


class ProtocolError(Exception):
    """Base of every exception the protocol layer raises on purpose."""


class DecodeError(ProtocolError):
    """The bytes received are not a valid encoding (truncated, out of range, bad CRC...)."""


class CorruptBatchError(DecodeError):
    """A record batch failed validation: bad length, magic, or CRC32C."""


class CorruptRecordError(CorruptBatchError):
    """A record inside a batch is malformed (lengths, varints, header keys, trailing bytes)."""


class DecompressionError(DecodeError):
    """A compressed records section is truncated or corrupt for its codec."""


class DecompressionBombError(DecompressionError):
    """Decompressing would exceed the caller's output cap (a decompression bomb or a huge batch)."""


class UnknownCompressionError(DecodeError):
    """The batch's codec bits name no codec (5-7)."""


class EncodeError(ProtocolError):
    """A value cannot be encoded at the requested version: a local programming error."""
