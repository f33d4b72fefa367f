"""The partition-leader actor: hosts one partition replica (`cluster/partition/Partition`) on its
core and serves produce, fetch and list-offsets for it.

Concern: doing what the sans-IO partition asks (its log appends happen inside it, without I/O;
flushes go through the core's flush coordinator to the disk writer, the kvstore's and the log's
in one round; answers complete the produce futures), the order of appends (a produce is
appended when its message is handled, so the reply `Staged(None, acked)` fixes its order at
once: phase 1 of the two-phase produce), reads bounded by the high watermark (Raft's commit:
with one replica, this node's fdatasync), and the long-poll notifier that wakes parked fetches
as soon as it moves. One replica: the partition elects itself when it starts, and the leader is
registered once an entry of its term committed (`Ready`), so nothing is served before it knows
its high watermark. Must not know: connections, other partitions.

    append(Append) --> Partition.append (Raft propose -> storage.Log.append)   phase 1: Staged
    loop turn      --> Partition.take_io: answers -> futures (phase 2), high watermark -> fetches,
                       start_flush -> FlushCoordinator.request(kvstore, log) -> writer RunRound
    flush done     --> Partition.flush_done (Raft on_persisted -> commit) -> next turn

Disk failures. A failed flush fails every produce still waiting with KAFKA_STORAGE_ERROR and puts
the partition in a storage-error state: produces are refused with KAFKA_STORAGE_ERROR (nothing
more piles up in memory), reads below the high watermark go on, and `actor_status` says why.
Recovery is retried with backoff (0.1 s doubling to 5 s):

    write failed (ENOSPC, EIO on pwrite)        fdatasync failed (the log or kvstore is failed)
    ------------------------------------        -----------------------------------------------
    the batches stay queued in the log:         ReopenPartition on the disk writer: close both,
    flush again; once everything appended       drop the page cache, recover what the disk
    is durable, produce resumes                 holds (Raft's index, producer state); a new
                                                term starts on it (reads fail while it reopens)

An idempotent retry of a batch not yet committed is answered only once that batch is (acks=all),
so no retry is acknowledged ahead of its original.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
import uuid
from collections.abc import Callable, Hashable
from typing import Any

import pykka
import structlog

from redshank.actors.disk_writer import (
    Blocking,
    FindTimestamp,
    OpenedPartition,
    ReadLog,
    ReopenPartition,
)
from redshank.actors.partition_host import PartitionHost, Replicas
from redshank.actors.runtime import LoopActor, LoopFuture, Staged
from redshank.actors.watermarks import HighWatermark, Pushed, Watermarks
from redshank.cluster.kafka import ProducerStateTable
from redshank.cluster.kafka.isr import in_sync
from redshank.cluster.partition.api import (
    EARLIEST,
    HIGH_WATERMARK,
    LATEST,
    MAX_TIMESTAMP,
    READ_COMMITTED,
    Append,
    DescribeProducers,
    EpochEnd,
    OffsetAnswer,
    PartitionResult,
    ProducersAnswer,
    QueryOffset,
    Read,
    ReadResult,
    SetTimestampType,
    TrimPrefix,
    TrimResult,
    WaitForData,
)
from redshank.cluster.partition.partition import Partition
from redshank.cluster.raft.types import Message, NodeId, Role
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.record_batch import iter_batches
from redshank.storage import FlushCoordinator, Log
from redshank.storage.errors import StorageError

__all__ = ["PartitionLeader", "Ready", "ReplicaStatus", "SetPreferred", "partition_name"]

RECOVER_MIN_S = 0.1
RECOVER_MAX_S = 5.0
# The most an advance pushes to an armed core (larger advances: that core reads, as before).
PUSH_MAX_BYTES = 256 * 1024


def partition_name(topic: str, partition: int) -> str:
    return f"partition/{topic}/{partition}"


class Ready:
    """-> True once the leader serves (an entry of its term committed)."""


class ReplicaStatus:
    """-> the replica's Raft view: {"role", "term", "leader", "serves", "high_watermark" (the
    leader's; a follower's stays at its start), "log_end" (the offset after its last batch),
    "preferred" (the node leadership goes back to, 0: none), "in_sync" (the leader's: its
    in-sync replicas by `cluster/kafka/isr`; [] elsewhere)}."""


@dataclasses.dataclass(frozen=True, slots=True)
class SetPreferred:
    """The controller moved the partition's preferred replica to `node` (0: none): leadership
    goes there (`Partition`'s balance), also after the partition is reopened."""

    node: NodeId


class PartitionLeader(LoopActor):
    def __init__(self, topic: str, partition: int, opened: OpenedPartition,
                 coordinator: FlushCoordinator, writer: pykka.ActorRef[Any],
                 loop: asyncio.AbstractEventLoop, log_append_time: bool = False,
                 notify: Callable[[int, HighWatermark], None] | None = None,
                 topic_id: uuid.UUID | None = None,
                 on_reopened: Callable[[Log], None] | None = None,
                 on_leader: Callable[[int], None] | None = None,
                 replicas: Replicas | None = None) -> None:
        """`on_leader(epoch)`: the partition serves in `epoch` (its Raft term) from now on,
        once per term (the manager tells every core's leaders table). `replicas`: the
        partition's Raft group across nodes (None: this replica alone); its peers' messages
        arrive as `Message`s told to this actor."""
        super().__init__()
        # Set while the disk fails this partition (see the module docstring).
        self.storage_error: str | None = None
        self.reopening = False
        self._reopen_inflight = False  # a ReopenPartition is on the disk writer: never two
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
        self.coordinator = coordinator
        self.writer = writer
        self.loop = loop
        self._heard: dict[int, float] = {}  # peer node -> loop time of its last Raft message
        self._parked: list[tuple[int, LoopFuture[bool], asyncio.TimerHandle]] = []
        self._logger = structlog.get_logger("redshank.partition").bind(
            ntp=f"{topic}/{partition}")
        self.high_watermark: int = opened.log.start_offset
        # Segments sealed from here on get a producer snapshot (`_snapshot_sealed`).
        self._snapshot_from = _active_base(opened.log)
        self._cuts_seen = 0  # Partition.cuts when `_snapshot_from` was last checked
        self.host = PartitionHost(opened, coordinator, writer, loop, on_answer=_answer,
                                  on_high_watermark=self._advanced,
                                  on_flush_failed=self._flush_failed,
                                  on_flushed=self._flushed, on_leader=on_leader,
                                  replicas=replicas)

    @property
    def log(self) -> Log:
        return self.host.log

    @property
    def part(self) -> Partition:
        return self.host.part

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Append):
            return self._append(message)
        if isinstance(message, Read):
            return self._read(message)
        if isinstance(message, WaitForData):
            return self._wait(message)
        if isinstance(message, QueryOffset):
            return self._query(message)
        if isinstance(message, EpochEnd):
            return self._epoch_end(message)
        if isinstance(message, TrimPrefix):
            return self._trim(message)
        if isinstance(message, DescribeProducers):
            return self._producers()
        if isinstance(message, SetTimestampType):
            self.log_append_time = message.log_append_time
            return True
        if isinstance(message, Ready):
            return self.host.when_ready()
        if isinstance(message, Message):
            self._heard[int(message.src)] = self.loop.time()
            self.host.step(message)
            return None
        if isinstance(message, ReplicaStatus):
            return self._status()
        if isinstance(message, SetPreferred):
            if self.host.replicas is not None:
                self.host.replicas = dataclasses.replace(self.host.replicas,
                                                         preferred=message.node)
                self.part.prefer(message.node)
            return True
        raise TypeError(f"partition leader got {type(message).__name__}")

    def _status(self) -> dict[str, Any]:
        core = self.part.consensus.core
        isr: tuple[int, ...] = ()
        if core.role == Role.LEADER:
            now = self.loop.time()
            isr = in_sync(int(core.id), int(core.last_index()),
                          {int(n): int(pr.match) for n, pr in core.progress.items()},
                          {n: now - t for n, t in self._heard.items()})
        return {"role": core.role.name.lower(), "term": int(core.term), "leader": int(core.lead),
                "serves": self.part.serves(), "high_watermark": self.high_watermark,
                "log_end": self.log.dirty_offset + 1, "preferred": int(self.part.preferred),
                "in_sync": list(isr)}

    @property
    def producers(self) -> ProducerStateTable:
        return self.part.producers

    @property
    def max_timestamp(self) -> tuple[int, int] | None:
        return self.part.max_timestamp

    @property
    def actor_status(self) -> str:
        """What `redshank actors` shows for this partition."""
        if self.storage_error is None:
            return "ok"
        return f"storage_error{' (reopening)' if self.reopening else ''}: {self.storage_error}"

    def _result(self, code: int, base: int = -1, msg: str | None = None) -> PartitionResult:
        return PartitionResult(code, base, self.log.start_offset, msg)

    # -- produce -------------------------------------------------------------------------------
    def _append(self, msg: Append) -> Staged:
        acked: LoopFuture[PartitionResult] = LoopFuture(self.loop)
        if self.storage_error is not None:
            acked.set(self._result(ErrorCode.KAFKA_STORAGE_ERROR,
                                   msg=f"partition storage failed: {self.storage_error}"))
            return Staged(None, acked)
        records = msg.records
        # The log keeps the buffer and restamps it: ours unless the router copied it already.
        buf = records if type(records) is bytearray else bytearray(records)
        now_ms = int(time.time() * 1000) if self.log_append_time else -1
        res = self.host.append(Append(buf, msg.acks, msg.producer), acked, now_ms)
        if res is not None:
            acked.set(res)
        return Staged(None, acked)

    def _advanced(self, hw: int) -> None:
        """The high watermark moved to `hw`: tell watching cores, wake parked fetches."""
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
        """The committed batches from `offset` for an armed core, if the cache holds them whole
        and they are small (else that core reads them as before)."""
        if self.topic_id is None or offset >= hw:
            return None
        try:
            data = self.log.read_cached(offset, PUSH_MAX_BYTES, hw - 1)
        except StorageError:  # trimmed below it meanwhile: that core reads and learns why
            return None
        if not data or len(data) > PUSH_MAX_BYTES:
            return None
        # Stable: read_committed fetches on that core may take it too (most partitions never
        # see a transaction: no undecided one, no aborted one in the range).
        stable = self.part.last_stable_offset() >= hw and not self.part.aborted(offset, hw)
        return Pushed(self.topic_id, offset, hw, self.log.start_offset, bytes(data), stable)

    def _snapshot_sealed(self) -> None:
        """Store the producer/transaction snapshot of each segment sealed since the last
        time (on the disk writer; a failed or missing one only means a longer replay at the
        next open: `scan_producers`)."""
        if self.part.cuts != self._cuts_seen:
            # A truncation may have reopened sealed segments: they get a snapshot when sealed
            # again (storage removed the stale ones).
            self._cuts_seen = self.part.cuts
            self._snapshot_from = min(self._snapshot_from, _active_base(self.log))
        sealed = self.log.sealed_since(self._snapshot_from)
        if sealed:  # aborted transactions of segments retention deleted go too
            self.part.producers.trim(self.log.start_offset)
        for base, end in sealed:
            payload = self.part.producers.segment_state(base, end)
            if payload is None:
                continue
            fut: LoopFuture[bool] = self.writer.ask(  # type: ignore[assignment]
                Blocking(functools.partial(self.log.write_segment_state, base, payload)),
                block=False)
            fut.add_done_callback(self._snapshot_written)
        if sealed:
            self._snapshot_from = sealed[-1][1]

    def _snapshot_written(self, f: LoopFuture[bool]) -> None:
        if (exc := f.exception()) is not None:
            self._logger.warning("segment_snapshot_failed", error=repr(exc))

    def _flushed(self) -> None:
        self._snapshot_sealed()
        if self.storage_error is not None and not self.reopening \
                and self.log.flushed_offset >= self.log.dirty_offset:
            # A flush retried after a failed write reached everything appended.
            self._logger.warning("storage_recovered", durable=self.log.flushed_offset)
            self.storage_error = None
            self.host.paused = False
            self._backoff = RECOVER_MIN_S

    def _flush_failed(self, exc: BaseException) -> None:
        first = self.storage_error is None
        self.storage_error = str(exc)
        self.host.paused = True  # no flush but the recovery's until it recovers
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
        if not self.host.failed and not self.reopening:
            # A write failed and its batches are still queued: flush again. Success comes
            # back through `_flushed`, failure through `_flush_failed`.
            self.host.flush()
            return
        self.reopening = True
        self._reopen_inflight = True
        self.host.fail_waiting(self._result(ErrorCode.KAFKA_STORAGE_ERROR,
                                            msg="partition log reopened"))
        fut: LoopFuture[OpenedPartition] = self.writer.ask(  # type: ignore[assignment]
            ReopenPartition(self.log, self.host.kv), block=False)

        def done(f: LoopFuture[OpenedPartition]) -> None:
            exc = f.exception()
            self._reopen_inflight = False
            if self._stopped:  # the core is stopping: the disk writer closes what it opened
                return
            if exc is not None:
                self.storage_error = str(exc)
                self._schedule_recovery()
                return
            self._reopened(f.result())

        fut.add_done_callback(done)

    def _reopened(self, opened: OpenedPartition) -> None:
        old_hw = self.high_watermark
        self.armed.clear()
        self.reopening = False
        self.storage_error = None
        self.host.paused = False
        self._backoff = RECOVER_MIN_S
        self.host.install(opened)
        self._snapshot_from = _active_base(opened.log)
        self._cuts_seen = 0
        end = opened.log.dirty_offset + 1
        if end < old_hw:  # never: only committed (fsynced) batches were below it
            self._logger.error("reopen_lost_committed", high_watermark=old_hw, recovered_end=end)
            self.high_watermark = end
        if self._on_reopened is not None:
            self._on_reopened(opened.log)
        self._logger.warning("log_reopened", end=opened.log.dirty_offset,
                             high_watermark=self.high_watermark, term=self.part.term)

    # -- fetch ---------------------------------------------------------------------------------
    def _read(self, msg: Read) -> ReadResult | LoopFuture[ReadResult]:
        if msg.subscriber is not None:
            self.subscribers.add(msg.subscriber)
        hw = self.high_watermark
        start = self.log.start_offset
        if self.reopening:
            return ReadResult(ErrorCode.KAFKA_STORAGE_ERROR, hw, start)
        if not self.part.serves():  # a follower, or a leader whose term has not committed
            return ReadResult(ErrorCode.NOT_LEADER_OR_FOLLOWER, hw, start)
        if (fenced := self.part.epoch_error(msg.leader_epoch)) != ErrorCode.NONE:
            return ReadResult(fenced, hw, start)
        if msg.offset < start or msg.offset > self.log.dirty_offset + 1:
            return ReadResult(ErrorCode.OFFSET_OUT_OF_RANGE, hw, start)
        lso = self.part.producers.last_stable_offset(hw)
        # read_committed reads below the last stable offset only (KIP-98).
        bound = lso if msg.isolation == READ_COMMITTED else hw
        if msg.offset >= bound or msg.max_bytes <= 0:
            res = ReadResult(0, hw, start, b"", lso)
            if (core := Watermarks.arming_core(msg, res)) is not None:
                self.armed[core] = msg.offset
            return res
        data = self.log.read_cached(msg.offset, msg.max_bytes, bound - 1)
        if data is not None:
            # A view: the ring copies it (partition_codecs).
            return self._read_result(msg, hw, start, data, lso)
        fut: LoopFuture[bytes] = self.writer.ask(  # type: ignore[assignment]
            ReadLog(self.log, msg.offset, msg.max_bytes, bound - 1), block=False)
        out: LoopFuture[ReadResult] = LoopFuture(self.loop)

        def done(f: LoopFuture[bytes]) -> None:
            exc = f.exception()
            if exc is not None:
                out.set(ReadResult(ErrorCode.KAFKA_STORAGE_ERROR, hw, start))
            else:
                out.set(self._read_result(msg, hw, start, f.result(), lso))

        fut.add_done_callback(done)
        return out

    def _read_result(self, msg: Read, hw: int, start: int, data: bytes | memoryview, lso: int
                     ) -> ReadResult:
        """A read's answer; read_committed gets the aborted transactions its batches overlap."""
        if msg.isolation != READ_COMMITTED or not data:
            return ReadResult(0, hw, start, data, lso)
        upper = msg.offset
        for _pos, h in iter_batches(data, verify_crc=False):
            upper = h.last_offset + 1
        return ReadResult(0, hw, start, data, lso, self.part.aborted(msg.offset, upper))

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

    def _producers(self) -> ProducersAnswer:
        if not self.part.serves():
            return ProducersAnswer(ErrorCode.NOT_LEADER_OR_FOLLOWER)
        return ProducersAnswer(ErrorCode.NONE, tuple(self.part.producers.describe()))

    # -- list offsets --------------------------------------------------------------------------
    def _epoch_end(self, msg: EpochEnd) -> OffsetAnswer:
        if not self.part.serves():
            return OffsetAnswer(ErrorCode.NOT_LEADER_OR_FOLLOWER)
        if (fenced := self.part.epoch_error(msg.current_leader_epoch)) != ErrorCode.NONE:
            return OffsetAnswer(fenced)
        epoch, end = self.part.epoch_end(msg.leader_epoch)
        return OffsetAnswer(ErrorCode.NONE, end, -1, epoch)

    def _found(self, offset: int, timestamp: int = -1) -> OffsetAnswer:
        """A ListOffsets answer, with the leader epoch of the batch at `offset` (KIP-320: a
        consumer that starts there validates its position with it after a leader change)."""
        epoch = self.part.epoch_at(offset) if offset >= 0 else -1
        return OffsetAnswer(ErrorCode.NONE, offset, timestamp, epoch)

    def _query(self, msg: QueryOffset) -> OffsetAnswer | LoopFuture[OffsetAnswer]:
        if not self.part.serves():
            return OffsetAnswer(ErrorCode.NOT_LEADER_OR_FOLLOWER)
        if (fenced := self.part.epoch_error(msg.current_leader_epoch)) != ErrorCode.NONE:
            return OffsetAnswer(fenced)
        hw = self.high_watermark
        if msg.isolation == READ_COMMITTED:
            # KIP-98: nothing at or past the last stable offset is found (Kafka's
            # lastFetchableOffset): LATEST answers it, lookups stop below it.
            hw = self.part.producers.last_stable_offset(hw)
        if msg.timestamp == EARLIEST:
            return self._found(self.log.start_offset)
        if msg.timestamp == LATEST:
            return self._found(hw)
        if msg.timestamp == MAX_TIMESTAMP:
            if self.max_timestamp is not None and self.max_timestamp[1] < hw:
                # The batch's last offset is tracked; the record is the batch's first one
                # carrying its max timestamp (Kafka: the offset of that record, KAFKA-16310).
                ts, last = self.max_timestamp
                return self._on_writer(
                    Blocking(functools.partial(self.log.record_in_batch, last, ts)),
                    hw, (last, ts))
            # Not tracked since this leader started (a restart): the log's time indexes.
            return self._on_writer(Blocking(self.log.max_timestamp_record), hw, None)
        return self._on_writer(FindTimestamp(self.log, msg.timestamp), hw, None)

    def _on_writer(self, ask: object, hw: int, fallback: tuple[int, int] | None
                   ) -> LoopFuture[OffsetAnswer]:
        """The answer of a record lookup run on the disk writer ((offset, timestamp) or None):
        that record if it is below the high watermark, `fallback` if the lookup found none,
        else no offset (-1)."""
        fut: LoopFuture[tuple[int, int] | None] = self.writer.ask(  # type: ignore[assignment]
            ask, block=False)
        out: LoopFuture[OffsetAnswer] = LoopFuture(self.loop)

        def done(f: LoopFuture[tuple[int, int] | None]) -> None:
            exc = f.exception()
            found = None if exc is not None else f.result() or fallback
            if exc is not None:
                out.set(OffsetAnswer(ErrorCode.KAFKA_STORAGE_ERROR))
            elif found is None or found[0] >= hw:
                out.set(OffsetAnswer(0, -1, -1))
            else:
                out.set(self._found(found[0], found[1]))

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
        self.host.stop()


def _active_base(log: Log) -> int:
    """The base offset of the log's active segment (0 for an empty log)."""
    segments = log.segments()
    return segments[-1][0] if segments else 0


def _answer(waiter: Hashable, result: PartitionResult) -> None:
    """A produce's answer: its waiter is the acked future of its Staged reply."""
    fut: LoopFuture[PartitionResult] = waiter  # type: ignore[assignment]
    if not fut.done():
        fut.set(result)
