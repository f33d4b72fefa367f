"""The server side of one Kafka connection, sans-IO (h11-style): bytes in, events out, bytes back.

    conn = KafkaServerConnection()
    conn.receive_data(chunk)                 # b"" means the peer closed its side
    while (event := conn.next_event()) is not NEED_DATA:
        RequestReceived      -> run the handler; later conn.send_response(event.token, response)
                                (None: the handler sends no response; acks=0 Produce requests
                                have event.expects_response False and take no response slot)
        ApiVersionsFallback  -> write event.data (KIP-511 reply, already queued in order)
        UnsupportedRequest   -> unknown api key or version: close the connection
        ConnectionClosed     -> the peer closed cleanly between frames
    sock.send(conn.send_response(token, response))   # may be b"" until earlier slots are answered

Requests are decoded here with the generated classes (`event.request`); `event.body` is the raw
body as a read-only memoryview for callers that want it. Responses leave strictly in request order
(kafka-python and aiokafka close the connection on an out-of-order correlation id, notes G3):
a response produced early is buffered until every earlier one is sent.

Bounds: a frame whose size prefix is negative, too small for a header, or above
`max_frame_size` is rejected as soon as its 4-byte prefix arrives, before anything is allocated
for it; the bytes buffered per connection never exceed `max_buffered_bytes`. Either raises
`RemoteProtocolError` and leaves the connection unusable (every later call raises again).
Responses produced out of order wait in memory; their number is bounded by the requests the
caller chose to read (stop reading while `pending_responses` is high: that is the backpressure).

Must not know: sockets, clocks, logging, handlers; it never logs.
"""

from __future__ import annotations

import itertools
import struct
from typing import Any, Final, NoReturn

from redshank.protocol._wire import Parts
from redshank.protocol.api_versions import (
    ADVERTISED,
    API_VERSIONS_KEY,
    advertised_api_keys,
    is_supported,
    request_header_version,
    response_header_version,
)
from redshank.protocol.errors import DecodeError, EncodeError, ProtocolError
from redshank.protocol.fast_dataclass import dataclass
from redshank.protocol.messages import REQUESTS, RESPONSES
from redshank.protocol.messages.api_versions import ApiVersionsResponse
from redshank.protocol.messages.request_header import RequestHeader
from redshank.protocol.messages.response_header import ResponseHeader

__all__ = [
    "NEED_DATA",
    "UNSUPPORTED_VERSION",
    "ApiVersionsFallback",
    "ConnectionClosed",
    "Event",
    "KafkaServerConnection",
    "LocalProtocolError",
    "NeedData",
    "RemoteProtocolError",
    "RequestReceived",
    "RequestToken",
    "UnsupportedRequest",
]

UNSUPPORTED_VERSION: Final = 35
DEFAULT_MAX_FRAME_SIZE: Final = 100 * 1024 * 1024  # Kafka's socket.request.max.bytes
_PRODUCE_KEY: Final = 0
# api_key int16, api_version int16, correlation_id int32: the least a request frame can hold.
_MIN_FRAME: Final = 8
_SIZE = struct.Struct(">i")
_PREFIX = struct.Struct(">hhi")
_conn_ids = itertools.count(1)


class RemoteProtocolError(DecodeError):
    """The peer broke the protocol (bad framing, undecodable request); the connection is dead."""


class LocalProtocolError(ProtocolError):
    """We misused the connection (unknown token, double response, wrong response type)."""


@dataclass(frozen=True, slots=True)
class RequestToken:
    """Names one request's response slot; hand it back to `send_response`."""

    connection_id: int
    seq: int
    correlation_id: int
    api_key: int
    api_version: int
    expects_response: bool


@dataclass(frozen=True, slots=True)
class RequestReceived:
    token: RequestToken
    header: RequestHeader
    api_key: int
    api_version: int
    correlation_id: int
    body: memoryview
    request: Any  # an instance of messages.REQUESTS[api_key]

    @property
    def expects_response(self) -> bool:
        return self.token.expects_response


