"""The partition host under a burst bigger than the replicate batcher's memory (1 MiB): the
appends the batcher cannot take yet wait in the host, in order, and are made as writes free
memory; every one is acknowledged at consecutive offsets (before, the ones past the memory were
answered NOT_LEADER_OR_FOLLOWER, and an acks=0 producer lost them without a word)."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from pathlib import Path

import pytest

from redshank.actors.disk_writer import DiskWriter, OpenPartition
from redshank.actors.partition_host import PartitionHost
from redshank.cluster.partition.api import Append, PartitionResult
from redshank.protocol.records import BatchBuilder
from redshank.storage import BatchCache, FlushCoordinator, LogConfig


def batch(size: int) -> bytearray:
    b = BatchBuilder()
    for _ in range(4):
        b.append(bytes(size // 4), timestamp=1000)
    return bytearray(b.build())


@pytest.mark.parametrize("acks", [-1, 1, 0])
def test_a_burst_past_the_batcher_memory_waits_in_order(tmp_path: Path, acks: int) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        coordinator = FlushCoordinator()
        writer = DiskWriter.start(coordinator, BatchCache(1 << 20))
        answers: dict[Hashable, PartitionResult] = {}
        try:
            opened = await writer.ask(OpenPartition(str(tmp_path / "p"), LogConfig()),
                                      block=False)
            host = PartitionHost(opened, coordinator, writer, loop,
                                 on_answer=answers.__setitem__,
                                 on_high_watermark=lambda hw: None,
                                 on_flush_failed=lambda exc: pytest.fail(repr(exc)))
            while not host.part.is_ready_leader():
                await asyncio.sleep(0.005)  # its own term's no-op commits (one flush)
            for i in range(48):  # 48 x 64 KiB in one loop turn: 3 MiB
                res = host.append(Append(batch(64 * 1024), acks, None), i)
                if res is not None:
                    answers[i] = res
            deadline = loop.time() + 20
            while len(answers) < 48 and loop.time() < deadline:
                await asyncio.sleep(0.01)  # bounded: the writes free memory for the rest
            assert sorted(answers) == list(range(48))
            assert [answers[i].error_code for i in range(48)] == [0] * 48
            assert [answers[i].base_offset for i in range(48)] == [4 * i for i in range(48)]
            host.stop()
        finally:
            await writer.stop(block=False)

    asyncio.run(asyncio.wait_for(main(), 60))


def test_stopping_answers_every_produce_still_waiting(tmp_path: Path) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        coordinator = FlushCoordinator()
        writer = DiskWriter.start(coordinator, BatchCache(1 << 20))
        answers: dict[Hashable, PartitionResult] = {}
        try:
            opened = await writer.ask(OpenPartition(str(tmp_path / "p"), LogConfig()),
                                      block=False)
            host = PartitionHost(opened, coordinator, writer, loop,
                                 on_answer=answers.__setitem__,
                                 on_high_watermark=lambda hw: None,
                                 on_flush_failed=lambda exc: pytest.fail(repr(exc)))
            while not host.part.is_ready_leader():
                await asyncio.sleep(0.005)
            for i in range(24):  # past the batcher's memory: some wait in the host's backlog
                assert host.append(Append(batch(64 * 1024), -1, None), i) is None
            host.stop()  # before any flush: every one is still waiting
            assert sorted(answers) == list(range(24))
            assert {a.error_code for a in answers.values()} == {6}  # NOT_LEADER_OR_FOLLOWER
        finally:
            await writer.stop(block=False)

    asyncio.run(asyncio.wait_for(main(), 60))
