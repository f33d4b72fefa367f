"""The partition-leader actor with its replicate-batcher and a real disk writer and log, on one
loop: two-phase produce (sequenced at once, acknowledged per acks level), acks=all only once
durable, reads bounded by the high watermark, the long-poll notifier, the push of new batches to
a core whose remote read found nothing, idempotent retries, and
the producer state rebuilt from the log when it is reopened."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from redshank.actors._async import resolve
from redshank.actors.disk_writer import DiskWriter, OpenPartition
from redshank.actors.partition_leader import PartitionLeader, Ready
from redshank.actors.runtime import Staged
from redshank.actors.watermarks import HighWatermark
from redshank.cluster.partition.api import (
    Append,
    PartitionResult,
    ProducerBatch,
    QueryOffset,
    Read,
    WaitForData,
)
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.records import Record, build_batch, iter_records
from redshank.storage import BatchCache, FlushCoordinator, LogConfig


def _batch(values: list[bytes], producer_id: int = -1, seq: int = -1) -> bytes:
    return build_batch([Record(i, 1000 + i, None, v) for i, v in enumerate(values)],
                       producer_id=producer_id, producer_epoch=0 if producer_id >= 0 else -1,
                       base_sequence=seq)


def _run(tmp: Path, body: Callable[[Any, Any, FlushCoordinator], Awaitable[None]]) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        coordinator = FlushCoordinator()
        writer = DiskWriter.start(coordinator, BatchCache(1 << 20))
        opened = await writer.ask(OpenPartition(str(tmp / "p0"), LogConfig()), block=False)
        log = opened.log
        leader = PartitionLeader.start("t", 0, opened, coordinator, writer, loop)
        assert await resolve(leader.ask(Ready(), block=False)) is True
        try:
            await body(leader, log, coordinator)
        finally:
            await leader.stop(block=False)
            await writer.stop(block=False)

    asyncio.run(asyncio.wait_for(main(), 30))


def test_two_phase_produce_acks_levels_and_high_watermark(tmp_path: Path) -> None:
    async def body(leader: Any, log: Any, _c: FlushCoordinator) -> None:
        staged = await leader.ask(Append(_batch([b"a", b"b"]), -1, None), block=False)
        assert isinstance(staged, Staged) and staged.sequenced is None
        assert log.dirty_offset == 1  # sequenced = appended: its offsets are fixed
        result: PartitionResult = await staged.acked
        assert (result.error_code, result.base_offset) == (0, 0)
        assert log.flushed_offset >= 1  # acks=all answered only once durable
        one = await leader.ask(Append(_batch([b"c"]), 1, None), block=False)
        assert (await one.acked).base_offset == 2
        read = await resolve(leader.ask(Read(0, 1 << 20, -1, True), block=False))
        assert read.error_code == 0
        deadline = asyncio.get_running_loop().time() + 5
        while read.high_watermark < 3 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)  # acks=1 is visible once its flush lands
            read = await resolve(leader.ask(Read(0, 1 << 20, -1, True), block=False))
        assert read.high_watermark == 3
        assert [r.value for r in iter_records(read.records)] == [b"a", b"b"]
        out = await resolve(leader.ask(Read(9, 100, -1, True), block=False))
        assert out.error_code == ErrorCode.OFFSET_OUT_OF_RANGE
        latest = await resolve(leader.ask(QueryOffset(-1), block=False))
        assert latest.offset == 3

    _run(tmp_path, body)


def test_long_poll_wakes_on_new_data_and_times_out(tmp_path: Path) -> None:
    async def body(leader: Any, _log: Any, _c: FlushCoordinator) -> None:
        loop = asyncio.get_running_loop()
        timed_out = await resolve(leader.ask(WaitForData(0, 50), block=False))
        assert timed_out is False
        parked = asyncio.ensure_future(resolve(leader.ask(WaitForData(0, 10_000), block=False)))
        await asyncio.sleep(0.05)
        assert not parked.done()
        started = loop.time()
        await (await leader.ask(Append(_batch([b"x"]), -1, None), block=False)).acked
        assert await asyncio.wait_for(parked, 5) is True
        assert loop.time() - started < 5  # woken by the high watermark, not the 10 s timeout

    _run(tmp_path, body)


def test_a_remote_read_at_the_end_arms_one_push_of_the_new_batches(tmp_path: Path) -> None:
    told: list[tuple[int, HighWatermark]] = []
    topic_id = uuid.uuid4()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        coordinator = FlushCoordinator()
        writer = DiskWriter.start(coordinator, BatchCache(1 << 20))
        opened = await writer.ask(OpenPartition(str(tmp_path / "p0"), LogConfig()), block=False)
        leader = PartitionLeader.start("t", 0, opened, coordinator, writer, loop, False,
                                       lambda core, msg: told.append((core, msg)), topic_id)
        await resolve(leader.ask(Ready(), block=False))
        try:
            # Core 1 read remotely and found nothing: armed. Core 0 read locally: subscribed
            # only (a local read is no round trip, nothing to save).
            empty = await resolve(leader.ask(Read(0, 1 << 20, -1, True, 1), block=False))
            assert (empty.error_code, empty.records) == (0, b"")
            await resolve(leader.ask(Read(0, 1 << 20, -1, False, 0), block=False))
            await (await leader.ask(Append(_batch([b"a", b"b"]), -1, None), block=False)).acked
            await (await leader.ask(Append(_batch([b"c"]), -1, None), block=False)).acked
        finally:
            await leader.stop(block=False)
            await writer.stop(block=False)

    asyncio.run(asyncio.wait_for(main(), 30))
    to_one = [m for core, m in told if core == 1]
    assert [m.high_watermark for m in to_one] == [2, 3]
    pushed = to_one[0].pushed
    assert pushed is not None and to_one[1].pushed is None  # once per arming read
    assert (pushed.topic_id, pushed.base_offset, pushed.high_watermark) == (topic_id, 0, 2)
    assert pushed.stable  # no transaction: a read_committed fetch may take it too
    assert [r.value for r in iter_records(pushed.records)] == [b"a", b"b"]
    assert all(m.pushed is None for core, m in told if core == 0)


def test_idempotent_retry_gets_original_offset_and_survives_reopen(tmp_path: Path) -> None:
    batch = _batch([b"p", b"q"], producer_id=42, seq=0)
    producer = ProducerBatch(42, 0, 0, 1)

    async def first(leader: Any, _log: Any, _c: FlushCoordinator) -> None:
        await (await leader.ask(Append(_batch([b"other"]), -1, None), block=False)).acked
        a = await (await leader.ask(Append(batch, -1, producer), block=False)).acked
        again = await (await leader.ask(Append(batch, -1, producer), block=False)).acked
        assert a.base_offset == again.base_offset == 1 and again.error_code == 0
        gap = await (await leader.ask(
            Append(_batch([b"z"], 42, 7), -1, ProducerBatch(42, 0, 7, 7)), block=False)).acked
        assert gap.error_code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER

    async def reopened(leader: Any, log: Any, _c: FlushCoordinator) -> None:
        retry = await (await leader.ask(Append(batch, -1, producer), block=False)).acked
        assert (retry.error_code, retry.base_offset) == (0, 1)
        assert log.dirty_offset == 2  # nothing appended twice

    _run(tmp_path, first)
    _run(tmp_path, reopened)


def test_produce_memory_semaphore_blocks_until_release() -> None:
    from redshank.actors.flow_control import ByteSemaphore

    async def main() -> None:
        sem = ByteSemaphore(100)
        await sem.acquire(60)
        await sem.acquire(40)
        waiting = asyncio.ensure_future(sem.acquire(10))
        await asyncio.sleep(0.01)
        assert not waiting.done() and sem.used == 100
        sem.release(60)
        await asyncio.wait_for(waiting, 5)
        assert sem.used == 50
        sem.release(50)
        await sem.acquire(500)  # alone, a request above the limit still passes
        assert sem.used == 500

    asyncio.run(asyncio.wait_for(main(), 10))