@dataclass(frozen=True, slots=True)
class UnsupportedRequest:
    """An api key we do not serve or a version outside the advertised range: close the socket."""

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None


@dataclass(frozen=True, slots=True)
class ApiVersionsFallback:
    """An ApiVersions request above our maximum, answered here (KIP-511, notes G1).

    `data` holds the bytes to write now: the reply, plus any responses it unblocked, or b"" if
    earlier responses are still pending (they then carry it out with them)."""

    correlation_id: int
    api_version: int
    data: bytes


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed its side between frames."""


class NeedData:
    """Sentinel type: feed more bytes with `receive_data`."""

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData()
Event = RequestReceived | UnsupportedRequest | ApiVersionsFallback | ConnectionClosed | NeedData


class KafkaServerConnection:
    def __init__(
        self,
        *,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        max_buffered_bytes: int | None = None,
    ) -> None:
        if max_frame_size < _MIN_FRAME:
            raise ValueError(f"max_frame_size {max_frame_size} below {_MIN_FRAME}")
        self.max_frame_size = max_frame_size
        # Room for one whole frame plus the next read's worth of pipelined bytes.
        self.max_buffered_bytes = (
            max_buffered_bytes if max_buffered_bytes is not None else max_frame_size + 4 + (1 << 20)
        )
        if self.max_buffered_bytes < max_frame_size + 4:
            raise ValueError("max_buffered_bytes must hold at least one whole frame")
        self._id = next(_conn_ids)
        self._buf = bytearray()
        self._pos = 0
        self._eof = False
        self._dead: RemoteProtocolError | None = None
        self._next_seq = 0
        self._send_seq = 0
        self._ready: dict[int, Parts] = {}

    # --- input --------------------------------------------------------------------------------

    @property
    def buffered_bytes(self) -> int:
        return len(self._buf) - self._pos

    @property
    def pending_responses(self) -> int:
        """Response slots handed out and not yet sent (answered ones waiting count too)."""
        return self._next_seq - self._send_seq

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        self._check_alive()
        if not data:
            self._eof = True
            return
        if self._eof:
            raise LocalProtocolError("receive_data after end of stream")
        if self.buffered_bytes + len(data) > self.max_buffered_bytes:
            self._fail(f"more than {self.max_buffered_bytes} bytes buffered on one connection")
        if self._pos and self._pos >= len(self._buf) // 2:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data
        self._frame_size()  # reject a bad size prefix as soon as it arrives

    def _fail(self, why: str) -> NoReturn:
        self._dead = RemoteProtocolError(why)
        self._buf = bytearray()
        self._pos = 0
        raise self._dead

    def _check_alive(self) -> None:
        if self._dead is not None:
            raise RemoteProtocolError(f"connection unusable after: {self._dead}")

    def _frame_size(self) -> int | None:
        if len(self._buf) - self._pos < 4:
            return None
        (size,) = _SIZE.unpack_from(self._buf, self._pos)
        if size < _MIN_FRAME or size > self.max_frame_size:
            self._fail(f"frame size {size} outside [{_MIN_FRAME}, {self.max_frame_size}]")
        return int(size)

    def next_event(self) -> Event:
        self._check_alive()
        size = self._frame_size()
        if size is None or len(self._buf) - self._pos < 4 + size:
            if self._eof:
                if self.buffered_bytes == 0:
                    return ConnectionClosed()
                self._fail(f"peer closed mid-frame with {self.buffered_bytes} bytes buffered")
            return NEED_DATA
        start = self._pos + 4
        end = start + size
        frame: bytes | bytearray
        if self._pos == 0 and end == len(self._buf):
            # The common case, one request per read: hand the buffer over instead of copying.
            frame, self._buf = self._buf, bytearray()
            self._pos = 0
        else:
            frame = bytes(memoryview(self._buf)[start:end])
            self._pos = end
            start, end = 0, size
        view = memoryview(frame).toreadonly()[start:end]
        return self._event(view)

    def _event(self, frame: memoryview) -> Event:
        api_key, version, correlation_id = _PREFIX.unpack_from(frame, 0)
        if api_key == API_VERSIONS_KEY and version > ADVERTISED[API_VERSIONS_KEY][1]:
            return self._fallback(correlation_id, version)
        if not is_supported(api_key, version):
            return UnsupportedRequest(api_key, version, correlation_id, _client_id(frame))
        try:
            header, pos = RequestHeader.decode_from(
                frame, 0, request_header_version(api_key, version)
            )
            body = frame[pos:]
            # Bytes after the request are ignored, as Kafka's request parser ignores them:
            # librdkafka 2.16 sends Metadata v12 "all topics" requests with 3 such bytes.
            request, _end = REQUESTS[api_key].decode_from(body, 0, version)
        except DecodeError as exc:
            self._fail(f"bad request (api {api_key} v{version}, id {correlation_id}): {exc}")
        expects = not (api_key == _PRODUCE_KEY and request.acks == 0)  # notes G4
        seq = -1
        if expects:
            seq = self._next_seq
            self._next_seq += 1
        token = RequestToken(self._id, seq, correlation_id, api_key, version, expects)
        return RequestReceived(token, header, api_key, version, correlation_id, body, request)

    def _fallback(self, correlation_id: int, version: int) -> ApiVersionsFallback:
        # KIP-511: error 35 in the v0 body layout (which every client can parse), header v0,
        # listing the whole table so the client can pick a version it shares with us.
        body = ApiVersionsResponse(
            error_code=UNSUPPORTED_VERSION, api_keys=advertised_api_keys()
        ).encode(0)
        seq = self._next_seq
        self._next_seq += 1
        self._ready[seq] = _frame(ResponseHeader(correlation_id).encode(0), [body])
        return ApiVersionsFallback(correlation_id, version, self._flush())

    # --- output -------------------------------------------------------------------------------

    def send_response(self, token: RequestToken, response: Any | None) -> bytes:
        """Queue the response to `token`'s request (None: no response) and return every byte
        that may now be written, in request order (b"" while an earlier response is pending)."""
        self._check_alive()
        if token.connection_id != self._id:
            raise LocalProtocolError("token belongs to another connection")
        if not token.expects_response:
            if response is not None:
                raise LocalProtocolError("this request takes no response (acks=0 Produce)")
            return b""
        if token.seq < self._send_seq or token.seq in self._ready:
            raise LocalProtocolError(f"request {token.correlation_id} already answered")
        if response is None:
            self._ready[token.seq] = []
        else:
            expected = RESPONSES[token.api_key]
            if not isinstance(response, expected):
                raise LocalProtocolError(
                    f"{type(response).__name__} given for a {expected.__name__} slot"
                )
            try:
                # Parts, not bytes: stored batches (Fetch) are copied once, by the final join.
                body = response.encode_parts(token.api_version)
            except EncodeError as exc:
                raise LocalProtocolError(f"cannot encode {expected.__name__}: {exc}") from exc
            hv = response_header_version(token.api_key, token.api_version)
            self._ready[token.seq] = _frame(ResponseHeader(token.correlation_id).encode(hv), body)
        return self._flush()

    def _flush(self) -> bytes:
        out: Parts = []
        while self._send_seq in self._ready:
            out += self._ready.pop(self._send_seq)
            self._send_seq += 1
        return b"".join(out)


def _frame(header: bytes, body: Parts) -> Parts:
    """Size prefix and header, then the body's parts (byte buffers: len() counts bytes)."""
    size = len(header) + sum(len(part) for part in body)
    return [_SIZE.pack(size) + header, *body]


def _client_id(frame: memoryview) -> str | None:
    """The client id of a request we will not decode (header v1/v2 both start this way)."""
    try:
        header, _ = RequestHeader.decode_from(frame[:], 0, 1)
    except DecodeError:
        return None
    return header.client_id
