"""The transaction host: runs one `__transaction_state` partition's transaction coordinator.

Concern: the I/O around the sans-IO `TxnCoordinator` (cluster/txn), as the group host
(actors/group_host.py) does it for groups: the partition is the same sans-IO `Partition` on
Raft as a Kafka partition, run by `PartitionHost` (one replica single node, a Raft group in
cluster mode). The coordinator serves only while this replica leads with an entry of its term
committed: on becoming such a leader (`on_leader(term)`, or the watch every `tick_s`) the host
replays the log on the disk writer, then serves (`finish_loading`, with the term as the
coordinator epoch the markers carry) unless the term moved meanwhile; on losing it the
coordinator resigns (every waiter NOT_COORDINATOR, marker writes of the old term dropped: the
next leader replays PrepareCommit/PrepareAbort and writes them again).

What the coordinator's `Output` asks is done here, in order:

    Completion  --> the request's future is set
    Append      --> one record batch appended acks=all --> on_persisted(id, error)
    WriteMarkers --> TxnIO.write_markers, partitions retried with backoff --> on_markers_written
    wants_producer_ids --> TxnIO.producer_ids(PRODUCER_ID_ASK) (one ask at a time)
                   --> add_producer_ids
    next_deadline_ms --> a timer --> tick (transaction timeouts)

The I/O that needs the Kafka request paths (writing COMMIT/ABORT markers to partitions of any
node, producer ids from the controller) is the core's `TxnIO`, given by the frontend
(actors/frontend/transactions.py) through the partition manager: this module must not import
the frontends (they import the partition manager, which starts this host). Must not know: the
Kafka wire format, where partitions live.

A failed fdatasync fails the log for good (fsyncgate), as for the group host: the host fails
what waits, tells the partition manager (`on_log_failed`), which forgets it and opens the
partition again by recovery, and stops.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Hashable
from typing import Any, Protocol

import pykka
import structlog

from redshank.actors.disk_writer import Blocking, OpenedPartition
from redshank.actors.group_host import read_group_records
from redshank.actors.partition_host import PartitionHost, Replicas
from redshank.actors.partition_leader import ReplicaStatus
from redshank.actors.runtime import LoopActor, LoopFuture
from redshank.cluster.group import GroupRecord
from redshank.cluster.kafka.topic_table import TopicPartition
from redshank.cluster.partition.api import Append, PartitionResult
from redshank.cluster.raft.types import Message
from redshank.cluster.txn.api import (
    Output,
    ProducerIdBlock,
    TxnRecord,
    TxnRequest,
    WriteMarkers,
)
from redshank.cluster.txn.coordinator import CoordinatorStatus, TxnConfig, TxnCoordinator
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.fast_dataclass import dataclass
from redshank.protocol.records import Record, build_batch
from redshank.storage import FlushCoordinator, Log

__all__ = ["MARKER_GONE", "PRODUCER_ID_ASK", "TXN_TOPIC", "TxnCall", "TxnHost", "TxnIO",
           "WhenServing", "marker_retriable", "read_txn_records", "txn_host_name"]

TXN_TOPIC = "__transaction_state"
# A marker's partition that no longer exists (its topic was deleted): nothing to write there.
MARKER_GONE = ErrorCode.UNKNOWN_TOPIC_ID
# Backoff between rounds of marker writes to partitions that answered a retriable error.
_MARKER_RETRY_MIN_S = 0.02
_MARKER_RETRY_MAX_S = 1.0
_MARKER_ATTEMPT_S = 30.0
# How often an idle single-node host checks its leadership (cluster mode: Raft's tick).
_WATCH_S = 0.5
# Producer ids asked of the controller at a time: one round trip (and one fsync of the
# controller's limit) per block instead of per id; a restart skips the rest of a block.
PRODUCER_ID_ASK = 1_000


def txn_host_name(partition: int) -> str:
    return f"txn/{partition}"


@dataclass(frozen=True, slots=True)
class TxnCall:
    """Step the coordinator with `request`; the reply is its result (a future of it)."""

    request: TxnRequest


@dataclass(frozen=True, slots=True)
class WhenServing:
    """-> True once the coordinator is ACTIVE (at once if it is), False if it stops first."""


class TxnIO(Protocol):
    """What the host asks of the core's request paths (the frontend implements it)."""

    async def write_markers(self, markers: WriteMarkers, partitions: tuple[TopicPartition, ...]
                            ) -> dict[TopicPartition, int]:
        """One attempt to write `markers`' control batch to each of `partitions` (wherever
        its leader is): the error of each (NONE: written; `MARKER_GONE`: no such partition)."""
        ...

    async def producer_ids(self, count: int) -> ProducerIdBlock | None:
        """Up to `count` producer ids from the controller (unique in the cluster, contiguous;
        fewer when the node's block runs out first); None: none now."""
        ...


