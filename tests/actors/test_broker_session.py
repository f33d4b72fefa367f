"""The kafka-session's frame deadline: a request that starts arriving and never completes closes
its connection; an idle connection and a complete request do not trip it."""

from __future__ import annotations

import asyncio
import struct
from types import SimpleNamespace
from typing import Any, cast

from redshank.actors.kafka_session import KafkaSession


class _Transport:
    def __init__(self) -> None:
        self.aborted = False
        self.written = b""

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        self.aborted = True

    def write(self, data: bytes) -> None:
        self.written += data

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _session(deadline: float) -> tuple[KafkaSession, _Transport]:
    core = cast(Any, SimpleNamespace(sessions=0))
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
        session.core = cast(Any, SimpleNamespace(sessions=1, api_versions=api_versions.handle))
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
