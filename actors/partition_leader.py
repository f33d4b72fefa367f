"""The partition-leader actor: owns one partition's log on its core and serves produce, fetch and
list-offsets for it.

Concern: the partition's order of appends (a produce is appended when its message is handled,
so the reply `Staged(None, acked)` fixes its order at once: phase 1 of the two-phase produce),
idempotent-producer checks, the high watermark (durable offset + 1: one replica, so a majority
is this node's fdatasync), reads bounded by it, and the long-poll notifier that wakes parked
fetches as soon as the high watermark moves. Must not know: connections, other partitions.

Disk failures. A failed flush fails every acks=all waiter with KAFKA_STORAGE_ERROR and puts
the partition in a storage-error state: produces are refused with KAFKA_STORAGE_ERROR (nothing
more piles up in memory), reads below the high watermark go on, and `actor_status` says why.
Recovery is retried with backoff (0.1 s doubling to 5 s):

    write failed (ENOSPC, EIO on pwrite)        fdatasync failed (the log is failed)
    ------------------------------------        ------------------------------------
    the batches stay queued in the log:         ReopenLog on the disk writer: close it, drop
    flush again; once everything appended       its page cache, recover what the disk holds,
    is durable, produce resumes                 rebuild the producer state from it; serve
                                                the new log (reads fail while it reopens)

An idempotent retry of a batch still in the log is answered only once that batch is durable
(acks=all), so no retry is acknowledged ahead of the flush of its original.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import pykka
import structlog

from redshank.actors.disk_writer import Blocking, FindTimestamp, ReadLog, ReopenLog
from redshank.actors.replicate_batcher import ReplicateBatcher
from redshank.actors.runtime import LoopActor, LoopFuture, Staged
from redshank.actors.watermarks import HighWatermark, Pushed
from redshank.cluster.kafka import Duplicate, ProducerStateTable, SequenceError
from redshank.cluster.partition.api import (
    EARLIEST,
    HIGH_WATERMARK,
    LATEST,
    MAX_TIMESTAMP,
    Append,
    OffsetAnswer,
    PartitionResult,
    ProducerBatch,
    QueryOffset,
    Read,
    ReadResult,
    SetTimestampType,
    TrimPrefix,
    TrimResult,
    WaitForData,
)
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.errors import DecodeError
from redshank.protocol.record_batch import iter_batches, stamp_log_append_time
from redshank.storage import FlushCoordinator, Log
from redshank.storage.errors import StorageError

__all__ = ["PartitionLeader", "partition_name"]

TERM = 0  # single replica, no elections yet: the leader epoch stays 0
RECOVER_MIN_S = 0.1
RECOVER_MAX_S = 5.0
# The most an advance pushes to an armed core (larger advances: that core reads, as before).
PUSH_MAX_BYTES = 256 * 1024


def partition_name(topic: str, partition: int) -> str:
    return f"partition/{topic}/{partition}"








class PartitionLeader(LoopActor):
    def __init__(self, topic: str, partition: int, log: Log, coordinator: FlushCoordinator,
                 writer: pykka.ActorRef[Any], loop: asyncio.AbstractEventLoop,
                 producers: list[tuple[int, int, int, int, int]] | None = None,
                 log_append_time: bool = False,
                 notify: Callable[[int, HighWatermark], None] | None = None,
                 topic_id: uuid.UUID | None = None,
                 on_reopened: Callable[[Log], None] | None = None) -> None:
        super().__init__()
        # Set while the disk fails this partition (see the module docstring).
        self.storage_error: str | None = None
        self.reopening = False
        self._reopen_inflight = False  # a ReopenLog is on the disk writer: never two at once
        self._backoff = RECOVER_MIN_S
        self._recover_timer: asyncio.TimerHandle | None = None
        self._on_reopened = on_reopened
        self._stopped = False
        self.log_append_time = log_append_time
        # Cores whose watermark watch hears of every advance (a fetch there subscribed).
        self.subscribers: set[int] = set()
        # Subscribers whose last read from another core found nothing new at this offset: the
        # next advance pushes them the batches from there (see watermarks.py).
        self.armed: dict[int, int] = {}
        self._notify = notify
        self.topic_id = topic_id
        self.topic = topic
        self.partition = partition
        self.log = log
        self.writer = writer
        self.loop = loop
        self.producers = _producer_table(producers or ())
        self.high_watermark = log.flushed_offset + 1
        self.max_timestamp: tuple[int, int] | None = None  # (timestamp, offset)
        self._parked: list[tuple[int, LoopFuture[bool], asyncio.TimerHandle]] = []
        self._logger = structlog.get_logger("redshank.partition").bind(
            ntp=f"{topic}/{partition}")
        self.batcher = ReplicateBatcher(log, coordinator, writer, loop, self._durable,
                                        self._flush_failed)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Append):
            return self._append(message)
        if isinstance(message, Read):
            return self._read(message)
        if isinstance(message, WaitForData):
            return self._wait(message)
        if isinstance(message, QueryOffset):
            return self._query(message)
        if isinstance(message, TrimPrefix):
            return self._trim(message)
        if isinstance(message, SetTimestampType):
            self.log_append_time = message.log_append_time
            return True
        raise TypeError(f"partition leader got {type(message).__name__}")

    # -- produce -------------------------------------------------------------------------------
    def _result(self, code: int, base: int = -1, msg: str | None = None) -> PartitionResult:
        return PartitionResult(code, base, self.log.start_offset, msg)

    @property
    def actor_status(self) -> str:
        """What `redshank actors` shows for this partition."""
        if self.storage_error is None:
            return "ok"
        return f"storage_error{' (reopening)' if self.reopening else ''}: {self.storage_error}"

    def _append(self, msg: Append) -> Staged:
        acked: LoopFuture[PartitionResult] = LoopFuture(self.loop)
        if self.storage_error is not None:
            acked.set(self._result(ErrorCode.KAFKA_STORAGE_ERROR,
                                   msg=f"partition storage failed: {self.storage_error}"))
            return Staged(None, acked)
        producer = msg.producer
        if producer is not None:
            seen = self.producers.check(producer)
            if isinstance(seen, Duplicate):
                ok = self._result(0, seen.base_offset)
                if msg.acks == -1 and seen.last_offset >= self.high_watermark:
                    # The original is appended but not yet durable: answer with it.
                    self.batcher.wait(seen.last_offset, acked, ok)
                else:
                    acked.set(ok)
                return Staged(None, acked)
            if isinstance(seen, SequenceError):
                acked.set(self._result(seen.error_code, msg=seen.message))
                return Staged(None, acked)
        buf = msg.records if type(msg.records) is bytearray else bytearray(msg.records)  # ours
        try:
            if self.log_append_time:
                now_ms = int(time.time() * 1000)
                for pos, h in iter_batches(buf, verify_crc=False):
                    stamp_log_append_time(buf, pos, h, now_ms)
            res = self.log.append(buf, TERM, crc_checked=True)
        except DecodeError as exc:
            acked.set(self._result(ErrorCode.CORRUPT_MESSAGE, msg=str(exc)))
            return Staged(None, acked)
        except StorageError as exc:
            acked.set(self._result(ErrorCode.KAFKA_STORAGE_ERROR, msg=str(exc)))
            return Staged(None, acked)
        if producer is not None:
            self.producers.record(producer, res.base_offset, res.last_offset)
        self._track_timestamps(buf)
        ok = self._result(0, res.base_offset)
        if msg.acks == -1:
            self.batcher.appended(res.last_offset, res.bytes, acked, ok)
        else:
            self.batcher.appended(res.last_offset, res.bytes)
            acked.set(ok)
        return Staged(None, acked)

    def _track_timestamps(self, buf: bytearray) -> None:
        for _pos, h in iter_batches(buf, verify_crc=False):
            if self.max_timestamp is None or h.max_timestamp > self.max_timestamp[0]:
                self.max_timestamp = (h.max_timestamp, h.last_offset)

    def _durable(self, durable: int) -> None:
        if self.storage_error is not None and not self.reopening \
                and durable >= self.log.dirty_offset:
            # A flush retried after a failed write reached everything appended.
            self._logger.warning("storage_recovered", durable=durable)
            self.storage_error = None
            self._backoff = RECOVER_MIN_S
        hw = durable + 1
        if hw <= self.high_watermark:
            return
        self.high_watermark = hw
        if self._notify is not None and self.subscribers:
            tell = HighWatermark(self.topic, self.partition, hw)
            for core in self.subscribers:
                offset = self.armed.pop(core, None)
                self._notify(core, tell if offset is None else HighWatermark(
                    self.topic, self.partition, hw, self._push(offset, hw)))
        still = []
        for offset, fut, timer in self._parked:
            if offset < hw:
                timer.cancel()
                if not fut.done():
                    fut.set(True)
            else:
                still.append((offset, fut, timer))
        self._parked = still

    def _push(self, offset: int, hw: int) -> Pushed | None:
        """The durable batches from `offset` for an armed core, if the cache holds them whole
        and they are small (else that core reads them as before)."""
        if self.topic_id is None or offset >= hw:
            return None
        try:
            data = self.log.read_cached(offset, PUSH_MAX_BYTES, hw - 1)
        except StorageError:  # trimmed below it meanwhile: that core reads and learns why
            return None
        if not data or len(data) > PUSH_MAX_BYTES:
            return None
        return Pushed(self.topic_id, offset, hw, self.log.start_offset, bytes(data))

    def _flush_failed(self, exc: BaseException) -> None:
        first = self.storage_error is None
        self.storage_error = str(exc)
        self.batcher.fail_waiters(self._result(ErrorCode.KAFKA_STORAGE_ERROR, msg=str(exc)))
        if first:
            self._logger.error("flush_failed", error=repr(exc), failed_log=self.log.failed)
        self._schedule_recovery()

    def _schedule_recovery(self) -> None:
        if self._stopped or self._recover_timer is not None:
            return
        delay = self._backoff
        self._backoff = min(self._backoff * 2, RECOVER_MAX_S)
        self._recover_timer = self.loop.call_later(delay, self._recover)

    def _recover(self) -> None:
        self._recover_timer = None
        if self._stopped or self.storage_error is None or self._reopen_inflight:
            return  # (a reopen in flight retries by itself if it fails)
        if not self.log.failed and not self.reopening:
            if self.log.flushed_offset >= self.log.dirty_offset:
                self._durable(self.log.flushed_offset)  # nothing left to flush: recovered
                return
            # A write failed and its batches are still queued: flush again. Success comes
            # back through `_durable`, failure through `_flush_failed`.
            self.batcher.retry()
            return
        self.reopening = True
        self._reopen_inflight = True
        old = self.log
        fut: LoopFuture[tuple[Log, list[tuple[int, int, int, int, int]]]] = self.writer.ask(
            ReopenLog(old), block=False)  # type: ignore[assignment]

        def done(f: LoopFuture[tuple[Log, list[tuple[int, int, int, int, int]]]]) -> None:
            exc = f.exception()
            self._reopen_inflight = False
            if self._stopped:  # the core is stopping: the disk writer closes what it opened
                return
            if exc is not None:
                self.storage_error = str(exc)
                self._schedule_recovery()
                return
            log, producers = f.result()
            self._reopened(log, producers)

        fut.add_done_callback(done)

    def _reopened(self, log: Log, producers: list[tuple[int, int, int, int, int]]) -> None:
        old_hw = self.high_watermark
        self.batcher.reset(log, self._result(ErrorCode.KAFKA_STORAGE_ERROR,
                                             msg="partition log reopened"))
        self.log = log
        self.producers = _producer_table(producers)
        self.max_timestamp = None
        self.armed.clear()
        self.reopening = False
        self.storage_error = None
        self._backoff = RECOVER_MIN_S
        if log.flushed_offset + 1 < old_hw:  # never: only fsynced batches were below it
            self._logger.error("reopen_lost_committed", high_watermark=old_hw,
                               recovered_end=log.flushed_offset)
            self.high_watermark = log.flushed_offset + 1
        if self._on_reopened is not None:
            self._on_reopened(log)
        self._logger.warning("log_reopened", end=log.dirty_offset,
                             high_watermark=self.high_watermark)
        self._durable(log.flushed_offset)

    # -- fetch ---------------------------------------------------------------------------------
    def _read(self, msg: Read) -> ReadResult | LoopFuture[ReadResult]:
        if msg.subscriber is not None:
            self.subscribers.add(msg.subscriber)
        hw = self.high_watermark
        start = self.log.start_offset
        if self.reopening:
            return ReadResult(ErrorCode.KAFKA_STORAGE_ERROR, hw, start)
        if msg.leader_epoch > TERM:
            return ReadResult(ErrorCode.UNKNOWN_LEADER_EPOCH, hw, start)
        if msg.offset < start or msg.offset > self.log.dirty_offset + 1:
            return ReadResult(ErrorCode.OFFSET_OUT_OF_RANGE, hw, start)
        if msg.offset >= hw or msg.max_bytes <= 0:
            if msg.copy and msg.subscriber is not None and msg.offset >= hw:
                self.armed[msg.subscriber] = msg.offset
            return ReadResult(0, hw, start, b"")
        data = self.log.read_cached(msg.offset, msg.max_bytes, hw - 1)
        if data is not None:
            return ReadResult(0, hw, start, data)  # a view: the ring copies it (partition_codecs)
        fut: LoopFuture[bytes] = self.writer.ask(  # type: ignore[assignment]
            ReadLog(self.log, msg.offset, msg.max_bytes, hw - 1), block=False)
        out: LoopFuture[ReadResult] = LoopFuture(self.loop)

        def done(f: LoopFuture[bytes]) -> None:
            exc = f.exception()
            if exc is not None:
                out.set(ReadResult(ErrorCode.KAFKA_STORAGE_ERROR, hw, start))
            else:
                out.set(ReadResult(0, hw, start, f.result()))

        fut.add_done_callback(done)
        return out

    def _wait(self, msg: WaitForData) -> bool | LoopFuture[bool]:
        if msg.offset < self.high_watermark or msg.timeout_ms <= 0:
            return msg.offset < self.high_watermark
        fut: LoopFuture[bool] = LoopFuture(self.loop)
        timer = self.loop.call_later(msg.timeout_ms / 1000, self._expire, fut)
        self._parked.append((msg.offset, fut, timer))
        return fut

    def _expire(self, fut: LoopFuture[bool]) -> None:
        self._parked = [p for p in self._parked if p[1] is not fut]
        if not fut.done():
            fut.set(False)

    # -- list offsets --------------------------------------------------------------------------
    def _query(self, msg: QueryOffset) -> OffsetAnswer | LoopFuture[OffsetAnswer]:
        hw = self.high_watermark
        if msg.timestamp == EARLIEST:
            return OffsetAnswer(0, self.log.start_offset)
        if msg.timestamp == LATEST:
            return OffsetAnswer(0, hw)
        if msg.timestamp == MAX_TIMESTAMP:
            if self.max_timestamp is not None and self.max_timestamp[1] < hw:
                return OffsetAnswer(0, self.max_timestamp[1], self.max_timestamp[0])
            # Not tracked since this leader started (or not yet durable): the last offset.
            return OffsetAnswer(0, hw - 1 if hw > self.log.start_offset else -1)
        fut: LoopFuture[int | None] = self.writer.ask(  # type: ignore[assignment]
            FindTimestamp(self.log, msg.timestamp), block=False)
        out: LoopFuture[OffsetAnswer] = LoopFuture(self.loop)
        ts = msg.timestamp

        def done(f: LoopFuture[int | None]) -> None:
            exc = f.exception()
            found = None if exc is not None else f.result()
            if exc is not None:
                out.set(OffsetAnswer(ErrorCode.KAFKA_STORAGE_ERROR))
            elif found is None or found >= hw:
                out.set(OffsetAnswer(0, -1, -1))
            else:
                out.set(OffsetAnswer(0, found, ts))

        fut.add_done_callback(done)
        return out

    def _trim(self, msg: TrimPrefix) -> TrimResult | LoopFuture[TrimResult]:
        hw = self.high_watermark
        offset = hw if msg.offset == HIGH_WATERMARK else msg.offset
        if offset > hw:
            return TrimResult(ErrorCode.OFFSET_OUT_OF_RANGE, self.log.start_offset)
        if offset <= self.log.start_offset:
            return TrimResult(ErrorCode.NONE, self.log.start_offset)
        out: LoopFuture[TrimResult] = LoopFuture(self.loop)
        # On the disk writer: the checkpoint write and segment deletes are file I/O.
        fut: LoopFuture[int] = self.writer.ask(  # type: ignore[assignment]
            Blocking(functools.partial(self.log.truncate_prefix, offset)), block=False)

        def done(f: LoopFuture[int]) -> None:
            exc = f.exception()
            if exc is not None:
                self._logger.error("trim_failed", error=repr(exc))
                out.set(TrimResult(ErrorCode.KAFKA_STORAGE_ERROR, self.log.start_offset))
            else:
                out.set(TrimResult(ErrorCode.NONE, int(f.result())))

        fut.add_done_callback(done)
        return out

    def on_stop(self) -> None:
        self._stopped = True
        if self._recover_timer is not None:
            self._recover_timer.cancel()
            self._recover_timer = None
        for _offset, fut, timer in self._parked:
            timer.cancel()
            if not fut.done():
                fut.set(False)
        self._parked = []


def _producer_table(records: Iterable[tuple[int, int, int, int, int]]) -> ProducerStateTable:
    """The producer state of the log's tail: (pid, epoch, first seq, last seq, base offset)
    per idempotent batch, oldest first (one batch per request: offsets follow sequences)."""
    table = ProducerStateTable()
    for pid, epoch, first, last, base in records:
        table.record(ProducerBatch(pid, epoch, first, last), base, base + (last - first))
    return table
