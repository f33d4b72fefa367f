"""The internal RPC client of one peer address: calls with deadlines, one-way sends, reconnects.

Concern: one TCP connection to one peer (host, port), on the calling core's event loop.

- Connects lazily, on the first call. A failed attempt starts an exponential, capped, jittered
  backoff (`Backoff`); while it runs, calls fail at once with `RpcConnectionError` (the caller,
  Raft say, tries again on its next tick) and `connect()` waits it out. A success resets it.
- Every call has a deadline (`timeout`, else `default_timeout_s`) covering connecting, waiting
  for send budget and the response: past it the call raises `RpcTimeout` and a late response is
  dropped (counted in `late_responses`).
- Calls in flight when the connection dies fail at once with `RpcConnectionError`; nothing is
  retried here (the request may have run: only the caller knows whether it is idempotent).
- Bounded: a call reserves its payload's bytes until answered (or failed); past
  `max_inflight_bytes` unanswered, and while the transport's write buffer is above its high mark
  (`pause_writing`, also set to `max_inflight_bytes`), calls and sends queue in FIFO order, within
  their deadline, and are written one at a time as budget frees. So a slow peer pushes back on
  callers instead of growing memory: buffered bytes stay under `max_inflight_bytes` plus 64 KiB
  of corked small frames plus one frame. A queued frame whose connection goes fails, unsent.
- `close()` fails everything pending with `RpcClosed` and closes the socket; it leaves no task.
- A payload is handed to the transport as it is (uvloop may queue a reference, not a copy): its
  memory must not change while the frame may still be queued. Once a call has its response the
  peer has read it all; after a timeout, a connection error or a one-way `send`, it may still be
  queued (immutable bytes, or a record batch's bytes that are never rewritten, are the easy way).

    +--------+  call(m, p)   +-----------------+  frame   +-----------+
    | caller | ------------> | RpcClient       | -------> | RpcServer |
    |        | <- payload -- | pending[cid]    | <------- | (peer)    |
    +--------+  or RpcError  +-----------------+ response +-----------+

Must not know: what a method means, Raft, partitions.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import socket
from collections import deque
from typing import Any, cast

import structlog

from redshank.actors._log_summary import LogSummary
from redshank.actors.rpc._write import FrameWriter
from redshank.actors.rpc.backoff import Backoff
from redshank.actors.rpc.errors import (
    RpcClosed,
    RpcConnectionError,
    RpcError,
    RpcRemoteError,
    RpcTimeout,
)
from redshank.protocol.fast_dataclass import dataclass
from redshank.protocol.rpc import (
    DEFAULT_MAX_FRAME_BYTES,
    Buffer,
    Frame,
    FrameDecoder,
    FrameKind,
    LocalProtocolError,
    RemoteProtocolError,
    error_message,
)

__all__ = ["RpcClient"]

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_CONNECT_TIMEOUT_S = 2.0
DEFAULT_MAX_INFLIGHT_BYTES = 16 * 1024 * 1024

_log = structlog.get_logger("redshank.rpc")


def _nbytes(payload: Buffer) -> int:
    return payload.nbytes if isinstance(payload, memoryview) else len(payload)


@dataclass(slots=True, eq=False)
class _Queued:
    """A frame waiting for send budget; `sent` resolves once `_grant` wrote it."""

    kind: FrameKind
    method: int
    payload: Buffer
    size: int
    response: asyncio.Future[Frame] | None
    sent: asyncio.Future[tuple[_ClientConnection, int]]


class RpcClient:
    """One per peer address on a core's loop: created by whoever talks to that peer (a test; the
    core's peer table once the cluster is wired), ended by `close()`."""

    def __init__(self, host: str, port: int, *,
                 default_timeout_s: float = DEFAULT_TIMEOUT_S,
                 connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
                 max_inflight_bytes: int = DEFAULT_MAX_INFLIGHT_BYTES,
                 max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
                 send_buffer_bytes: int | None = None,
                 backoff: Backoff | None = None) -> None:
        if max_inflight_bytes <= 0:
            raise ValueError("max_inflight_bytes must be positive")
        self.host = host
        self.port = port
        self.peer = f"{host}:{port}"
        self.default_timeout_s = default_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.max_inflight_bytes = max_inflight_bytes
        self.max_frame_bytes = max_frame_bytes
        # SO_SNDBUF (Kafka's socket.send.buffer.bytes); None: the kernel's autotuning.
        self.send_buffer_bytes = send_buffer_bytes
        self.backoff = backoff if backoff is not None else Backoff()
        self.late_responses = 0  # responses to calls already timed out or gone
        self.connects = 0  # successful connection attempts
        self._conn: _ClientConnection | None = None
        self._connecting: asyncio.Task[_ClientConnection] | None = None
        self._retry_at = -math.inf  # loop time before which no new attempt is made
        self._last_error: BaseException | None = None
        self._ids = itertools.count(1)
        self._inflight = 0  # bytes of calls reserved and not yet answered or failed
        self._write_paused = False
        self._waiters: deque[_Queued] = deque()
        self._closed = False
        self.log = _log.bind(peer=self.peer)
        self._conn_log = LogSummary(self.log, "rpc_peer_connection")

    # -- observability --------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.gone

    @property
    def inflight_bytes(self) -> int:
        return self._inflight

    @property
    def waiting(self) -> int:
        """Calls and sends waiting for budget (the peer is slow)."""
        return len(self._waiters)

    @property
    def pending_calls(self) -> int:
        return 0 if self._conn is None else len(self._conn.pending)

    @property
    def buffered_bytes(self) -> int:
        """Bytes written and not yet taken by the kernel (corked this turn, or in the
        transport's buffer)."""
        conn = self._conn
        if conn is None or conn.transport is None or conn.writer is None:
            return 0
        corked = conn.writer.corked_bytes
        t = conn.transport
        return corked + (0 if t.is_closing() else t.get_write_buffer_size())

    # -- calls ----------------------------------------------------------------------------------
    async def call(self, method: int, payload: Buffer = b"", *,
                   timeout: float | None = None) -> memoryview:
        """The response payload of `method(payload)` on the peer. Raises `RpcTimeout`,
        `RpcConnectionError` (`RpcClosed`) or `RpcRemoteError`."""
        t = self._timeout(timeout)
        size = self._check_size(payload)
        try:
            async with asyncio.timeout(t):
                frame = await self._call(method, payload, size)
        except RpcError:
            raise
        except TimeoutError:
            raise RpcTimeout(f"rpc method {method} to {self.peer}: no response within {t:g} s",
                             method=method, timeout=t) from None
        if frame.is_error:
            raise RpcRemoteError(method, frame.status, error_message(frame.payload))
        return frame.payload

    async def send(self, method: int, payload: Buffer = b"", *,
                   timeout: float | None = None) -> None:
        """A one-way message: returns once it is handed to the transport (no delivery promise).
        Waits (within the deadline) for a connection and while the write buffer is full."""
        t = self._timeout(timeout)
        self._check_size(payload)
        try:
            async with asyncio.timeout(t):
                await self._connection()
                await self._submit(FrameKind.ONE_WAY, method, payload, 0, None)
        except RpcError:
            raise
        except TimeoutError:
            raise RpcTimeout(f"rpc send {method} to {self.peer}: not sent within {t:g} s",
                             method=method, timeout=t) from None

    def send_now(self, method: int, payload: Buffer = b"") -> bool:
        """`send` without waiting, for a caller that gathered this loop turn's messages itself:
        True once the frame is in the transport (handed over now, not corked to the end of the
        turn); False, nothing sent, if the connection is not up, frames wait before this one, or
        the transport is full: then `send`, which waits for those. Raises as `send` does for a
        payload too large or a closed client."""
        self._check_size(payload)
        conn = self._conn
        if conn is None or conn.gone or self._waiters or not self._fits(0):
            return False
        self._write_now(FrameKind.ONE_WAY, method, payload, 0, None)
        if conn.writer is not None:
            conn.writer.flush()
        return True

    async def connect(self, timeout: float | None = None) -> None:
        """Connect now, waiting out the backoff between attempts, within the deadline."""
        t = self._timeout(timeout)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(t):
                while True:
                    try:
                        await self._connection()
                        return
                    except RpcClosed:
                        raise
                    except RpcConnectionError:
                        # The backoff's own deadline: the next attempt is not allowed earlier.
                        await asyncio.sleep(max(0.0, self._retry_at - loop.time()))
        except TimeoutError:
            raise RpcTimeout(f"rpc peer {self.peer}: not connected within {t:g} s ("
                             f"{self._last_error})", timeout=t) from None

    async def _call(self, method: int, payload: Buffer, size: int) -> Frame:
        await self._connection()
        response: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        conn, cid = await self._submit(FrameKind.REQUEST, method, payload, size, response)
        try:
            return await response
        finally:
            conn.pending.pop(cid, None)
            self._release(size)

    def _timeout(self, timeout: float | None) -> float:
        t = self.default_timeout_s if timeout is None else timeout
        if not 0 < t < math.inf:
            raise ValueError(f"every rpc has a finite positive deadline, not {t}")
        return t

    def _check_size(self, payload: Buffer) -> int:
        size = _nbytes(payload)
        if size > self.max_frame_bytes:
            raise LocalProtocolError(
                f"payload of {size} bytes above max_frame_bytes {self.max_frame_bytes}")
        if self._closed:
            raise RpcClosed(f"rpc client to {self.peer} is closed")
        return size

    # -- the connection -------------------------------------------------------------------------
    async def _connection(self) -> _ClientConnection:
        if self._closed:
            raise RpcClosed(f"rpc client to {self.peer} is closed")
        conn = self._conn
        if conn is not None and not conn.gone:
            return conn
        loop = asyncio.get_running_loop()
        if self._connecting is None:
            wait = self._retry_at - loop.time()
            if wait > 0:
                raise RpcConnectionError(
                    f"rpc peer {self.peer} unreachable ({self._last_error}); next attempt in"
                    f" {wait:.3f} s")
            self._connecting = loop.create_task(self._dial())
            # Retrieved here, so a failed attempt nobody still awaits is not reported as lost.
            self._connecting.add_done_callback(lambda t: t.cancelled() or t.exception())
        # Shielded: one caller's deadline must not cancel the attempt the others share.
        return await asyncio.shield(self._connecting)

    async def _dial(self) -> _ClientConnection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _transport, conn = await loop.create_connection(
                    lambda: _ClientConnection(self), self.host, self.port)
        except (OSError, TimeoutError) as exc:
            delay = self.backoff.failed()
            self._retry_at = loop.time() + delay
            self._last_error = exc
            self._conn_log.record("connect_failed", error=str(exc), retry_in_s=round(delay, 3))
            raise RpcConnectionError(f"cannot connect to rpc peer {self.peer}: {exc}") from exc
        finally:
            self._connecting = None
        if self._closed:
            conn.abort()
            raise RpcClosed(f"rpc client to {self.peer} is closed")
        self.backoff.succeeded()
        self._retry_at = -math.inf
        self.connects += 1
        self._conn = conn
        self._write_paused = False
        return conn

    def _lost(self, conn: _ClientConnection, exc: BaseException | None) -> None:
        if self._conn is conn:
            self._conn = None
            self._write_paused = False
            self._last_error = exc
            if not self._closed:
                self._conn_log.record("connection_lost", error=str(exc))
            self._grant()  # queued frames that fit now fail, unsent (no connection to write to)

    def _set_write_paused(self, conn: _ClientConnection, paused: bool) -> None:
        if self._conn is conn:
            self._write_paused = paused
            if not paused:
                self._grant()

    # -- send budget ----------------------------------------------------------------------------
    def _fits(self, size: int) -> bool:
        # A call larger than the whole budget still goes when nothing else is in flight.
        return not self._write_paused and (
            self._inflight == 0 or self._inflight + size <= self.max_inflight_bytes)

    async def _submit(self, kind: FrameKind, method: int, payload: Buffer, size: int,
                      response: asyncio.Future[Frame] | None) -> tuple[_ClientConnection, int]:
        """Write the frame now if it fits, else queue it (FIFO) until it does; `size` bytes are
        reserved until the caller releases them. Queued frames are written by `_grant` itself, one
        at a time, so a write that fills the transport (pause_writing) stops the next one."""
        if not self._waiters and self._fits(size):
            return self._write_now(kind, method, payload, size, response)
        queued = _Queued(kind, method, payload, size, response,
                         asyncio.get_running_loop().create_future())
        self._waiters.append(queued)
        try:
            return await queued.sent
        except BaseException:
            if queued in self._waiters:
                self._waiters.remove(queued)
            elif (queued.sent.done() and not queued.sent.cancelled()
                  and queued.sent.exception() is None):
                conn, cid = queued.sent.result()  # written, then cancelled before it resumed
                conn.pending.pop(cid, None)
                self._release(size)
            raise

    def _write_now(self, kind: FrameKind, method: int, payload: Buffer, size: int,
                   response: asyncio.Future[Frame] | None) -> tuple[_ClientConnection, int]:
        conn = self._conn
        if conn is None or conn.gone:
            raise RpcConnectionError(f"rpc connection to {self.peer} lost before the frame was"
                                     f" sent (it was not)")
        cid = next(self._ids)
        if response is not None:
            conn.pending[cid] = (response, method)
        self._inflight += size
        try:
            conn.write(kind, method, cid, payload)
        except BaseException:
            conn.pending.pop(cid, None)
            self._inflight -= size
            raise
        return conn, cid

    def _release(self, size: int) -> None:
        self._inflight -= size
        self._grant()

    def _grant(self) -> None:
        while self._waiters and self._fits(self._waiters[0].size):
            q = self._waiters.popleft()
            if q.sent.done():
                continue
            try:
                sent = self._write_now(q.kind, q.method, q.payload, q.size, q.response)
            except RpcError as exc:
                q.sent.set_exception(exc)
            else:
                q.sent.set_result(sent)

    # -- close ----------------------------------------------------------------------------------
    async def close(self) -> None:
        """Fail every pending call and waiter with `RpcClosed`, close the socket. Idempotent."""
        if self._closed:
            return
        self._closed = True
        closed = f"rpc client to {self.peer} closed"
        while self._waiters:
            q = self._waiters.popleft()
            if not q.sent.done():
                q.sent.set_exception(RpcClosed(closed))
        if self._connecting is not None:
            task = self._connecting
            task.cancel()
            await asyncio.wait([task])  # ends it; its failure is the callers' to see
        conn = self._conn
        if conn is not None:
            conn.fail_pending(lambda: RpcClosed(closed))
            conn.abort()
            await asyncio.wait([conn.lost], timeout=1.0)

    async def __aenter__(self) -> RpcClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _ClientConnection(asyncio.Protocol):
    """One socket of an `RpcClient`; ends when either side closes it or the peer sends bad
    bytes, failing the calls that wait on it."""

    def __init__(self, client: RpcClient) -> None:
        self.client = client
        self.decoder = FrameDecoder(max_frame_bytes=client.max_frame_bytes,
                                    kinds=frozenset({FrameKind.RESPONSE}))
        self.transport: asyncio.Transport | None = None
        self.writer: FrameWriter | None = None
        # correlation id -> (the call's future, its method: a response must echo it)
        self.pending: dict[int, tuple[asyncio.Future[Frame], int]] = {}
        self.gone = False
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.writer = FrameWriter(self.transport)
        high = self.client.max_inflight_bytes
        self.transport.set_write_buffer_limits(high=high, low=high // 4)
        if self.client.send_buffer_bytes is not None:
            sock = self.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.client.send_buffer_bytes)

    def connection_lost(self, exc: Exception | None) -> None:
        self.gone = True
        why = "closed by peer" if exc is None else str(exc)
        self.fail_pending(lambda: RpcConnectionError(
            f"rpc connection to {self.client.peer} lost: {why}"))
        self.client._lost(self, exc)
        if not self.lost.done():
            self.lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self.gone:
            return
        try:
            self.decoder.feed(data)
            for frame in self.decoder:
                entry = self.pending.pop(frame.correlation_id, None)
                if entry is None or entry[0].done():
                    self.client.late_responses += 1
                elif entry[1] != frame.method:
                    self.pending[frame.correlation_id] = entry  # failed with the others below
                    raise RemoteProtocolError(
                        f"response {frame.correlation_id} names method {frame.method}, its"
                        f" request {entry[1]}")
                else:
                    entry[0].set_result(frame)
        except RemoteProtocolError as exc:
            why = f"rpc peer {self.client.peer} sent bad bytes: {exc}"
            self.client._conn_log.record("bad_frame", error=str(exc))
            self.fail_pending(lambda: RpcConnectionError(why))
            self.abort()

    def eof_received(self) -> bool:
        return False  # the peer is done: close our side too (connection_lost fails the rest)

    def pause_writing(self) -> None:
        self.client._set_write_paused(self, True)

    def resume_writing(self) -> None:
        self.client._set_write_paused(self, False)

    def write(self, kind: FrameKind, method: int, cid: int, payload: Buffer) -> None:
        t, w = self.transport, self.writer
        if self.gone or t is None or w is None or t.is_closing():
            raise RpcConnectionError(f"rpc connection to {self.client.peer} is closing")
        w.write(kind, method, cid, payload)

    def fail_pending(self, error: Any) -> None:
        pending, self.pending = self.pending, {}
        for fut, _method in pending.values():
            if not fut.done():
                fut.set_exception(error())

    def abort(self) -> None:
        self.gone = True
        if self.transport is not None:
            self.transport.abort()
