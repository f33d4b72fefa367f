"""The classic group coordinator of one `__consumer_offsets` partition, as a sans-IO state machine.

The host (the partition's leader) feeds it requests, the clock (`now_ms` on every call), and the
outcome of the appends it asked for; every call returns an `Output`: completions `(token, result)`
for requests answered now (possibly requests made earlier) and record batches to append. It never
reads a clock, sleeps or does I/O; `next_deadline_ms()` says when `tick` has work.

    host                          GroupCoordinator
    become leader             ->  begin_loading()           status LOADING (requests: 14)
    replay the partition      ->  load(records) ...
                              ->  finish_loading(now)       status ACTIVE
    request(token, ...)       ->  join_group(...) etc.  ->  Output(completions, appends)
    append done               ->  on_persisted(id, err) ->  Output
    timer at next_deadline    ->  tick(now)             ->  Output
    lost leadership           ->  resign()              ->  Output (waiters get NOT_COORDINATOR)

Transactions (KIP-98): TxnOffsetCommit writes its offsets as a transactional batch and holds
them pending per producer id; the transaction coordinator's marker for this partition comes in
as `txn_marker`, which appends the control batch and, once it is committed, settles that
producer's pending offsets in every group here (`group_stm.settle_txn`, the rule replay uses).

    TxnOffsetCommit(pid)  ->  Append(txn batch, pid)  ->  persisted: group.pending_txn[pid]
    txn_marker(pid, C/A)  ->  Append(control batch)   ->  persisted: commit -> offsets, abort
                                                          -> dropped; then TxnMarkerResult

Must not know: sockets, actors, event loops, clocks, the Kafka wire format, how records are stored.
"""

from __future__ import annotations

import enum
import heapq
import random
from collections.abc import Iterable
from dataclasses import field

from redshank.cluster.group._effects import Effects, append_error
from redshank.cluster.group.api import (
    DeleteGroupsRequest,
    DeleteGroupsResult,
    DescribedGroup,
    DescribedMember,
    DescribeGroupsRequest,
    DescribeGroupsResult,
    GroupDeletion,
    GroupListing,
    GroupRecord,
    GroupState,
    HeartbeatRequest,
    HeartbeatResult,
    JoinGroupRequest,
    JoinGroupResult,
    LeaveGroupRequest,
    LeaveGroupResult,
    LeaveMemberResult,
    ListGroupsRequest,
    ListGroupsResult,
    OffsetCommitRequest,
    OffsetDeleteRequest,
    OffsetDeleteResult,
    OffsetFetchGroupResult,
    OffsetFetchRequest,
    OffsetFetchResult,
    Output,
    SyncGroupRequest,
    SyncGroupResult,
    TopicPartition,
    TxnMarker,
    TxnMarkerRequest,
    TxnMarkerResult,
    TxnOffsetCommitRequest,
)
from redshank.cluster.group.classic_group import ClassicGroup
from redshank.cluster.group.config import GroupConfig
from redshank.cluster.group.group_records import group_record
from redshank.cluster.group.group_stm import GroupStm, settle_txn
from redshank.cluster.group.offsets import OffsetManager, commit_failed
from redshank.cluster.group.partitioning import partition_for
from redshank.cluster.group.rebalance import Rebalancer
from redshank.cluster.group.txn_fences import ProducerFences
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.fast_dataclass import dataclass

__all__ = ["CoordinatorStatus", "GroupCoordinator", "GroupSnapshot"]

_E = ErrorCode


class CoordinatorStatus(enum.Enum):
    INACTIVE = "inactive"  # not the partition's leader: NOT_COORDINATOR
    LOADING = "loading"  # replaying the partition: COORDINATOR_LOAD_IN_PROGRESS
    ACTIVE = "active"


@dataclass(frozen=True, slots=True)
class GroupSnapshot:
    """A read-only view of one group, for admin tools, metrics and tests."""

    group_id: str
    state: GroupState
    generation_id: int
    protocol_type: str | None
    protocol_name: str | None
    leader_id: str | None
    members: tuple[str, ...]
    static_members: tuple[tuple[str, str], ...]
    pending_members: tuple[str, ...]
    offsets: tuple[tuple[TopicPartition, int], ...]
    # Open transactions' offsets: (producer id, partition, offset), not visible to fetches.
    pending_txn: tuple[tuple[int, TopicPartition, int], ...] = field(default=())


