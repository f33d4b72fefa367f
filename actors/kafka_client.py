"""A tiny asynchronous Kafka client: one request to one broker over Kafka's wire protocol.

Concern: what a broker must send another broker as a Kafka client (the transaction host's
WriteTxnMarkers to a partition led elsewhere, as Kafka's coordinator does): connect, send one
request built with our generated codec (`protocol/messages`), read its response, close. Every
step bounded by `timeout_s`. Not a general client: no ApiVersions exchange (the versions asked
are ones every Redshank broker serves), no pipelining, no pooling (callers are rare: one per
transaction end per remote broker). Must not know: what the request means.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from redshank.protocol.api_versions import request_header_version, response_header_version
from redshank.protocol.messages.request_header import RequestHeader
from redshank.protocol.messages.response_header import ResponseHeader

__all__ = ["CLIENT_ID", "call"]

_SIZE = struct.Struct(">i")
CLIENT_ID = "redshank-broker"
_MAX_FRAME = 64 * 1024 * 1024


async def call(host: str, port: int, request: Any, version: int, response_type: Any,
               timeout_s: float) -> Any:
    """Send `request` (a generated request class) at `version` to host:port; its decoded
    response. Raises OSError (refused, reset), TimeoutError, or ConnectionError (a short or
    mismatched answer)."""
    return await asyncio.wait_for(_call(host, port, request, version, response_type),
                                  timeout_s)


async def _call(host: str, port: int, request: Any, version: int, response_type: Any) -> Any:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        key = request.API_KEY
        correlation_id = 1
        body = (RequestHeader(key, version, correlation_id, CLIENT_ID).encode(
            request_header_version(key, version)) + request.encode(version))
        writer.write(_SIZE.pack(len(body)) + body)
        await writer.drain()
        try:
            (size,) = _SIZE.unpack(await reader.readexactly(4))
            if not 0 < size <= _MAX_FRAME:
                raise ConnectionError(f"{host}:{port}: bad frame size {size}")
            frame = await reader.readexactly(size)
        except asyncio.IncompleteReadError as exc:
            raise ConnectionError(f"{host}:{port} closed the connection") from exc
        header, pos = ResponseHeader.decode_from(frame, 0, response_header_version(key, version))
        if header.correlation_id != correlation_id:
            raise ConnectionError(f"{host}:{port}: answer to request {header.correlation_id}")
        response, _ = response_type.decode_from(frame, pos, version)
        return response
    finally:
        writer.close()