def marker_retriable(error: int) -> bool:
    """Whether a partition that answered `error` to a marker is asked again (Kafka's
    TransactionMarkerRequestCompletionHandler): its leader moved or is not elected, it is
    loading or short of replicas, or its disk failed for now. Written (NONE), gone, or an
    answer saying the marker can never be written there (a fenced epoch: a newer coordinator
    owns the producer; an unsupported format) end the partition's part."""
    return error not in _MARKER_FINAL


_MARKER_FINAL = frozenset({
    ErrorCode.NONE, MARKER_GONE, ErrorCode.INVALID_PRODUCER_EPOCH, ErrorCode.PRODUCER_FENCED,
    ErrorCode.TRANSACTION_COORDINATOR_FENCED, ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT,
    ErrorCode.UNSUPPORTED_VERSION, ErrorCode.CORRUPT_MESSAGE, ErrorCode.INVALID_REQUEST,
})


def read_txn_records(log: Log, end: int | None = None) -> list[TxnRecord]:
    """Every record of the partition, in log order (writer thread: reads the disk). The
    coordinator writes no transactional or control batch here: only plain records count."""
    return [TxnRecord(r.key, r.value) for r in read_group_records(log, end)
            if isinstance(r, GroupRecord)]


def _append_error(result: PartitionResult) -> ErrorCode:
    """As the group host's: a replica no longer leading says NOT_LEADER_OR_FOLLOWER; any other
    failure is the storage's."""
    if result.error_code in (ErrorCode.NONE, ErrorCode.NOT_LEADER_OR_FOLLOWER):
        return ErrorCode(result.error_code)
    return ErrorCode.KAFKA_STORAGE_ERROR


def _now_ms() -> int:
    return int(time.time() * 1000)


