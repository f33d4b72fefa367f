"""The group host: runs one `__consumer_offsets` partition's group coordinator on its core.

Concern: the I/O around the sans-IO `GroupCoordinator` (cluster/group): replaying the partition's
records before serving (COORDINATOR_LOAD_IN_PROGRESS is never seen: the host starts only after
the replay), turning each `Append` into one record batch appended to the partition (the same
sans-IO `Partition` on Raft as a Kafka partition, run by `PartitionHost`) and reported once it
is committed (one replica: this node's fdatasync; flushes coalesce per loop turn), answering each
request's future when its completion comes out, and ticking at the coordinator's next deadline
(session timeouts, rebalance waits). Must not know: the Kafka wire format (handlers map it).

Transactions (KIP-98): an `Append` naming a producer is written as a transactional batch (the
header carries the producer id and epoch), one carrying a `TxnMarker` as Kafka's control batch
(control + transactional attributes, one record: key version 0 + type 0 abort / 1 commit,
value version 0 + coordinator epoch); the replay reads both back in log order
(`read_group_records`), so offsets of a transaction with no marker yet stay pending after a
restart, and the marker settles them as it did live.

Replicated (cluster mode, `replicas` given): the partition is one replica of a Raft group and
the coordinator serves only while this replica leads and an entry of its term committed. On
becoming such a leader (`on_leader(term)`, or the watch every `tick_s`) it replays the log (all
of it is committed then: nothing of its own term but the no-op, which lives in the kvstore)
on the disk writer and serves once the replay is back, if the term did not change meanwhile.
A follower, a leader still replaying or one whose term moved on answers from the coordinator's
INACTIVE/LOADING status (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS); a leader that stops
leading resigns: every waiter gets NOT_COORDINATOR and the groups are dropped (the next leader
replays them). Appends are acks=all: answered once committed on a majority.

    peers' Raft messages --> step --> PartitionHost --> on_leader(term) / watch --> _check
    _check: serving and INACTIVE --> begin_loading, read the log (writer) --> load, ACTIVE
            not serving (or a new term) and not INACTIVE --> resign (NOT_COORDINATOR)

A failed fdatasync fails the log (or its kvstore) for good (fsyncgate): the host then fails what
it was doing, tells the partition manager (`on_log_failed`), which forgets it, and stops; the
next group request (replicated: the manager at once) opens the partition again by recovery from
the disk and replays only what is durable. A failed write (ENOSPC) fails the appends waiting;
the flush is retried with the next.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import Callable, Hashable
from typing import Any, TypeAlias

import pykka
import structlog

from redshank.actors.disk_writer import Blocking, OpenedPartition
from redshank.actors.partition_host import PartitionHost, Replicas
from redshank.actors.partition_leader import ReplicaStatus
from redshank.actors.runtime import LoopActor, LoopFuture
from redshank.cluster.group import Append as GroupAppend
from redshank.cluster.group import (
    CoordinatorStatus,
    DeleteGroupsRequest,
    DescribeGroupsRequest,
    GroupConfig,
    GroupCoordinator,
    GroupRecord,
    HeartbeatRequest,
    JoinGroupRequest,
    LeaveGroupRequest,
    ListGroupsRequest,
    OffsetCommitRequest,
    OffsetDeleteRequest,
    OffsetFetchRequest,
    Output,
    SyncGroupRequest,
    TxnMarker,
    TxnMarkerRequest,
    TxnOffsetCommitRequest,
)
from redshank.cluster.partition.api import Append, PartitionResult
from redshank.cluster.raft.types import Message
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.fast_dataclass import dataclass
from redshank.protocol.record_batch import iter_batches
from redshank.protocol.records import (
    ControlType,
    Record,
    build_batch,
    build_control_batch,
    iter_records,
    parse_control_record,
)
from redshank.storage import FlushCoordinator, Log

__all__ = ["GROUPS_TOPIC", "GroupCall", "GroupHost", "GroupRequest", "group_host_name",
           "read_group_records"]

GROUPS_TOPIC = "__consumer_offsets"
_CHUNK = 1 << 20


def group_host_name(partition: int) -> str:
    return f"group/{partition}"


GroupRequest: TypeAlias = (
    JoinGroupRequest
    | SyncGroupRequest
    | HeartbeatRequest
    | LeaveGroupRequest
    | OffsetCommitRequest
    | OffsetFetchRequest
    | DescribeGroupsRequest
    | ListGroupsRequest
    | DeleteGroupsRequest
    | OffsetDeleteRequest
    | TxnOffsetCommitRequest
    | TxnMarkerRequest
)
# Each request's step of the coordinator, by the request's type.
_STEPS: dict[type, Callable[[GroupCoordinator, Any, int], Output]] = {
    JoinGroupRequest: GroupCoordinator.join_group,
    SyncGroupRequest: GroupCoordinator.sync_group,
    HeartbeatRequest: GroupCoordinator.heartbeat,
    LeaveGroupRequest: GroupCoordinator.leave_group,
    OffsetCommitRequest: GroupCoordinator.offset_commit,
    OffsetFetchRequest: GroupCoordinator.offset_fetch,
    DescribeGroupsRequest: GroupCoordinator.describe_groups,
    ListGroupsRequest: GroupCoordinator.list_groups,
    DeleteGroupsRequest: GroupCoordinator.delete_groups,
    OffsetDeleteRequest: GroupCoordinator.offset_delete,
    TxnOffsetCommitRequest: GroupCoordinator.txn_offset_commit,
    TxnMarkerRequest: GroupCoordinator.txn_marker,
}


@dataclass(frozen=True, slots=True)
class GroupCall:
    """Step the coordinator with `request` (the step its type names); the reply is the
    request's result."""

    request: GroupRequest


