"""The kafka-session of one connection: bytes in, handlers run, responses out in request order.

Concern: one accepted connection on the core that accepted it. It feeds the sans-IO
`KafkaServerConnection`, dispatches each request to its core (`SessionHost`, which the frontends'
`CoreServices` is), and writes responses as they become sendable (the connection keeps them in
request order, notes G3). Several requests are in
flight at once; a produce holds the next request back only until it is *sequenced* (phase 1: its
appends are in their owners' FIFOs, with no round trip to them), so its partitions' order is the
connection's order. Bounded: reading pauses while too many
responses are pending, while the dispatcher is behind, or while the socket's write buffer is
full. Bad input (framing, undecodable request, unsupported API) closes this connection only, and
so does idleness (Kafka's connections.max.idle.ms): no request in flight and no bytes received
or answered for `idle_s`. Closures are logged summarised (one line, then counts by reason per
interval: a flood of bad clients must not cost a line each). Must not know: partitions, logs,
other connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable
from time import perf_counter_ns
from typing import Any, Protocol, cast

import structlog

from redshank.actors._log_summary import LogSummary
from redshank.actors.kafka_probe import kafka_probe
from redshank.protocol.connection import (
    NEED_DATA,
    ApiVersionsFallback,
    ConnectionClosed,
    KafkaServerConnection,
    LocalProtocolError,
    RemoteProtocolError,
    RequestReceived,
    UnsupportedRequest,
)

__all__ = ["KafkaSession", "RequestBudget", "SessionHost"]

MAX_IN_FLIGHT = 32  # responses pending per connection before reading pauses
MAX_UNREAD = 1 << 20  # bytes buffered while the dispatcher is busy before reading pauses
MAX_FRAME = 100 * 1024 * 1024
# A request that has started arriving must complete within this time (slow or stuck senders
# hold memory); an idle connection between requests is fine.
FRAME_DEADLINE_S = 30.0
DEADLINE_RECHECK_S = 1.0

_log = structlog.get_logger("redshank.session")
# Per core process: the first closure is logged at once, then counts by reason per interval.
_closed_log = LogSummary(_log, "connection_closed")
_failed_log = LogSummary(_log, "request_failed", level="error")


class RequestBudget(Protocol):
    """The core's bound on undecoded request bytes (the broker's `RequestMemory`)."""

    def adjust(self, delta: int) -> None: ...

    def must_wait(self, holds: int) -> bool: ...

    def wait(self, key: int, wake: Callable[[], None]) -> None: ...

    def forget(self, key: int) -> None: ...


class SessionHost(Protocol):
    """What a session needs of its core (the frontends' `CoreServices`): the session count, the
    request memory bound, the APIs served (and which are two-phase), and a request's answer by
    API key. The session knows nothing else of the broker, so the broker may import it, not
    the reverse."""

    sessions: int

    @property
    def request_memory(self) -> RequestBudget: ...

    @property
    def served(self) -> frozenset[int]:
        """The API keys a request is answered for (what ApiVersions advertises)."""

    @property
    def two_phase(self) -> frozenset[int]:
        """The served keys (Produce) whose answer completes once the request's order is fixed
        (phase 1), with the future of its response (phase 2)."""

    def handle(self, api_key: int, version: int, request: Any, client_id: str) -> object:
        """The response now, or an awaitable of it; for a two-phase key, an awaitable of the
        response's future."""


class KafkaSession(asyncio.Protocol):
    def __init__(self, core: SessionHost, frame_deadline_s: float = FRAME_DEADLINE_S,
                 idle_s: float | None = None) -> None:
        self.core = core
        self.frame_deadline_s = frame_deadline_s
        self.idle_s = idle_s  # None: idle connections stay open
        self._idle_timer: asyncio.TimerHandle | None = None
        self._last_active = 0.0  # loop time of the last bytes received or response written
        self._frames = 0  # events taken from the connection: progress, for the deadline
        self._deadline: asyncio.TimerHandle | None = None
        self.conn = KafkaServerConnection(max_frame_size=MAX_FRAME)
        self.transport: asyncio.Transport | None = None
        self._dispatching = False
        self._reading_paused = False
        self._writing_paused = False
        self._closed = False
        self._peer_done = False  # the peer closed its side: close ours once all is answered
        self._tasks: set[asyncio.Future[Any]] = set()
        self._counted = 0  # this connection's bytes in the core's request memory
        self._memory_wait = False  # reading stopped until the core's request memory frees
        self._probe = kafka_probe()  # requests and latency into the core's stats block

    # -- asyncio.Protocol -----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.core.sessions += 1
        if self.idle_s is not None:
            loop = asyncio.get_running_loop()
            self._last_active = loop.time()
            self._idle_timer = loop.call_later(self.idle_s, self._idle_check)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._deadline is not None:
            self._deadline.cancel()
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self.core.sessions -= 1
        self._account()
        for task in self._tasks:
            task.cancel()

    def data_received(self, data: bytes) -> None:
        if self.idle_s is not None:
            self._last_active = asyncio.get_running_loop().time()
        try:
            self.conn.receive_data(data)
        except RemoteProtocolError as exc:
            self._abort("bad_frame", exc)
            return
        self._account()
        self._kick()
        self._arm_deadline()

    def _arm_deadline(self) -> None:
        if self._deadline is None and self.conn.buffered_bytes and not self._closed:
            loop = asyncio.get_running_loop()
            self._deadline = loop.call_later(self.frame_deadline_s, self._deadline_hit,
                                             self._frames)

    def _deadline_hit(self, frames_then: int) -> None:
        self._deadline = None
        if self._closed or not self.conn.buffered_bytes:
            return
        if self._frames != frames_then:
            self._arm_deadline()  # progress: a new window
            return
        if self._reading_paused and not self._memory_wait:
            # Our own backpressure holds the bytes back (responses unread, a request still
            # being handled): look again soon, counting from the same start.
            self._deadline = asyncio.get_running_loop().call_later(
                DEADLINE_RECHECK_S, self._deadline_hit, frames_then)
            return
        self._abort("frame_deadline")  # no whole request in all that time

    def _idle_check(self) -> None:
        """Kafka's connections.max.idle.ms: close a connection that has had nothing in flight
        and no traffic for `idle_s`; else look again when it could first be that idle."""
        self._idle_timer = None
        if self._closed or self.transport is None or self.idle_s is None:
            return
        loop = asyncio.get_running_loop()
        busy = self.conn.pending_responses > 0 or self.conn.buffered_bytes > 0
        idle_for = loop.time() - self._last_active
        if not busy and idle_for >= self.idle_s:
            _closed_log.record("idle", idle_s=self.idle_s)
            self._closed = True
            self.transport.close()
            return
        # Not below 5 ms: uvloop's clock has millisecond steps, a shorter wait could spin.
        wait = self.idle_s if busy else max(self.idle_s - idle_for, 0.005)
        self._idle_timer = loop.call_later(wait, self._idle_check)

    def eof_received(self) -> bool | None:
        with contextlib.suppress(RemoteProtocolError):
            self.conn.receive_data(b"")
        self._kick()
        return True  # keep our side open until pending responses are written

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._update_reading()

    # -- flow control ---------------------------------------------------------------------------
    def _account(self) -> None:
        """Bring the core's request memory up to date with what this connection buffers."""
        held = 0 if self._closed else self.conn.buffered_bytes
        if held != self._counted:
            delta, self._counted = held - self._counted, held
            self.core.request_memory.adjust(delta)
        if self._closed and self._memory_wait:
            self._memory_wait = False
            self.core.request_memory.forget(id(self))

    def _memory_freed(self) -> None:
        self._memory_wait = False
        self._update_reading()

    def _update_reading(self) -> None:
        t = self.transport
        if t is None or self._closed:
            return
        memory = self.core.request_memory
        if memory.must_wait(self._counted):
            if not self._memory_wait:
                self._memory_wait = True
                memory.wait(id(self), self._memory_freed)
        elif self._memory_wait:
            self._memory_wait = False
            memory.forget(id(self))
        stop = (
            self._writing_paused
            or self._memory_wait
            or self.conn.pending_responses >= MAX_IN_FLIGHT
            or (self._dispatching and self.conn.buffered_bytes >= MAX_UNREAD)
        )
        if stop and not self._reading_paused:
            self._reading_paused = True
            t.pause_reading()
        elif not stop and self._reading_paused:
            self._reading_paused = False
            t.resume_reading()

    def _abort(self, why: str, exc: BaseException | None = None) -> None:
        if not self._closed:
            _closed_log.record(why, error=None if exc is None else str(exc))
        self._closed = True
        if self.transport is not None:
            self.transport.abort()

    def _write(self, data: bytes) -> None:
        if data and not self._closed and self.transport is not None:
            self.transport.write(data)
            if self.idle_s is not None:
                self._last_active = asyncio.get_running_loop().time()

    # -- dispatch -------------------------------------------------------------------------------
    def _kick(self) -> None:
        if not self._dispatching and not self._closed:
            self._dispatching = True
            task = asyncio.ensure_future(self._dispatch())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._update_reading()

    async def _dispatch(self) -> None:
        try:
            while not self._closed:
                try:
                    event = self.conn.next_event()
                except RemoteProtocolError as exc:
                    self._abort("bad_request", exc)
                    return
                if event is NEED_DATA:
                    return
                self._frames += 1
                self._account()
                if isinstance(event, RequestReceived):
                    try:
                        await self._start(event)
                    except Exception as exc:
                        # A bug on the way to a handler (not in it: `_track` answers those):
                        # this connection goes, loudly; the core and other connections stay.
                        self._fail(event, exc)
                        return
                elif isinstance(event, ApiVersionsFallback):
                    self._write(event.data)
                elif isinstance(event, UnsupportedRequest):
                    self._abort(f"unsupported api {event.api_key} v{event.api_version}")
                    return
                elif isinstance(event, ConnectionClosed):
                    self._peer_done = True
                    self._close_if_done()
                    return
                self._update_reading()
        finally:
            self._dispatching = False
            self._update_reading()

    async def _start(self, event: RequestReceived) -> None:
        key, core, started = event.api_key, self.core, perf_counter_ns()
        if key not in core.served:
            self._abort(f"api {key} not served")
            return
        answer = core.handle(key, event.api_version, event.request,
                             event.header.client_id or "")
        if key in core.two_phase:
            try:
                # Phase 1: the next request is read once this one's order is fixed.
                response = await cast("Awaitable[asyncio.Future[Any]]", answer)
            except Exception as exc:
                self._fail(event, exc)
                return
            self._track(event, response, started)
        elif inspect.isawaitable(answer):
            self._track(event, asyncio.ensure_future(answer), started)
        else:
            self._respond(event, answer, started)

    def _track(self, event: RequestReceived, fut: asyncio.Future[Any], started: int) -> None:
        self._tasks.add(fut)

        def done(f: asyncio.Future[Any]) -> None:
            self._tasks.discard(f)
            if f.cancelled() or self._closed:
                return
            exc = f.exception()
            if exc is not None:
                self._fail(event, exc)
            else:
                self._respond(event, f.result(), started)

        fut.add_done_callback(done)

    def _respond(self, event: RequestReceived, response: Any, started: int) -> None:
        if self._closed:
            return
        self._probe.request(event.api_key, response, started)
        if not event.expects_response:
            # acks=0: never a response (notes G4); a failed write closes the connection instead.
            if any(p.error_code for t in response.responses for p in t.partition_responses):
                self._abort("acks0_produce_failed")
            return
        try:
            self._write(self.conn.send_response(event.token, response))
        except RemoteProtocolError as exc:
            self._abort("connection_unusable", exc)
            return
        except LocalProtocolError as exc:  # a response we built wrongly: our bug, loudly
            self._fail(event, exc)
            return
        self._close_if_done()
        self._update_reading()

    def _close_if_done(self) -> None:
        if self._peer_done and self.conn.pending_responses == 0 and not self._closed:
            self._closed = True
            if self.transport is not None:
                self.transport.close()

    def _fail(self, event: RequestReceived, exc: BaseException) -> None:
        # A bug or a dead core behind this request: this connection goes, the core stays.
        _failed_log.record(type(exc).__name__, api_key=event.api_key,
                           api_version=event.api_version, error=repr(exc))
        self._abort("request_failed", exc)
