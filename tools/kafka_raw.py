"""A blocking Kafka connection for the few admin requests confluent-kafka's Python binding does
not expose, built with our generated codec (`protocol/messages`).

Used by `redshank cluster transfer-leadership` (AlterPartitionReassignments, 45: no
`alter_partition_reassignments` in confluent-kafka 2.x's AdminClient) and `redshank group
offset-delete` (OffsetDelete, 47: no binding either). One socket, one request at a time, every
read bounded by the socket's timeout. Versions are fixed ones that Kafka 3.x and Redshank both
serve. Must not know: click, output formats (callers turn `OSError` into their own errors).
"""

from __future__ import annotations

import socket
import struct
from types import TracebackType
from typing import Any

from redshank.protocol.api_versions import request_header_version, response_header_version
from redshank.protocol.messages.request_header import RequestHeader
from redshank.protocol.messages.response_header import ResponseHeader

__all__ = ["RawConnection"]

_SIZE = struct.Struct(">i")
CLIENT_ID = "redshank-cli"


class RawConnection:
    """One connection to `address` (host:port); `call` sends a request, returns its response."""

    def __init__(self, address: str, timeout_s: float) -> None:
        host, port = address.rsplit(":", 1)
        self.address = address
        self.sock = socket.create_connection((host, int(port)), timeout=timeout_s)
        self.sock.settimeout(timeout_s)
        self.correlation_id = 0

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def call(self, request: Any, version: int, response_type: Any) -> Any:
        """Send `request` (a generated request class) at `version`; its decoded response."""
        self.correlation_id += 1
        key = request.API_KEY
        body = (RequestHeader(key, version, self.correlation_id, CLIENT_ID).encode(
            request_header_version(key, version)) + request.encode(version))
        self.sock.sendall(_SIZE.pack(len(body)) + body)
        frame = self._recv(_SIZE.unpack(self._recv(4))[0])
        header, pos = ResponseHeader.decode_from(frame, 0, response_header_version(key, version))
        if header.correlation_id != self.correlation_id:
            raise ConnectionError(f"{self.address}: answer to request {header.correlation_id},"
                                  f" expected {self.correlation_id}")
        response, _ = response_type.decode_from(frame, pos, version)
        return response

    def _recv(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError(f"{self.address} closed the connection")
            buf += chunk
        return bytes(buf)

    def close(self) -> None:
        self.sock.close()
