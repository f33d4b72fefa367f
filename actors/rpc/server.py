"""The internal RPC server of one core: accepts peers' connections, runs handlers by method id,
answers with the request's correlation id.

Concern: the listening socket and the connections it accepts, on the core's event loop. Each
request runs its registered handler (`async def h(payload: memoryview) -> bytes | memoryview`, or
a plain function); responses leave as handlers finish, in any order (the client matches them by
correlation id). One-way messages run their handler and get no response. Expected failures are
answered, never raised: an unknown method gets `UNKNOWN_METHOD`, a handler that raises gets
`HANDLER_ERROR` with a short message (and one summarised log line), a response above the frame
bound gets `TOO_LARGE`, a request still running at `stop()` gets `SHUTTING_DOWN`. A peer that
sends bad bytes (bad header, CRC, a length above `max_frame_bytes`) loses its connection; the
server and its other connections carry on.

Bounded: a connection stops reading while `max_handlers_per_connection` of its handlers run or
while the peer does not read our responses (the transport's `pause_writing`), so a flooding or
slow peer is pushed back through TCP instead of growing memory here.

Port: one listener per core at `rpc_port(base_port, core)` = base + core id (ARCHITECTURE.md
section 2), so a peer reaches the core that owns a partition or group without a hop between
cores. Must not know: what a method means, partitions, Raft; the handlers do.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, cast

import structlog

from redshank.actors._log_summary import LogSummary
from redshank.actors.rpc._write import FrameWriter
from redshank.protocol.rpc import (
    DEFAULT_MAX_FRAME_BYTES,
    Buffer,
    Frame,
    FrameDecoder,
    FrameKind,
    RemoteProtocolError,
    Status,
    error_payload,
)

__all__ = ["Handler", "RpcServer", "rpc_port"]

Handler = Callable[[memoryview], Buffer | Awaitable[Buffer | None] | None]
MAX_PORT = 65535

_log = structlog.get_logger("redshank.rpc")


def rpc_port(base_port: int, core: int) -> int:
    """The RPC port of `core` on a node whose core 0 listens on `base_port`."""
    port = base_port + core
    if core < 0 or not 0 < port <= MAX_PORT:
        raise ValueError(f"no rpc port for core {core} from base {base_port}")
    return port


class RpcServer:
    """One per core, on its loop: created by the core's setup (or a test) with the core's port,
    started with `start()`, ended by `stop()`. Handlers are registered before or after start."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *,
                 max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
                 max_handlers_per_connection: int = 256,
                 stop_grace_s: float = 1.0, core: int | None = None) -> None:
        self.host = host
        self.port = port
        self.max_frame_bytes = max_frame_bytes
        self.max_handlers_per_connection = max_handlers_per_connection
        self.stop_grace_s = stop_grace_s
        self._handlers: dict[int, Handler] = {}
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[_ServerConnection] = set()
        self.stopping = False
        self.log = _log.bind(core=core, rpc_port=port)
        self.closed_log = LogSummary(self.log, "rpc_connection_closed")
        self.failed_log = LogSummary(self.log, "rpc_handler_failed", level="error")

    @classmethod
    def for_core(cls, host: str, base_port: int, core: int, **kw: Any) -> RpcServer:
        return cls(host, rpc_port(base_port, core), core=core, **kw)

    def register(self, method: int, handler: Handler) -> None:
        if not 0 <= method <= 0xFFFF:
            raise ValueError(f"method id {method} outside uint16")
        if method in self._handlers:
            raise ValueError(f"method {method} already has a handler")
        self._handlers[method] = handler

    def unregister(self, method: int) -> None:
        """Stop serving `method` (its owner closes; the server lives on): later requests get
        UNKNOWN_METHOD. Requests already running finish."""
        self._handlers.pop(method, None)

    def handler(self, method: int) -> Handler | None:
        return self._handlers.get(method)

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port): the port chosen by the kernel when 0 was asked."""
        if self._server is None:
            raise RuntimeError("rpc server not started")
        host, port = cast(asyncio.Server, self._server).sockets[0].getsockname()[:2]
        return str(host), int(port)

    @property
    def connections(self) -> int:
        return len(self._conns)

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("rpc server already started")
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _ServerConnection(self), self.host, self.port)
        self.log = self.log.bind(rpc_port=self.address[1])
        self.closed_log.log = self.failed_log.log = self.log

    async def stop(self) -> None:
        """Stop listening; requests still running are answered `SHUTTING_DOWN` and their handlers
        cancelled; connections close (aborted after `stop_grace_s` if the peer does not read)."""
        if self.stopping:
            return
        self.stopping = True
        if self._server is not None:
            self._server.close()
        conns = list(self._conns)
        tasks = [t for c in conns for t in c.shut_down()]
        if tasks:
            _done, stuck = await asyncio.wait(tasks, timeout=self.stop_grace_s)
            if stuck:  # a handler that swallows its cancellation: ours is a bug report
                self.log.error("rpc_handlers_ignore_cancel", count=len(stuck))
        lost = [c.lost for c in conns]
        if lost:
            _done, pending = await asyncio.wait(lost, timeout=self.stop_grace_s)
            for conn in conns:
                if not conn.lost.done() and conn.transport is not None:
                    conn.transport.abort()
            if pending:
                await asyncio.wait(pending, timeout=self.stop_grace_s)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> RpcServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _added(self, conn: _ServerConnection) -> None:
        self._conns.add(conn)

    def _removed(self, conn: _ServerConnection) -> None:
        self._conns.discard(conn)


class _ServerConnection(asyncio.Protocol):
    """One accepted connection on the server's core; ends when the peer closes, on bad bytes,
    or at `RpcServer.stop()`."""

    def __init__(self, server: RpcServer) -> None:
        self.server = server
        self.decoder = FrameDecoder(max_frame_bytes=server.max_frame_bytes,
                                    kinds=frozenset({FrameKind.REQUEST, FrameKind.ONE_WAY}))
        self.transport: asyncio.Transport | None = None
        self.writer: FrameWriter | None = None
        self.tasks: dict[asyncio.Future[Any], Frame] = {}
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closing = False
        self._read_paused = False
        self._write_paused = False

    # -- asyncio.Protocol -----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.writer = FrameWriter(self.transport)
        self.server._added(self)
        if self.server.stopping:
            self._closing = True
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self.server._removed(self)
        for task in self.tasks:
            task.cancel()
        if not self.lost.done():
            self.lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        try:
            self.decoder.feed(data)
        except RemoteProtocolError as exc:
            self._abort("bad_frame", exc)
            return
        self._drain()

    def eof_received(self) -> bool:
        # A client closes both ways at once: whatever still runs has no one to answer to.
        self.decoder.close()
        try:
            while self.decoder.next_frame() is not None:
                pass  # whole frames not yet run: their sender is gone
        except RemoteProtocolError as exc:
            self._abort("truncated_frame", exc)
            return False
        self._closing = True
        for task in self.tasks:
            task.cancel()
        return False

    def pause_writing(self) -> None:
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._update_reading()

    # -- requests -------------------------------------------------------------------------------
    def _drain(self) -> None:
        """Run the frames buffered, while fewer than the bound of handlers run (the rest wait in
        the decoder, reading paused, until one finishes)."""
        bound = self.server.max_handlers_per_connection
        try:
            while not self._is_closing() and len(self.tasks) < bound:
                frame = self.decoder.next_frame()
                if frame is None:
                    break
                self._on_frame(frame)
        except RemoteProtocolError as exc:
            self._abort("bad_frame", exc)
            return
        self._update_reading()

    def _on_frame(self, frame: Frame) -> None:
        if self.server.stopping:
            self._respond_error(frame, Status.SHUTTING_DOWN, "server shutting down")
            return
        handler = self.server.handler(frame.method)
        if handler is None:
            if frame.kind is FrameKind.ONE_WAY:
                self.server.failed_log.record("unknown_method", method=frame.method)
            self._respond_error(frame, Status.UNKNOWN_METHOD, f"unknown method {frame.method}")
            return
        try:
            result = handler(frame.payload)
        except Exception as exc:
            self._handler_failed(frame, exc)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self.tasks[task] = frame
            task.add_done_callback(self._handler_done)
        else:
            self._respond(frame, result)

    def _handler_done(self, task: asyncio.Future[Buffer | None]) -> None:
        frame = self.tasks.pop(task, None)
        if frame is None or task.cancelled():
            return  # cancelled at stop (answered there) or when the connection went
        exc = task.exception()
        if exc is not None:
            self._handler_failed(frame, exc)
        else:
            self._respond(frame, task.result())
        self._drain()

    def _handler_failed(self, frame: Frame, exc: BaseException) -> None:
        # Summarised: a handler failing on every request must not cost a log line each.
        self.server.failed_log.record(type(exc).__name__, method=frame.method, error=repr(exc))
        self._respond_error(frame, Status.HANDLER_ERROR, f"{type(exc).__name__}: {exc}")

    def _respond(self, frame: Frame, result: object) -> None:
        """`result`: what the handler returned, checked here (Python does not check it)."""
        if frame.kind is not FrameKind.REQUEST or self._closing or self.writer is None:
            return
        payload = b"" if result is None else result
        if not isinstance(payload, bytes | bytearray | memoryview):
            self._handler_failed(frame, TypeError(
                f"handler returned {type(payload).__name__}, not bytes"))
            return
        size = payload.nbytes if isinstance(payload, memoryview) else len(payload)
        if size > self.server.max_frame_bytes:
            self._respond_error(frame, Status.TOO_LARGE, f"response of {size} bytes above"
                                f" max_frame_bytes {self.server.max_frame_bytes}")
            return
        self.writer.write(FrameKind.RESPONSE, frame.method, frame.correlation_id, payload)

    def _respond_error(self, frame: Frame, status: Status, message: str) -> None:
        if frame.kind is not FrameKind.REQUEST or self._closing or self.writer is None:
            return
        self.writer.write(FrameKind.RESPONSE, frame.method, frame.correlation_id,
                          error_payload(message), status)

    # -- lifecycle ------------------------------------------------------------------------------
    def shut_down(self) -> list[asyncio.Future[Any]]:
        """At server stop: answer what still runs with SHUTTING_DOWN, cancel it, close. Returns
        the cancelled tasks for the server to await."""
        tasks = list(self.tasks)
        for task, frame in list(self.tasks.items()):
            self._respond_error(frame, Status.SHUTTING_DOWN, "server shutting down")
            task.cancel()
        self.tasks.clear()
        if not self._closing:
            self._closing = True
            if self.writer is not None:
                self.writer.flush()  # the SHUTTING_DOWN answers go out before the close
            if self.transport is not None:
                self.transport.close()
        return tasks

    def _is_closing(self) -> bool:
        return self._closing

    def _abort(self, why: str, exc: BaseException) -> None:
        if not self._closing:
            peer = None if self.transport is None else self.transport.get_extra_info("peername")
            self.server.closed_log.record(why, peer=str(peer), error=str(exc))
        self._closing = True
        for task in self.tasks:
            task.cancel()
        if self.transport is not None:
            self.transport.abort()

    def _update_reading(self) -> None:
        t = self.transport
        if t is None or self._closing:
            return
        stop = self._write_paused or len(self.tasks) >= self.server.max_handlers_per_connection
        if stop != self._read_paused:
            self._read_paused = stop
            if stop:
                t.pause_reading()
            else:
                t.resume_reading()
