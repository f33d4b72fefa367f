"""The protocol layer's exceptions.

Like h11's RemoteProtocolError / LocalProtocolError: `DecodeError` and its subclasses mean the
peer sent bad bytes (the only exceptions a decoder may raise on any input); `EncodeError` means we
misused the API (a value that does not fit the field or version).
"""

from __future__ import annotations

__all__ = ["CorruptBatchError", "DecodeError", "EncodeError", "ProtocolError"]


class ProtocolError(Exception):
    """Base of every exception the protocol layer raises on purpose."""


class DecodeError(ProtocolError):
    """The bytes received are not a valid encoding (truncated, out of range, bad CRC...)."""


class CorruptBatchError(DecodeError):
    """A record batch failed validation: bad length, magic, or CRC32C."""


class EncodeError(ProtocolError):
    """A value cannot be encoded at the requested version: a local programming error."""