class TxnHost(LoopActor):
    """The transaction coordinator of one `__transaction_state` partition, on the core that
    hosts its log (or replica): started by that core's partition manager once the log is open
    (single node: on the first transactional request; cluster mode: when the controller
    backend assigns the replica), stopped by it (a failed log, a dropped topic) or with the
    core."""

    def __init__(self, partition: int, opened: OpenedPartition, flush: FlushCoordinator,
                 writer: pykka.ActorRef[Any], loop: asyncio.AbstractEventLoop,
                 config: TxnConfig, io: Callable[[], TxnIO | None],
                 on_log_failed: Callable[[OpenedPartition], None] | None = None,
                 replicas: Replicas | None = None) -> None:
        """`io`: the core's `TxnIO` (None until the core's request paths attached it);
        `replicas`: the partition's Raft group (cluster mode), None: this replica alone."""
        super().__init__()
        self._opened = opened
        self._on_log_failed = on_log_failed
        self._log_failed = False
        self.loop = loop
        self.writer = writer
        self._io = io
        self.coordinator = TxnCoordinator(partition, config)
        self._waiting: dict[int, LoopFuture[Any]] = {}
        self._serving_waiters: list[LoopFuture[bool]] = []
        self._next_token = 0
        self._timer: asyncio.TimerHandle | None = None
        self._logger = structlog.get_logger("redshank.txn").bind(partition=partition)
        self._stopping = False
        self._started = False
        self._term = -1  # the term the coordinator loads or serves in
        self._load_gen = 0  # bumped by each load and resign: stale replays and markers dropped
        self._watch: asyncio.TimerHandle | None = None
        self._watch_s = replicas.tick_s if replicas is not None else _WATCH_S
        self._asking_ids = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self.host = PartitionHost(opened, flush, writer, loop, on_answer=self._answered,
                                  on_high_watermark=lambda _hw: None,
                                  on_flush_failed=self._flush_failed,
                                  on_leader=self._became_leader, replicas=replicas)

    @property
    def log(self) -> Log:
        return self.host.log

    def on_start(self) -> None:
        self._started = True
        self._check()
        self._watch = self.loop.call_later(self._watch_s, self._on_watch)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Message):
            self.host.step(message)
            return None
        if isinstance(message, ReplicaStatus):
            return self._status()
        if isinstance(message, WhenServing):
            return self._when_serving()
        if not isinstance(message, TxnCall):
            raise TypeError(f"transaction host got {type(message).__name__}")
        self._check()  # a leader that lost its term answers NOT_COORDINATOR, never stale
        self._next_token += 1
        token = self._next_token
        fut: LoopFuture[Any] = LoopFuture(self.loop)
        self._waiting[token] = fut
        self._apply(self.coordinator.request(token, message.request, _now_ms()))
        return fut

    def _status(self) -> dict[str, Any]:
        part = self.host.part
        core = part.consensus.core
        return {"role": core.role.name.lower(), "term": int(core.term), "leader": int(core.lead),
                "serves": part.serves(), "high_watermark": part.high_watermark,
                "log_end": self.log.dirty_offset + 1,
                "coordinator": self.coordinator.status.value}

    def _when_serving(self) -> bool | LoopFuture[bool]:
        if self.coordinator.status is CoordinatorStatus.ACTIVE and not self._asking_ids:
            return True
        fut: LoopFuture[bool] = LoopFuture(self.loop)
        self._serving_waiters.append(fut)
        return fut

    # ---- leadership ---------------------------------------------------------------------------

    def _became_leader(self, term: int) -> None:
        if self._started:  # not from inside the host's constructor: `on_start` checks then
            self._check()

    def _on_watch(self) -> None:
        self._watch = self.loop.call_later(self._watch_s, self._on_watch)
        self._check()

    def _check(self) -> None:
        """Serve exactly while this replica leads with an entry of its term committed: resign
        on losing that, replay on gaining it."""
        if self._stopping or self._log_failed:
            return
        part = self.host.part
        serving, term = part.serves(), part.term
        status = self.coordinator.status
        if status is not CoordinatorStatus.INACTIVE and (not serving or term != self._term):
            self._logger.info("txn_coordinator_resigned", term=self._term, now_term=term)
            self._load_gen += 1
            self._apply(self.coordinator.resign(_now_ms()))
            status = CoordinatorStatus.INACTIVE
        if serving and status is CoordinatorStatus.INACTIVE:
            self._load(term)

    def _load(self, term: int) -> None:
        """Replay the log (committed whole once an entry of this term is) on the disk writer,
        then serve in `term` unless leadership moved meanwhile."""
        self.coordinator.begin_loading()
        self._term = term
        self._load_gen += 1
        gen = self._load_gen
        started = time.monotonic()
        fut: LoopFuture[list[TxnRecord]] = self.writer.ask(  # type: ignore[assignment]
            Blocking(functools.partial(read_txn_records, self.log, self.log.dirty_offset)),
            block=False)

        def done(f: LoopFuture[list[TxnRecord]]) -> None:
            if gen != self._load_gen or self._stopping:
                return  # resigned meanwhile (a newer term loads on its own)
            exc = f.exception()
            if exc is None:
                try:
                    self.coordinator.load(f.result())
                except Exception as e:  # a damaged record: not served (loudly)
                    exc = e
            if exc is not None:
                self._logger.error("txn_replay_failed", term=term, error=repr(exc))
                self._load_gen += 1
                self._apply(self.coordinator.resign(_now_ms()))
                return  # the watch tries again
            self._apply(self.coordinator.finish_loading(_now_ms(), term))
            self._logger.info("txn_coordinator_serving", term=term,
                              replay_s=round(time.monotonic() - started, 3))
            if not self._asking_ids:  # else once the first ids came (see `_release_serving`)
                self._release_serving()
            self._check()  # the term may have moved while the replay ran

        fut.add_done_callback(done)

    # ---- the coordinator's output ------------------------------------------------------------

    def _apply(self, out: Output) -> None:
        for c in out.completions:
            fut = self._waiting.pop(c.token, None)  # type: ignore[call-overload]
            if fut is not None:
                fut.set(c.result)
        for append in out.appends:
            self._append(append.append_id, append.records)
        for markers in out.markers:
            self._start(self._write_markers(markers, self._load_gen))
        if out.wants_producer_ids and not self._asking_ids:
            self._asking_ids = True
            self._start(self._ask_producer_ids(self._load_gen))
        self._schedule()

    def _start(self, coro: Any) -> None:
        task: asyncio.Task[Any] = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._logger.error("txn_host_task_failed", error=repr(exc))

    def _append(self, append_id: int, records: tuple[TxnRecord, ...]) -> None:
        if not records:
            self.loop.call_soon(self._persisted, append_id, ErrorCode.NONE)
            return
        now = _now_ms()
        buf = bytearray(build_batch(
            [Record(i, now, r.key, r.value) for i, r in enumerate(records)]))
        # acks=all: answered once committed (one replica: durable here; replicated: on a
        # majority), so no transaction state rests on a write a new leader could lose.
        res = self.host.append(Append(buf, -1, None), append_id)
        if res is not None:  # refused at once (not the leader, a storage failure)
            if res.error_code != ErrorCode.NOT_LEADER_OR_FOLLOWER:
                self._logger.error("txn_append_failed", error=res.error_message)
            self.loop.call_soon(self._persisted, append_id, _append_error(res))

    def _answered(self, waiter: Hashable, result: PartitionResult) -> None:
        if self._stopping:
            return
        self._persisted(int(waiter), _append_error(result))  # type: ignore[call-overload]

    def _persisted(self, append_id: int, error: ErrorCode) -> None:
        if self._stopping:
            return
        self._apply(self.coordinator.on_persisted(append_id, error, _now_ms()))

    async def _write_markers(self, markers: WriteMarkers, gen: int) -> None:
        """Write `markers` to every partition, asking again those that answer a retriable error
        (with backoff), until all are written or the coordinator resigned (`gen` moved: the
        next leader writes them again after its replay)."""
        pending = dict.fromkeys(markers.partitions)
        delay = _MARKER_RETRY_MIN_S
        while pending:
            if gen != self._load_gen or self._stopping:
                return
            io = self._io()
            errors: dict[TopicPartition, int] = {}
            if io is not None:
                try:
                    # Bounded: a partition whose append hangs (a leader cut off from its
                    # followers) is asked again, as Kafka's request timeout does; a marker
                    # written twice is harmless (the second finds no open transaction).
                    errors = await asyncio.wait_for(
                        io.write_markers(markers, tuple(pending)), _MARKER_ATTEMPT_S)
                except Exception as exc:  # the request paths' boundary: logged, asked again
                    self._logger.warning("txn_markers_attempt_failed", error=repr(exc))
            if gen != self._load_gen or self._stopping:
                return
            for tp, error in errors.items():
                if tp in pending and not marker_retriable(error):
                    if error not in (ErrorCode.NONE, MARKER_GONE):
                        self._logger.warning("txn_marker_refused", ntp=f"{tp.topic}/{tp.partition}",
                                             producer_id=markers.producer_id,
                                             error=ErrorCode(error).name)
                    del pending[tp]
            if pending:
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MARKER_RETRY_MAX_S)
        self._apply(self.coordinator.on_markers_written(markers.marker_id, _now_ms()))

    async def _ask_producer_ids(self, gen: int) -> None:
        try:
            io = self._io()
            block = None
            if io is not None:
                try:
                    block = await io.producer_ids(PRODUCER_ID_ASK)
                except (pykka.ActorDeadError, OSError, TimeoutError) as exc:
                    self._logger.warning("txn_producer_ids_failed", error=repr(exc))
        finally:
            self._asking_ids = False
        # A block that comes after a resign is dropped: ids are never reused, only skipped.
        if block is not None and gen == self._load_gen and not self._stopping:
            self._apply(self.coordinator.add_producer_ids(block, _now_ms()))
        if self.coordinator.status is CoordinatorStatus.ACTIVE:
            self._release_serving()

    def _release_serving(self) -> None:
        """Tell who waits for the coordinator to serve (the first request's EnsureTxnHost) that
        it does: once ACTIVE with its first producer ids asked for, so a new transactional id's
        InitProducerId is not answered COORDINATOR_LOAD_IN_PROGRESS for want of one (librdkafka
        then waits ~0.5 s before it asks again)."""
        waiters, self._serving_waiters = self._serving_waiters, []
        for w in waiters:
            w.set(True)

    # ---- failures, timers, stop --------------------------------------------------------------

    def _flush_failed(self, exc: BaseException) -> None:
        # The partition already failed every append waiting (their answers follow).
        self._logger.error("txn_flush_failed", error=repr(exc))
        if self.host.failed and not self._log_failed:
            self._log_failed = True
            self._logger.error("txn_log_failed_reopening_on_next_use")
            if self._on_log_failed is not None:
                self._on_log_failed(self._opened)
            self.actor_ref.stop(block=False)

    def _schedule(self) -> None:
        deadline = None if self._stopping else self.coordinator.next_deadline_ms()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if deadline is not None:
            delay = max(0.0, (deadline - _now_ms()) / 1000)
            self._timer = self.loop.call_later(delay, self._tick)

    def _tick(self) -> None:
        self._timer = None
        if not self._stopping:
            self._apply(self.coordinator.tick(_now_ms()))

    def on_stop(self) -> None:
        self._stopping = True
        self._load_gen += 1
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in list(self._tasks):
            task.cancel()
        self.host.stop()
        waiting, self._waiting = self._waiting, {}
        for fut in waiting.values():  # the caller answers NOT_COORDINATOR: clients retry
            if not fut.done():
                fut.fail(pykka.ActorDeadError("transaction host stopped"))
        serving, self._serving_waiters = self._serving_waiters, []
        for w in serving:
            w.set(False)

