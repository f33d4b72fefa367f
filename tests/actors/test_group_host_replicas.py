"""Three replicas of one `__consumer_offsets` partition, each a `GroupHost` actor (its own disk
writer and flush coordinator, one event loop), their Raft messages carried by an in-process
hub: only the replica that leads (an entry of its term committed) coordinates, once it has
replayed the log; the others answer NOT_COORDINATOR. A commit is answered once committed on a
majority; when the leader stops, another replica leads, replays and serves the committed
offsets, and a new commit through it is answered."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pykka

from redshank.actors._async import resolve
from redshank.actors.disk_writer import DiskWriter, OpenPartition
from redshank.actors.group_host import GroupCall, GroupHost
from redshank.actors.partition_host import Replicas
from redshank.actors.partition_leader import ReplicaStatus
from redshank.cluster.group import (
    GroupConfig,
    OffsetCommitPartition,
    OffsetCommitRequest,
    OffsetCommitResult,
    OffsetFetchGroup,
    OffsetFetchRequest,
    OffsetFetchResult,
)
from redshank.cluster.raft.types import Message, NodeId
from redshank.protocol.error_codes import ErrorCode
from redshank.storage import BatchCache, FlushCoordinator, LogConfig

VOTERS = frozenset(NodeId(n) for n in (1, 2, 3))
DEADLINE_S = 20.0
GROUP = "g"  # partition 0 of 1


async def wait_for(what: str, cond: Callable[[], Any]) -> Any:
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while not (got := await cond()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not within {DEADLINE_S} s")
        await asyncio.sleep(0.01)  # a condition the hosts' timers move; bounded above
    return got


def commit(offset: int) -> GroupCall:
    return GroupCall(OffsetCommitRequest(0, GROUP, (OffsetCommitPartition("t", 0, offset),)))


FETCH = GroupCall(OffsetFetchRequest(0, (OffsetFetchGroup(GROUP, (("t", (0,)),)),)))


def test_only_the_leader_coordinates_and_a_new_one_replays(tmp_path: Path) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        refs: dict[int, pykka.ActorRef[Any]] = {}
        stopped: set[int] = set()
        writers = []

        def replicas(src: int) -> Replicas:
            def send(messages: list[Message]) -> None:
                for m in messages:
                    dst = int(m.dst)
                    if src not in stopped and dst not in stopped:
                        refs[dst].tell(m)
            return Replicas(NodeId(src), VOTERS, send, tick_s=0.01, seed=src)

        async def active() -> list[int]:
            out = []
            for n, ref in refs.items():
                if n not in stopped and (await ref.ask(ReplicaStatus(), block=False))[
                        "coordinator"] == "active":
                    out.append(n)
            return out if len(out) == 1 else []

        try:
            for n in (1, 2, 3):
                flush = FlushCoordinator()
                writer = DiskWriter.start(flush, BatchCache(1 << 20))
                writers.append(writer)
                opened = await writer.ask(OpenPartition(str(tmp_path / f"n{n}"), LogConfig()),
                                          block=False)
                refs[n] = GroupHost.start(0, 1, opened, flush, writer, loop, GroupConfig(), [],
                                          replicas=replicas(n))

            (first,) = await wait_for("one coordinator", active)
            for n, ref in refs.items():
                result = await resolve(ref.ask(commit(7), block=False))
                assert isinstance(result, OffsetCommitResult)
                want = ErrorCode.NONE if n == first else ErrorCode.NOT_COORDINATOR
                assert [p.error for p in result.partitions] == [want], (n, result)
            fetched = await resolve(refs[first].ask(FETCH, block=False))
            assert isinstance(fetched, OffsetFetchResult)
            assert [p.offset for p in fetched.groups[0].partitions] == [7]

            stopped.add(first)
            await refs[first].stop(block=False)
            (second,) = await wait_for("a new coordinator", active)
            assert second != first
            fetched = await resolve(refs[second].ask(FETCH, block=False))
            assert [p.offset for p in fetched.groups[0].partitions] == [7]  # replayed
            result = await resolve(refs[second].ask(commit(9), block=False))
            assert [p.error for p in result.partitions] == [ErrorCode.NONE]
            # The third replica follows: its log ends where the new leader's does.
            third = next(n for n in refs if n not in (first, second))

            async def caught_up() -> bool:
                ends = [(await refs[n].ask(ReplicaStatus(), block=False))["log_end"]
                        for n in (second, third)]
                return ends[0] == ends[1] > 0
            await wait_for(f"replica {third} caught up", caught_up)
        finally:
            for n, ref in refs.items():
                if n not in stopped:
                    await ref.stop(block=False)
            for w in writers:
                await w.stop(block=False)

    asyncio.run(asyncio.wait_for(main(), 60))
