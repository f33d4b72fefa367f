"""The group host: runs one `__consumer_offsets` partition's group coordinator on its core.

Concern: the I/O around the sans-IO `GroupCoordinator` (cluster/group): replaying the partition's
records before serving (COORDINATOR_LOAD_IN_PROGRESS is never seen: the host starts only after
the replay), turning each `Append` into one record batch appended to the partition (the same
sans-IO `Partition` on Raft as a Kafka partition, run by `PartitionHost`) and reported once it
is committed (one replica: this node's fdatasync; flushes coalesce per loop turn), answering each
request's future when its completion comes out, and ticking at the coordinator's next deadline
(session timeouts, rebalance waits). Must not know: the Kafka wire format (handlers map it).

A failed fdatasync fails the log (or its kvstore) for good (fsyncgate): the host then fails what
it was doing, tells the partition manager (`on_log_failed`), which forgets it, and stops; the
next group request opens the partition again by recovery from the disk and replays only what is
durable. A failed write (ENOSPC) fails the appends waiting; the flush is retried with the next.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeAlias

import pykka
import structlog

from redshank.actors.disk_writer import OpenedPartition
from redshank.actors.partition_host import PartitionHost
from redshank.actors.runtime import LoopActor, LoopFuture
from redshank.cluster.group import (
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
    OffsetFetchRequest,
    Output,
    SyncGroupRequest,
)
from redshank.cluster.partition.api import Append, PartitionResult
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.record_batch import iter_batches
from redshank.protocol.records import Record, build_batch, iter_records
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
}


@dataclass(frozen=True, slots=True)
class GroupCall:
    """Step the coordinator with `request` (the step its type names); the reply is the
    request's result."""

    request: GroupRequest


def read_group_records(log: Log) -> list[GroupRecord]:
    """Every record of the partition, in log order (writer thread: reads the disk)."""
    out: list[GroupRecord] = []
    offset: int = log.start_offset
    end = log.dirty_offset
    while offset <= end:
        chunk = log.read(offset, _CHUNK)
        if not chunk:
            break
        last = offset - 1
        for pos, h in iter_batches(chunk, verify_crc=False):
            last = h.last_offset
            for r in iter_records(chunk, pos):
                if r.key is not None:
                    out.append(GroupRecord(bytes(r.key), None if r.value is None
                                           else bytes(r.value)))
        if last < offset:
            break
        offset = last + 1
    return out


def _now_ms() -> int:
    return int(time.time() * 1000)


class GroupHost(LoopActor):
    def __init__(self, partition: int, num_partitions: int, opened: OpenedPartition,
                 flush: FlushCoordinator, writer: pykka.ActorRef[Any],
                 loop: asyncio.AbstractEventLoop, config: GroupConfig,
                 records: list[GroupRecord],
                 on_log_failed: Callable[[OpenedPartition], None] | None = None) -> None:
        super().__init__()
        self._opened = opened
        self._on_log_failed = on_log_failed
        self._log_failed = False
        self.loop = loop
        self.coordinator = GroupCoordinator(config, partition=partition,
                                            num_partitions=num_partitions)
        self._waiting: dict[int, LoopFuture[Any]] = {}
        self._next_token = 0
        self._timer: asyncio.TimerHandle | None = None
        self._logger = structlog.get_logger("redshank.groups").bind(partition=partition)
        self._stopping = False
        self.host = PartitionHost(opened, flush, writer, loop, on_answer=self._answered,
                                  on_high_watermark=lambda _hw: None,
                                  on_flush_failed=self._flush_failed)
        self.coordinator.begin_loading()
        self.coordinator.load(records)
        self._pending_output = self.coordinator.finish_loading(_now_ms())

    @property
    def log(self) -> Log:
        return self.host.log

    def on_start(self) -> None:
        self._apply(self._pending_output)

    def on_receive(self, message: Any) -> Any:
        if not isinstance(message, GroupCall):
            raise TypeError(f"group host got {type(message).__name__}")
        self._next_token += 1
        token = self._next_token
        fut: LoopFuture[Any] = LoopFuture(self.loop)
        self._waiting[token] = fut
        request = dataclasses.replace(message.request, token=token)
        self._apply(_STEPS[type(request)](self.coordinator, request, _now_ms()))
        return fut

    def _apply(self, out: Output) -> None:
        for c in out.completions:
            fut = self._waiting.pop(int(c.token), None)  # type: ignore[call-overload]
            if fut is not None:
                fut.set(c.result)
        for append in out.appends:
            self._append(append.append_id, append.records)
        self._schedule()

    def _append(self, append_id: int, records: tuple[GroupRecord, ...]) -> None:
        if not records:
            self.loop.call_soon(self._persisted, append_id, ErrorCode.NONE)
            return
        now = _now_ms()
        buf = bytearray(build_batch(
            [Record(i, now, r.key, r.value) for i, r in enumerate(records)]))
        res = self.host.append(Append(buf, -1, None), append_id)
        if res is not None:  # refused at once (not the leader, a storage failure)
            self._logger.error("group_append_failed", error=res.error_message)
            self.loop.call_soon(self._persisted, append_id, ErrorCode.KAFKA_STORAGE_ERROR)

    def _answered(self, waiter: Hashable, result: PartitionResult) -> None:
        if self._stopping:
            return  # the host answers what waited as it stops; our callers are failed below
        append_id = int(waiter)  # type: ignore[call-overload]
        self._persisted(append_id, ErrorCode.NONE if result.error_code == 0
                        else ErrorCode.KAFKA_STORAGE_ERROR)

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
        self.host.stop()
        waiting, self._waiting = self._waiting, {}
        for fut in waiting.values():  # the caller answers NOT_COORDINATOR: clients retry
            if not fut.done():
                fut.fail(pykka.ActorDeadError("group host stopped"))
        if self._timer is not None:
            self._timer.cancel()
