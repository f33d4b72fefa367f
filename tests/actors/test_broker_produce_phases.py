"""The produce frontend's two phases on one core: phase 1 ends once every append is
handed to its owner's FIFO, without waiting for the owner's SEQUENCED reply (ARCHITECTURE.md
section 3, "sequenced at enqueue"); a failure that comes later (the owner core dies with the
frame in its ring, the leader is gone) is answered in phase 2 as NOT_LEADER_OR_FOLLOWER, and
the partition is opened again by the next request. The owner's side is a pair of futures the
test completes: what the router hands back for a remote two-phase ask."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

from redshank.actors.broker import BrokerConfig
from redshank.actors.frontend import CoreServices
from redshank.actors.frontend.produce import produce_acked, route_writes
from redshank.actors.partition_leader import partition_name
from redshank.actors.runtime import CoreDiedError, LoopFuture
from redshank.cluster.kafka import TopicPartition
from redshank.cluster.kafka.handlers.produce import PartitionWrite
from redshank.cluster.partition.api import PartitionResult
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages.produce import (
    PartitionProduceData,
    ProduceRequest,
    TopicProduceData,
)


def _core(loop: asyncio.AbstractEventLoop) -> CoreServices:
    router = SimpleNamespace(core=0, ncores=2)
    ctx = SimpleNamespace(core=0, ncores=2, router=router, loop=loop)
    config = BrokerConfig("127.0.0.1", 0, "127.0.0.1", 0, "/nonexistent")
    return CoreServices(config, cast(Any, ctx))


def _request(partitions: int) -> ProduceRequest:
    return ProduceRequest(acks=-1, timeout_ms=1000, topic_data=(TopicProduceData("t", tuple(
        PartitionProduceData(p, b"x") for p in range(partitions))),))


def _writes(partitions: int) -> list[PartitionWrite]:
    return [PartitionWrite(TopicPartition("t", p), 1, b"x", None) for p in range(partitions)]


def test_phase_one_ends_at_enqueue_and_a_later_failure_is_answered_in_phase_two() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        core = _core(loop)
        handed: list[tuple[LoopFuture[Any], LoopFuture[Any]]] = []

        async def append_two_phase(w: PartitionWrite, acks: int
                                   ) -> tuple[LoopFuture[Any], LoopFuture[Any]]:
            pair: tuple[LoopFuture[Any], LoopFuture[Any]] = (LoopFuture(loop), LoopFuture(loop))
            handed.append(pair)  # in the owner's ring: no SEQUENCED reply comes back here
            return pair

        core.append_two_phase = append_two_phase  # type: ignore[method-assign]
        core.ensured.update(partition_name("t", p) for p in range(3))
        request = _request(3)
        results: dict[tuple[str, int], Any] = {}
        acked = await asyncio.wait_for(route_writes(core, request, _writes(3), results), 5)
        assert len(handed) == 3 and not any(seq.done() for seq, _ack in handed)
        assert [tp for tp, _ack in acked] == [("t", 0), ("t", 1), ("t", 2)]

        response = asyncio.ensure_future(produce_acked(core, request, results, acked, 0))
        handed[0][1].set(PartitionResult(0, 10))
        handed[1][1].fail(CoreDiedError(1, "killed with the frame in its ring"))
        handed[2][1].set(PartitionResult(0, 20))
        out = await asyncio.wait_for(response, 5)
        parts = out.responses[0].partition_responses
        assert [(p.error_code, p.base_offset) for p in parts] == [
            (0, 10), (ErrorCode.NOT_LEADER_OR_FOLLOWER, -1), (0, 20)]
        assert partition_name("t", 1) not in core.ensured  # reopened by the next request
        assert partition_name("t", 0) in core.ensured

    asyncio.run(main())