class GroupCoordinator:
    def __init__(
        self,
        config: GroupConfig | None = None,
        *,
        partition: int = 0,
        num_partitions: int = 1,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 <= partition < num_partitions:
            raise ValueError(f"partition {partition} outside 0..{num_partitions - 1}")
        self.config = config or GroupConfig()
        self.partition = partition
        self.num_partitions = num_partitions
        self._fx = Effects()
        # Member ids are random (client id + UUID) but reproducible from the seed in tests.
        self._rebalance = Rebalancer(self.config, self._fx, rng or random.Random())
        self._offsets = OffsetManager(self.config, self._fx)
        self._status = CoordinatorStatus.INACTIVE
        self._groups: dict[str, ClassicGroup] = {}
        self._stm: GroupStm | None = None
        self._fences = ProducerFences()
        # (deadline, seq, group id); stale entries are skipped (ClassicGroup.scheduled_deadline_ms)
        self._heap: list[tuple[int, int, str]] = []
        self._seq = 0
        self._retention_deadline_ms: int | None = None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def status(self) -> CoordinatorStatus:
        return self._status

    def begin_loading(self) -> None:
        """This node leads the partition now: replay it before serving (G9)."""
        if self._status is not CoordinatorStatus.INACTIVE:
            raise RuntimeError(f"begin_loading while {self._status.value}")
        self._status = CoordinatorStatus.LOADING
        self._stm = GroupStm()

    def load(self, records: Iterable[GroupRecord | TxnMarker]) -> None:
        """Apply replayed records and transaction markers in log order; raises
        GroupRecordError on a damaged record."""
        if self._stm is None:
            raise RuntimeError("load outside begin_loading/finish_loading")
        self._stm.apply_all(records)

    def finish_loading(self, now_ms: int) -> Output:
        if self._stm is None:
            raise RuntimeError("finish_loading without begin_loading")
        stm, self._stm = self._stm, None
        for group_id in stm.group_ids():
            value = stm.groups.get(group_id)
            group = (
                ClassicGroup(group_id) if value is None
                else ClassicGroup.from_value(group_id, value, now_ms)
            )
            group.offsets = dict(stm.offsets.get(group_id, {}))
            group.offset_positions = dict(stm.positions.get(group_id, {}))
            group.pending_txn = stm.pending_of(group_id)
            self._groups[group_id] = group
            self._fx.touch(group)
        self._fx.position = max(self._fx.position, stm.applied)
        self._fences = stm.fences
        self._status = CoordinatorStatus.ACTIVE
        self._retention_deadline_ms = now_ms + self.config.offsets_retention_check_interval_ms
        return self._drain()

    def resign(self, now_ms: int) -> Output:
        """Leadership moved: answer every waiting request with NOT_COORDINATOR, drop all state."""
        self._fx.fail_all(_E.NOT_LEADER_OR_FOLLOWER, now_ms)
        for group in self._groups.values():
            self._rebalance.fail_waiters(group, _E.NOT_COORDINATOR)
        self._groups.clear()
        self._fences = ProducerFences()
        self._heap.clear()
        self._fx.take_dirty()
        self._stm = None
        self._retention_deadline_ms = None
        self._status = CoordinatorStatus.INACTIVE
        return self._fx.drain()

    # -- routing and status ----------------------------------------------------------------

    def _status_error(self, group_id: str, *, needs_id: bool) -> ErrorCode | None:
        """Kafka's validateGroupStatus."""
        if needs_id and not group_id:
            return _E.INVALID_GROUP_ID
        if partition_for(group_id, self.num_partitions) != self.partition:
            return _E.NOT_COORDINATOR
        if self._status is CoordinatorStatus.LOADING:
            return _E.COORDINATOR_LOAD_IN_PROGRESS
        if self._status is CoordinatorStatus.INACTIVE:
            return _E.NOT_COORDINATOR
        return None

    def _group(self, group_id: str, now_ms: int) -> ClassicGroup:
        group = self._groups.get(group_id)
        if group is None:
            group = ClassicGroup(group_id, state_timestamp_ms=now_ms)
            self._groups[group_id] = group
        return group

    # -- requests --------------------------------------------------------------------------

    def join_group(self, req: JoinGroupRequest, now_ms: int) -> Output:
        error = self._status_error(req.group_id, needs_id=True)
        cfg = self.config
        if error is None and not (
            cfg.min_session_timeout_ms <= req.session_timeout_ms <= cfg.max_session_timeout_ms
        ):
            error = _E.INVALID_SESSION_TIMEOUT
        if error is None and req.member_id and req.group_id not in self._groups:
            error = _E.UNKNOWN_MEMBER_ID
        if error is not None:
            self._fx.complete(req.token, JoinGroupResult(error, member_id=req.member_id))
            return self._drain()
        created = req.group_id not in self._groups
        group = self._group(req.group_id, now_ms)
        self._rebalance.join(group, req, now_ms)
        if created and _pristine(group):
            del self._groups[req.group_id]  # a rejected first join leaves no group behind
        return self._drain()

    def sync_group(self, req: SyncGroupRequest, now_ms: int) -> Output:
        error = self._status_error(req.group_id, needs_id=True)
        group = self._groups.get(req.group_id)
        if error is None and group is None:
            error = _E.UNKNOWN_MEMBER_ID
        if error is not None or group is None:
            self._fx.complete(req.token, SyncGroupResult(error or _E.UNKNOWN_MEMBER_ID))
        else:
            self._rebalance.sync(group, req, now_ms)
        return self._drain()

    def heartbeat(self, req: HeartbeatRequest, now_ms: int) -> Output:
        error = self._status_error(req.group_id, needs_id=True)
        group = self._groups.get(req.group_id)
        if error is not None or group is None:
            self._fx.complete(req.token, HeartbeatResult(error or _E.UNKNOWN_MEMBER_ID))
        else:
            self._rebalance.heartbeat(group, req, now_ms)
        return self._drain()

    def leave_group(self, req: LeaveGroupRequest, now_ms: int) -> Output:
        error = self._status_error(req.group_id, needs_id=True)
        group = self._groups.get(req.group_id)
        if error is not None:
            self._fx.complete(req.token, LeaveGroupResult(error))
        elif group is None:
            unknown = tuple(
                LeaveMemberResult(m.member_id, m.group_instance_id, _E.UNKNOWN_MEMBER_ID)
                for m in req.members
            )
            self._fx.complete(req.token, LeaveGroupResult(_E.NONE, unknown))
        else:
            self._rebalance.leave(group, req, now_ms)
        return self._drain()

    def offset_commit(self, req: OffsetCommitRequest, now_ms: int) -> Output:
        error = self._status_error(req.group_id, needs_id=False)
        group = self._groups.get(req.group_id)
        if error is None and group is None and req.generation_id >= 0:
            error = _E.ILLEGAL_GENERATION  # a commit from a generation this group never had
        if error is not None:
            self._fx.complete(req.token, commit_failed(req.partitions, error))
            return self._drain()
        # No group yet: one that does not use group management ("simple" commits) is created.
        self._offsets.commit(self._group(req.group_id, now_ms), req, now_ms)
        return self._drain()

    def txn_offset_commit(self, req: TxnOffsetCommitRequest, now_ms: int) -> Output:
        """TxnOffsetCommit: answered once written; the offsets stay pending until the marker."""
        error = self._status_error(req.group_id, needs_id=False)
        group = self._groups.get(req.group_id)
        if error is None and group is None and req.generation_id >= 0:
            error = _E.ILLEGAL_GENERATION  # as OffsetCommit: a generation this group never had
        if error is None:
            error = self._fences.check(req.producer_id, req.producer_epoch)
        if error is not None:
            self._fx.complete(req.token, commit_failed(req.partitions, error))
            return self._drain()
        self._offsets.commit(self._group(req.group_id, now_ms), req, now_ms)
        return self._drain()

    def txn_marker(self, req: TxnMarkerRequest, now_ms: int) -> Output:
        """Append the transaction's marker; once committed, settle the producer's pending
        offsets in every group of this partition. NOT_LEADER_OR_FOLLOWER while not serving
        (inactive, or replaying: the transaction coordinator retries it); a stale marker is
        refused (`ProducerFences`)."""
        if self._status is not CoordinatorStatus.ACTIVE:
            self._fx.complete(req.token, TxnMarkerResult(_E.NOT_LEADER_OR_FOLLOWER))
            return self._drain()
        marker, token = req.marker, req.token
        fenced = self._fences.check(marker.producer_id, marker.producer_epoch,
                                    marker.coordinator_epoch)
        if fenced is not None:
            self._fx.complete(token, TxnMarkerResult(fenced))
            return self._drain()

        def persisted(error: ErrorCode, _now: int) -> None:
            if error == _E.NONE:
                self._fences.record(marker)
                self._settle(marker)
            self._fx.complete(token, TxnMarkerResult(error))

        self._fx.append([], persisted, producer_id=marker.producer_id,
                        producer_epoch=marker.producer_epoch, marker=marker)
        return self._drain()

    def _settle(self, marker: TxnMarker) -> None:
        for group in self._groups.values():
            pending = group.pending_txn.pop(marker.producer_id, None)
            if pending is not None:
                settle_txn(group.offsets, group.offset_positions, pending, marker.committed)
                self._fx.touch(group)

    def offset_fetch(self, req: OffsetFetchRequest, now_ms: int) -> Output:
        results = []
        for g in req.groups:
            error = self._status_error(g.group_id, needs_id=False)
            if error is not None:
                results.append(OffsetFetchGroupResult(g.group_id, error))
            else:
                results.append(self._offsets.fetch(self._groups.get(g.group_id), g,
                                                   req.require_stable))
        self._fx.complete(req.token, OffsetFetchResult(tuple(results)))
        return self._drain()

    def describe_groups(self, req: DescribeGroupsRequest, now_ms: int) -> Output:
        described = []
        for group_id in req.group_ids:
            error = self._status_error(group_id, needs_id=False)
            group = self._groups.get(group_id)
            if error is not None:
                described.append(DescribedGroup(group_id, error))
            elif group is None:
                described.append(DescribedGroup(group_id, _E.NONE))  # Kafka: "Dead", no members
            else:
                described.append(_describe(group))
        self._fx.complete(req.token, DescribeGroupsResult(tuple(described)))
        return self._drain()

    def list_groups(self, req: ListGroupsRequest, now_ms: int) -> Output:
        if self._status is not CoordinatorStatus.ACTIVE:
            error = (
                _E.COORDINATOR_LOAD_IN_PROGRESS
                if self._status is CoordinatorStatus.LOADING
                else _E.NOT_COORDINATOR
            )
            self._fx.complete(req.token, ListGroupsResult(error))
            return self._drain()
        states = {s.lower() for s in req.states_filter}
        types = {t.lower() for t in req.types_filter}
        listed = tuple(
            GroupListing(g.group_id, g.protocol_type or "", g.state.value)
            for g in self._groups.values()
            if (not states or g.state.value.lower() in states)
            and (not types or "classic" in types)
        )
        self._fx.complete(req.token, ListGroupsResult(_E.NONE, listed))
        return self._drain()

    def delete_groups(self, req: DeleteGroupsRequest, now_ms: int) -> Output:
        results: dict[str, ErrorCode] = {}
        records: list[GroupRecord] = []
        deleted: list[str] = []
        for group_id in req.group_ids:
            error = self._status_error(group_id, needs_id=False)
            group = self._groups.get(group_id)
            if error is None and (group is None or group.state is GroupState.DEAD):
                error = _E.GROUP_ID_NOT_FOUND
            if error is None and group is not None and group.state is not GroupState.EMPTY:
                error = _E.NON_EMPTY_GROUP
            if error is not None or group is None:
                results[group_id] = error or _E.GROUP_ID_NOT_FOUND
                continue
            group.transition(GroupState.DEAD, now_ms)
            del self._groups[group_id]
            self._rebalance.fail_waiters(group, _E.COORDINATOR_NOT_AVAILABLE)
            records += self._offsets.tombstones(group)
            records.append(group_record(group_id, None))
            deleted.append(group_id)
        token = req.token

        def answer(error: ErrorCode) -> None:
            for group_id in deleted:
                results[group_id] = append_error(error, offsets=False)
            self._fx.complete(token, DeleteGroupsResult(
                tuple(GroupDeletion(g, results[g]) for g in dict.fromkeys(req.group_ids))
            ))

        if deleted:
            self._fx.append(records, lambda error, _now: answer(error))
        else:
            answer(_E.NONE)
        return self._drain()

    def offset_delete(self, req: OffsetDeleteRequest, now_ms: int) -> Output:
        error = self._status_error(req.group_id, needs_id=True)
        group = self._groups.get(req.group_id)
        if error is None and (group is None or group.state is GroupState.DEAD):
            error = _E.GROUP_ID_NOT_FOUND
        if error is not None or group is None:
            self._fx.complete(req.token, OffsetDeleteResult(error or _E.GROUP_ID_NOT_FOUND))
            return self._drain()
        self._fx.touch(group)
        result = self._offsets.delete(group, req)
        if result is not None:
            self._fx.complete(req.token, result)
        return self._drain()

    # -- host callbacks --------------------------------------------------------------------

    def on_persisted(self, append_id: int, error: ErrorCode, now_ms: int) -> Output:
        """The append `append_id` is durable (error NONE) or failed; report in append order."""
        self._fx.persisted(append_id, error, now_ms)
        return self._drain()

    def tick(self, now_ms: int) -> Output:
        """Run every timer due at `now_ms`: session and join expiries, rebalance and sync
        timeouts, the initial rebalance delay, offset retention."""
        if self._status is not CoordinatorStatus.ACTIVE:
            return self._drain()
        due: dict[str, ClassicGroup] = {}
        while self._heap and self._heap[0][0] <= now_ms:
            deadline, _, group_id = heapq.heappop(self._heap)
            group = self._groups.get(group_id)
            if group is not None and group.scheduled_deadline_ms == deadline:
                group.scheduled_deadline_ms = None
                due[group_id] = group
        for group in due.values():
            self._rebalance.expire(group, now_ms)
        if self._retention_deadline_ms is not None and self._retention_deadline_ms <= now_ms:
            self._retention_deadline_ms = now_ms + self.config.offsets_retention_check_interval_ms
            self._purge_expired(now_ms)
        return self._drain()

    def next_deadline_ms(self) -> int | None:
        """When `tick` next has work (None: no timer). Earlier ticks are harmless no-ops."""
        if self._status is not CoordinatorStatus.ACTIVE:
            return None
        while self._heap:
            deadline, _, group_id = self._heap[0]
            group = self._groups.get(group_id)
            if group is not None and group.scheduled_deadline_ms == deadline:
                break
            heapq.heappop(self._heap)
        candidates = [d for d in (self._retention_deadline_ms,) if d is not None]
        if self._heap:
            candidates.append(self._heap[0][0])
        return min(candidates, default=None)

    # -- introspection ---------------------------------------------------------------------

    def group_ids(self) -> list[str]:
        return list(self._groups)

    def snapshot(self, group_id: str) -> GroupSnapshot | None:
        g = self._groups.get(group_id)
        if g is None:
            return None
        return GroupSnapshot(
            g.group_id, g.state, g.generation_id, g.protocol_type, g.protocol_name, g.leader_id,
            tuple(g.members), tuple(sorted(g.static_members.items())), tuple(g.pending_members),
            tuple(sorted((tp, v.offset) for tp, v in g.offsets.items())),
            tuple(sorted((pid, tp, p.value.offset) for pid, pending in g.pending_txn.items()
                         for tp, p in pending.items())),
        )

    def appends_in_flight(self) -> int:
        return self._fx.in_flight()

    # -- internals -------------------------------------------------------------------------

    def _purge_expired(self, now_ms: int) -> None:
        records: list[GroupRecord] = []
        for group in list(self._groups.values()):
            records += self._offsets.expire(group, now_ms)
            if _pristine(group):
                # Empty and nothing left to remember: the group is gone (Kafka: Dead).
                group.transition(GroupState.DEAD, now_ms)
                del self._groups[group.group_id]
                records.append(group_record(group.group_id, None))
        if records:
            self._fx.append(records, None)

    def _drain(self) -> Output:
        for group in self._fx.take_dirty():
            if self._groups.get(group.group_id) is not group:
                continue
            deadline = group.next_deadline_ms()
            if deadline != group.scheduled_deadline_ms:
                group.scheduled_deadline_ms = deadline
                if deadline is not None:
                    self._seq += 1
                    heapq.heappush(self._heap, (deadline, self._seq, group.group_id))
        if len(self._heap) > 64 + 4 * len(self._groups):
            # Heartbeats move deadlines all the time; drop the stale entries they leave behind.
            self._heap = [
                (g.scheduled_deadline_ms, i, g.group_id)
                for i, g in enumerate(self._groups.values())
                if g.scheduled_deadline_ms is not None
            ]
            heapq.heapify(self._heap)
        return self._fx.drain()


def _pristine(group: ClassicGroup) -> bool:
    """Empty with no members, pending ids, offsets or commits in flight: nothing to keep."""
    return (
        group.state is GroupState.EMPTY
        and not group.members
        and not group.pending_members
        and not group.offsets
        and not group.pending_commits
        and not group.pending_txn  # an open transaction keeps its group (Kafka)
    )



def _describe(g: ClassicGroup) -> DescribedGroup:
    stable = g.state is GroupState.STABLE
    members = tuple(
        DescribedMember(
            m.member_id, m.group_instance_id, m.client_id, m.client_host,
            m.metadata_for(g.protocol_name) if stable else b"",
            m.assignment if stable else b"",
        )
        for m in g.members.values()
    )
    return DescribedGroup(
        g.group_id, _E.NONE, g.state.value, g.protocol_type or "",
        (g.protocol_name or "") if stable else "", members,
    )
