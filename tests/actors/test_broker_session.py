"""The kafka-session's frame deadline: a request that starts arriving and never completes closes
its connection; an idle connection and a complete request do not trip it."""

from __future__ import annotations

import asyncio
import struct
from types import SimpleNamespace
from typing import Any, cast

from redshank.actors.flow_control import SMALL_REQUEST, RequestMemory
from redshank.actors.frontend import SERVED
from redshank.actors.kafka_session import KafkaSession


class _Transport:
    def __init__(self) -> None:
        self.aborted = False
        self.paused = False
        self.written = b""

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        self.aborted = True

    def write(self, data: bytes) -> None:
        self.written += data

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


def _host(**kw: Any) -> Any:
    """A fake `SessionHost`: the real served keys, Produce two-phase, and what `kw` adds."""
    kw.setdefault("sessions", 0)
    kw.setdefault("request_memory", RequestMemory(1 << 20))
    return cast(Any, SimpleNamespace(served=SERVED, two_phase=frozenset({0}), **kw))


def _session(deadline: float) -> tuple[KafkaSession, _Transport]:
    core = _host()
    session = KafkaSession(core, frame_deadline_s=deadline)
    transport = _Transport()
    session.connection_made(cast(Any, transport))
    return session, transport


def test_partial_frame_past_deadline_closes_the_connection() -> None:
    async def main() -> None:
        session, transport = _session(0.05)
        session.data_received(struct.pack(">i", 100) + b"\x00\x12")  # 2 of 100 bytes
        await asyncio.sleep(0.2)
        assert transport.aborted

    asyncio.run(asyncio.wait_for(main(), 10))


def test_idle_connection_is_not_closed() -> None:
    async def main() -> None:
        session, transport = _session(0.05)
        await asyncio.sleep(0.2)
        assert not transport.aborted
        session.connection_lost(None)

    asyncio.run(asyncio.wait_for(main(), 10))


def test_complete_requests_are_answered_and_do_not_trip_the_deadline() -> None:
    from redshank.cluster.kafka.handlers import api_versions
    from redshank.protocol.messages.api_versions import ApiVersionsRequest
    from redshank.protocol.messages.request_header import RequestHeader

    async def main() -> None:
        session, transport = _session(0.05)
        session.core = _host(
            sessions=1, handle=lambda _key, version, request, _client: api_versions.handle(
                request, version, SERVED))
        body = RequestHeader(18, 0, 5, "t").encode(1) + ApiVersionsRequest().encode(0)
        frame = struct.pack(">i", len(body)) + body
        session.data_received(frame + frame[:3])  # one whole request, the next one started
        await asyncio.sleep(0.01)
        session.data_received(frame[3:])
        await asyncio.sleep(0.2)
        assert not transport.aborted
        data, ids = transport.written, []
        while data:
            size, corr = struct.unpack(">ii", data[:8])
            ids.append(corr)
            data = data[4 + size:]
        assert ids == [5, 5]  # both requests answered, in order
        session.connection_lost(None)

    asyncio.run(asyncio.wait_for(main(), 10))


def test_a_request_that_fails_before_its_handler_closes_only_the_connection() -> None:
    from redshank.protocol.messages.metadata import MetadataRequest
    from redshank.protocol.messages.request_header import RequestHeader

    def broken(_key: int, _version: int, _request: Any, _client: str) -> Any:
        raise RuntimeError("bug on the way to a handler")

    async def main() -> None:
        session, transport = _session(5.0)
        # Every request path raises synchronously (a bug before any future).
        session.core = _host(sessions=1, handle=broken)
        body = RequestHeader(3, 1, 7, "t").encode(1) + MetadataRequest().encode(1)
        session.data_received(struct.pack(">i", len(body)) + body)
        for _ in range(100):  # bounded: the abort happens within a few loop turns
            if transport.aborted:
                break
            await asyncio.sleep(0.01)
        assert transport.aborted and transport.written == b""

    asyncio.run(asyncio.wait_for(main(), 10))


