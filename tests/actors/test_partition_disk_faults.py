"""The partition leader on a failing disk, through the fault-injecting file layer over real files:
an idempotent retry is answered only once its original is durable; a failed fdatasync fails
the waiters, refuses produces, reopens the log by recovery and serves again; a full disk
refuses produces, keeps reads and resumes when space returns, losing nothing it had taken."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from redshank.actors._async import resolve
from redshank.actors.disk_writer import DiskWriter, OpenPartition
from redshank.actors.partition_leader import PartitionLeader, Ready
from redshank.cluster.partition.api import Append, PartitionResult, ProducerBatch, Read
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.record_batch import iter_batches
from redshank.protocol.records import Record, build_batch, iter_records
from redshank.storage import BatchCache, FlushCoordinator, LogConfig
from redshank.storage.fault_files import ENV

DEADLINE_S = 10.0


def iter_records_all(data: bytes) -> list[Record]:
    return [r for pos, _h in iter_batches(data) for r in iter_records(data, pos)]


def _batch(values: list[bytes], producer_id: int = -1, seq: int = -1) -> bytes:
    return build_batch([Record(i, 1000 + i, None, v) for i, v in enumerate(values)],
                       producer_id=producer_id, producer_epoch=0 if producer_id >= 0 else -1,
                       base_sequence=seq)


class Faults:
    def __init__(self, path: Path) -> None:
        self.path = path

    def set(self, **spec: Any) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(spec))
        tmp.replace(self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def _run(tmp: Path, monkeypatch: pytest.MonkeyPatch,
         body: Callable[[Any, Faults, Any], Awaitable[None]]) -> None:
    faults = Faults(tmp / "faults.json")
    monkeypatch.setenv(ENV, str(faults.path))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        coordinator = FlushCoordinator()
        writer = DiskWriter.start(coordinator, BatchCache(1 << 20))
        opened = await writer.ask(OpenPartition(str(tmp / "p0"), LogConfig()), block=False)
        leader = PartitionLeader.start("t", 0, opened, coordinator, writer, loop)
        assert await resolve(leader.ask(Ready(), block=False)) is True
        try:
            await body(leader, faults, leader._actor_weakref())
        finally:
            await leader.stop(block=False)
            await writer.stop(block=False)

    asyncio.run(asyncio.wait_for(main(), 60))


async def _produce(leader: Any, batch: bytes, acks: int = -1,
                   producer: ProducerBatch | None = None) -> PartitionResult:
    staged = await leader.ask(Append(batch, acks, producer), block=False)
    result: PartitionResult = await staged.acked
    return result


async def _read_all(leader: Any) -> list[bytes | None]:
    """Every record below the high watermark, in offset order."""
    values: list[bytes | None] = []
    offset = 0
    while True:
        read = await resolve(leader.ask(Read(offset, 1 << 20, -1, True), block=False))
        assert read.error_code == 0
        if not read.records:
            return values
        for r in iter_records_all(read.records):
            assert r.offset == offset
            values.append(r.value)
            offset += 1


async def _until(check: Callable[[], bool]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while not check():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def test_retry_of_a_batch_not_yet_durable_waits_for_its_flush(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def body(leader: Any, faults: Faults, actor: Any) -> None:
        faults.set(delay_ms={"fdatasync": 300})
        batch = _batch([b"a", b"b"], producer_id=7, seq=0)
        producer = ProducerBatch(7, 0, 0, 1)
        first = await leader.ask(Append(batch, -1, producer), block=False)
        retry = await leader.ask(Append(batch, -1, producer), block=False)
        flushed_when_answered: list[int] = []
        retry.acked.add_done_callback(
            lambda _f: flushed_when_answered.append(actor.log.flushed_offset))
        again: PartitionResult = await retry.acked
        original: PartitionResult = await first.acked
        assert (again.error_code, again.base_offset) == (0, 0)
        assert (original.error_code, original.base_offset) == (0, 0)
        assert flushed_when_answered[0] >= 1  # answered only once the original was durable
        assert actor.log.dirty_offset == 1  # stored once

    _run(tmp_path, monkeypatch, body)


def test_retry_fails_like_its_original_when_the_flush_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def body(leader: Any, faults: Faults, actor: Any) -> None:
        faults.set(fail={"fdatasync": "EIO"}, delay_ms={"fdatasync": 100})
        batch = _batch([b"a"], producer_id=7, seq=0)
        producer = ProducerBatch(7, 0, 0, 0)
        first = await leader.ask(Append(batch, -1, producer), block=False)
        retry = await leader.ask(Append(batch, -1, producer), block=False)
        assert (await first.acked).error_code == ErrorCode.KAFKA_STORAGE_ERROR
        assert (await retry.acked).error_code == ErrorCode.KAFKA_STORAGE_ERROR
        faults.clear()

    _run(tmp_path, monkeypatch, body)


def test_fsync_eio_reopens_the_log_and_produce_resumes_without_a_restart(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def body(leader: Any, faults: Faults, actor: Any) -> None:
        assert (await _produce(leader, _batch([b"kept"]))).base_offset == 0
        old_log = actor.log
        faults.set(fail={"fdatasync": "EIO"})
        failed = await _produce(leader, _batch([b"unsure"]))
        assert failed.error_code == ErrorCode.KAFKA_STORAGE_ERROR
        assert actor.actor_status.startswith("storage_error")
        refused = await _produce(leader, _batch([b"refused"]), acks=1)
        assert refused.error_code == ErrorCode.KAFKA_STORAGE_ERROR
        # Reopening keeps failing while the disk does (recovery syncs what it found).
        await _until(lambda: actor._backoff >= 0.4)
        assert actor.log.failed or actor.log is not old_log
        faults.clear()
        await _until(lambda: actor.actor_status == "ok")
        assert actor.log is not old_log and not actor.log.failed
        ok = await _produce(leader, _batch([b"after"]))
        assert ok.error_code == 0
        values = await _read_all(leader)
        # "unsure" reached the file (the injected EIO came after the write): recovery may
        # keep it, synced; "refused" never was appended.
        assert values[0] == b"kept" and values[-1] == b"after" and b"refused" not in values
        assert actor.high_watermark == ok.base_offset + 1 == len(values)

    _run(tmp_path, monkeypatch, body)


def test_full_disk_refuses_produce_keeps_reads_and_resumes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def body(leader: Any, faults: Faults, actor: Any) -> None:
        assert (await _produce(leader, _batch([b"x"] * 3))).error_code == 0
        faults.set(fail={"pwrite": "ENOSPC", "fallocate": "ENOSPC"})
        taken = await _produce(leader, _batch([b"acks1"]), acks=1)  # in memory: acks=1 ok
        assert taken.error_code == 0
        await _until(lambda: actor.storage_error is not None)
        refused = await _produce(leader, _batch([b"no"]))
        assert refused.error_code == ErrorCode.KAFKA_STORAGE_ERROR
        read = await resolve(leader.ask(Read(0, 1 << 20, -1, True), block=False))
        assert read.error_code == 0 and read.high_watermark == 3
        assert [r.value for r in iter_records(read.records)] == [b"x"] * 3
        faults.clear()
        await _until(lambda: actor.actor_status == "ok")
        assert actor.high_watermark == 4  # the acks=1 batch was kept and written
        assert (await _produce(leader, _batch([b"yes"]))).base_offset == 4

    _run(tmp_path, monkeypatch, body)


def test_a_failure_reported_while_the_log_reopens_does_not_open_it_twice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def body(leader: Any, faults: Faults, actor: Any) -> None:
        faults.set(fail={"fdatasync": "EIO"})
        assert (await _produce(leader, _batch([b"a"]))).error_code == \
            ErrorCode.KAFKA_STORAGE_ERROR
        faults.set(delay_ms={"open": 300})  # the reopen is slow now, and will succeed
        await _until(lambda: actor._reopen_inflight)
        # A late failure of the old log's flush arrives meanwhile, and its retry timer fires.
        actor._flush_failed(RuntimeError("late flush failure of the old log"))
        actor._recover()
        await _until(lambda: actor.actor_status == "ok")
        writer = actor.writer._actor_weakref()
        opened = [log for log in writer._opened if getattr(log, "dir", None) == actor.log.dir]
        assert opened == [actor.log]  # one open log for the directory: never reopened twice
        faults.clear()
        assert (await _produce(leader, _batch([b"b"]))).error_code == 0

    _run(tmp_path, monkeypatch, body)