# What a replay reads: the records and transaction markers of the partition, in log order.
Replayed: TypeAlias = list[GroupRecord | TxnMarker]


def read_group_records(log: Log, end: int | None = None) -> Replayed:
    """Every record and transaction marker of the partition, in log order, up to the batch
    ending at `end` (None: the log's end) (writer thread: reads the disk). A record of a
    transactional batch carries its producer id; a control batch's COMMIT/ABORT record is a
    `TxnMarker` (other control records mean nothing to groups)."""
    out: Replayed = []
    offset: int = log.start_offset
    end = log.dirty_offset if end is None else end
    while offset <= end:
        chunk = log.read(offset, _CHUNK)
        if not chunk:
            break
        last = offset - 1
        for pos, h in iter_batches(chunk, verify_crc=False):
            if h.base_offset > end:
                break
            last = h.last_offset
            if h.is_control:
                for r in iter_records(chunk, pos):
                    control = parse_control_record(r)
                    if control.coordinator_epoch is not None:  # COMMIT or ABORT
                        out.append(TxnMarker(h.producer_id, h.producer_epoch,
                                             control.kind == ControlType.COMMIT,
                                             control.coordinator_epoch))
                continue
            producer_id = h.producer_id if h.is_transactional else -1
            for r in iter_records(chunk, pos):
                if r.key is not None:
                    out.append(GroupRecord(bytes(r.key), None if r.value is None
                                           else bytes(r.value), producer_id))
        if last < offset:
            break
        offset = last + 1
    return out


# A partition that checks transactional batches (producer state) may refuse ours with these:
# the coordinator passes them on (a fenced producer, a stale marker), never as a disk error.
_TXN_REFUSALS = frozenset({ErrorCode.INVALID_PRODUCER_EPOCH, ErrorCode.PRODUCER_FENCED,
                           ErrorCode.TRANSACTION_COORDINATOR_FENCED, ErrorCode.INVALID_TXN_STATE})


def _append_error(result: PartitionResult) -> ErrorCode:
    """The partition's answer to an append, as the coordinator maps it (`append_error`): a
    replica that no longer leads says NOT_LEADER_OR_FOLLOWER (the client is told
    NOT_COORDINATOR), a transactional refusal passes as it is; any other failure is the
    storage's."""
    if result.error_code == ErrorCode.NONE:
        return ErrorCode.NONE
    if result.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER:
        return ErrorCode.NOT_LEADER_OR_FOLLOWER
    if result.error_code in _TXN_REFUSALS:
        return ErrorCode(result.error_code)
    return ErrorCode.KAFKA_STORAGE_ERROR


def _now_ms() -> int:
    return int(time.time() * 1000)