def test_request_memory_pauses_big_holders_only_while_over_and_wakes_them() -> None:
    memory = RequestMemory(1 << 20)
    woken: list[str] = []
    memory.adjust(900_000)  # session a
    assert not memory.must_wait(900_000)  # under the limit
    memory.adjust(400_000)  # session b: over now
    assert memory.must_wait(900_000) and memory.must_wait(400_000)
    assert not memory.must_wait(SMALL_REQUEST)  # small requests always flow
    memory.wait(1, lambda: woken.append("a"))
    memory.wait(2, lambda: woken.append("b"))
    memory.forget(2)
    memory.adjust(-100_000)  # still over: nobody wakes
    assert woken == []
    memory.adjust(-400_000)
    assert woken == ["a"] and memory.used == 800_000


def test_request_memory_never_makes_a_session_wait_on_its_own_bytes() -> None:
    memory = RequestMemory(1 << 20)
    memory.adjust(5 << 20)  # one request larger than the limit, alone
    assert not memory.must_wait(5 << 20)
    memory.adjust(200_000)  # someone else arrives: both wait now
    assert memory.must_wait(5 << 20) and memory.must_wait(200_000)


def test_session_counts_its_buffered_bytes_stops_reading_when_over_and_gives_them_back() -> None:
    async def main() -> None:
        a, ta = _session(30)
        b, tb = _session(30)
        memory = RequestMemory(1 << 20)
        a.core = b.core = _host(sessions=2, request_memory=memory)
        a.data_received(struct.pack(">i", 4 << 20) + b"\0" * 700_000)  # a frame begun
        await asyncio.sleep(0)
        assert memory.used == 700_004 and not ta.paused
        b.data_received(struct.pack(">i", 4 << 20) + b"\0" * 500_000)
        await asyncio.sleep(0)
        assert memory.used == 1_200_008 and tb.paused
        a.data_received(b"\0" * 1000)  # a is over too now (its next read was already due)
        await asyncio.sleep(0)
        assert ta.paused
        b.connection_lost(None)  # b goes: its bytes are given back and a reads again
        assert memory.used == 701_004 and not ta.paused
        a.connection_lost(None)
        assert memory.used == 0

    asyncio.run(main())


def test_idle_timeout_spares_a_request_in_flight_and_closes_once_idle() -> None:
    """connections.max.idle.ms: idle means nothing in flight and no traffic for `idle_s`; a
    long request (a parked fetch) keeps its connection, which closes `idle_s` after its
    answer."""
    from redshank.cluster.kafka.handlers import metadata as metadata_h
    from redshank.protocol.messages.metadata import MetadataRequest
    from redshank.protocol.messages.request_header import RequestHeader

    async def main() -> None:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Any] = loop.create_future()

        async def parked(_request: Any, _version: int) -> Any:
            return await answer

        class ParkedCore:  # every request parks until `answer` is set
            sessions = 0
            request_memory = RequestMemory(1 << 20)
            served = SERVED
            two_phase = frozenset({0})

            def handle(self, _key: int, version: int, request: Any, _client: str) -> Any:
                return parked(request, version)

        session = KafkaSession(cast(Any, ParkedCore()), idle_s=0.05)
        transport = _Transport()
        session.connection_made(cast(Any, transport))
        body = RequestHeader(3, 1, 9, "t").encode(1) + MetadataRequest().encode(1)
        session.data_received(struct.pack(">i", len(body)) + body)
        await asyncio.sleep(0.3)  # six idle periods with the request in flight
        assert not transport.aborted
        answered_at = loop.time()
        q = metadata_h.query(MetadataRequest(), 1, False)
        answer.set_result(metadata_h.build(MetadataRequest(), 1,
                                           metadata_h.BrokerAddress(0, "h", 1), "c", q, {}))
        deadline = answered_at + 5
        while not transport.aborted:  # closed once idle after the answer, within bounds
            assert loop.time() < deadline
            await asyncio.sleep(0.01)
        assert transport.written  # the answer went out first
        assert loop.time() - answered_at >= 0.04
        session.connection_lost(None)

    asyncio.run(asyncio.wait_for(main(), 10))