class GroupHost(LoopActor):
    """The coordinator of one `__consumer_offsets` partition, on the core that hosts its log (or
    replica): started by that core's partition manager once the log is open (single node: on
    the first group request, after the replay; cluster mode: when the controller backend
    assigns the replica), stopped by it (a failed log, a dropped topic) or with the core."""

    def __init__(self, partition: int, num_partitions: int, opened: OpenedPartition,
                 flush: FlushCoordinator, writer: pykka.ActorRef[Any],
                 loop: asyncio.AbstractEventLoop, config: GroupConfig,
                 records: Replayed,
                 on_log_failed: Callable[[OpenedPartition], None] | None = None,
                 replicas: Replicas | None = None) -> None:
        """`replicas`: the partition's Raft group (cluster mode; `records` unused: the leader
        replays its log when it starts to serve); None: this replica alone, serving `records`
        replayed now."""
        super().__init__()
        self._opened = opened
        self._on_log_failed = on_log_failed
        self._log_failed = False
        self.loop = loop
        self.writer = writer
        self.coordinator = GroupCoordinator(config, partition=partition,
                                            num_partitions=num_partitions)
        self._waiting: dict[int, LoopFuture[Any]] = {}
        self._next_token = 0
        self._timer: asyncio.TimerHandle | None = None
        self._logger = structlog.get_logger("redshank.groups").bind(partition=partition)
        self._stopping = False
        self.replicated = replicas is not None
        self._term = -1  # the term the coordinator loads or serves in (replicated)
        self._load_gen = 0  # bumped by each load and resign: a stale replay is dropped
        self._watch: asyncio.TimerHandle | None = None
        self._started = False
        self._watch_s = replicas.tick_s if replicas is not None else 0.0
        self.host = PartitionHost(opened, flush, writer, loop, on_answer=self._answered,
                                  on_high_watermark=lambda _hw: None,
                                  on_flush_failed=self._flush_failed,
                                  on_leader=self._became_leader if self.replicated else None,
                                  replicas=replicas)
        self._pending_output = Output((), ())
        if not self.replicated:
            self.coordinator.begin_loading()
            self.coordinator.load(records)
            self._pending_output = self.coordinator.finish_loading(_now_ms())

    @property
    def log(self) -> Log:
        return self.host.log

    def on_start(self) -> None:
        self._started = True
        self._apply(self._pending_output)
        if self.replicated:
            self._check()
            self._watch = self.loop.call_later(self._watch_s, self._on_watch)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Message):
            self.host.step(message)
            return None
        if isinstance(message, ReplicaStatus):
            return self._status()
        if not isinstance(message, GroupCall):
            raise TypeError(f"group host got {type(message).__name__}")
        if self.replicated:
            self._check()  # a leader that lost its term answers NOT_COORDINATOR, never stale
        self._next_token += 1
        token = self._next_token
        fut: LoopFuture[Any] = LoopFuture(self.loop)
        self._waiting[token] = fut
        request = dataclasses.replace(message.request, token=token)
        self._apply(_STEPS[type(request)](self.coordinator, request, _now_ms()))
        return fut

    def _status(self) -> dict[str, Any]:
        """The replica's Raft view (as `PartitionLeader`'s) and the coordinator's status."""
        part = self.host.part
        core = part.consensus.core
        return {"role": core.role.name.lower(), "term": int(core.term), "leader": int(core.lead),
                "serves": part.serves(), "high_watermark": part.high_watermark,
                "log_end": self.log.dirty_offset + 1,
                "coordinator": self.coordinator.status.value}

    # ---- leadership (replicated) ------------------------------------------------------------

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
            self._logger.info("group_coordinator_resigned", term=self._term, now_term=term)
            self._load_gen += 1
            self._apply(self.coordinator.resign(_now_ms()))
            status = CoordinatorStatus.INACTIVE
        if serving and status is CoordinatorStatus.INACTIVE:
            self._load(term)

    def _load(self, term: int) -> None:
        """Replay the log (committed whole: see the module docstring) on the disk writer, then
        serve in `term` unless leadership moved meanwhile."""
        self.coordinator.begin_loading()
        self._term = term
        self._load_gen += 1
        gen = self._load_gen
        started = time.monotonic()
        fut: LoopFuture[Replayed] = self.writer.ask(  # type: ignore[assignment]
            Blocking(functools.partial(read_group_records, self.log, self.log.dirty_offset)),
            block=False)

        def done(f: LoopFuture[Replayed]) -> None:
            if gen != self._load_gen or self._stopping:
                return  # resigned meanwhile (a newer term loads on its own)
            exc = f.exception()
            if exc is None:
                try:
                    self.coordinator.load(f.result())
                except Exception as e:  # a damaged record: not served (loudly)
                    exc = e
            if exc is not None:
                self._logger.error("group_replay_failed", term=term, error=repr(exc))
                self._load_gen += 1
                self._apply(self.coordinator.resign(_now_ms()))
                return  # the watch tries again
            self._apply(self.coordinator.finish_loading(_now_ms()))
            self._logger.info("group_coordinator_serving", term=term,
                              replay_s=round(time.monotonic() - started, 3))
            self._check()  # the term may have moved while the replay ran

        fut.add_done_callback(done)

    def _apply(self, out: Output) -> None:
        for c in out.completions:
            fut = self._waiting.pop(int(c.token), None)  # type: ignore[call-overload]
            if fut is not None:
                fut.set(c.result)
        for append in out.appends:
            self._append(append)
        self._schedule()

    def _append(self, append: GroupAppend) -> None:
        append_id, records, marker = append.append_id, append.records, append.marker
        if not records and marker is None:
            self.loop.call_soon(self._persisted, append_id, ErrorCode.NONE)
            return
        now = _now_ms()
        if marker is not None:
            buf = bytearray(build_control_batch(
                ControlType.COMMIT if marker.committed else ControlType.ABORT,
                producer_id=marker.producer_id, producer_epoch=marker.producer_epoch,
                coordinator_epoch=marker.coordinator_epoch, timestamp=now))
        else:
            # A TxnOffsetCommit's batch is transactional, with no sequence (as Kafka's).
            buf = bytearray(build_batch(
                [Record(i, now, r.key, r.value) for i, r in enumerate(records)],
                producer_id=append.producer_id, producer_epoch=append.producer_epoch,
                is_transactional=append.producer_id >= 0))
        # acks=all: answered once committed (one replica: durable here; replicated: on a
        # majority), so no group answer rests on a write a new leader could lose.
        res = self.host.append(Append(buf, -1, None), append_id)
        if res is not None:  # refused at once (not the leader, a storage failure)
            if res.error_code != ErrorCode.NOT_LEADER_OR_FOLLOWER:
                self._logger.error("group_append_failed", error=res.error_message)
            self.loop.call_soon(self._persisted, append_id, _append_error(res))

    def _answered(self, waiter: Hashable, result: PartitionResult) -> None:
        if self._stopping:
            return  # the host answers what waited as it stops; our callers are failed below
        append_id = int(waiter)  # type: ignore[call-overload]
        self._persisted(append_id, _append_error(result))

    def _persisted(self, append_id: int, error: ErrorCode) -> None:
        self._apply(self.coordinator.on_persisted(append_id, error, _now_ms()))

    def _flush_failed(self, exc: BaseException) -> None:
        # The partition already failed every append waiting (their answers follow).
        self._logger.error("group_flush_failed", error=repr(exc))
        if self.host.failed and not self._log_failed:
            self._log_failed = True
            self._logger.error("group_log_failed_reopening_on_next_use")
            if self._on_log_failed is not None:
                self._on_log_failed(self._opened)
            self.actor_ref.stop(block=False)

    def _schedule(self) -> None:
        deadline = self.coordinator.next_deadline_ms()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if deadline is not None:
            delay = max(0.0, (deadline - _now_ms()) / 1000)
            self._timer = self.loop.call_later(delay, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._apply(self.coordinator.tick(_now_ms()))

    def on_stop(self) -> None:
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        self.host.stop()
        waiting, self._waiting = self._waiting, {}
        for fut in waiting.values():  # the caller answers NOT_COORDINATOR: clients retry
            if not fut.done():
                fut.fail(pykka.ActorDeadError("group host stopped"))
        if self._timer is not None:
            self._timer.cancel()
