"""Committed offsets of one group: OffsetCommit and TxnOffsetCommit checks, OffsetFetch answers,
retention (KIP-211).

A commit is visible to OffsetFetch, and acknowledged, only once its records are appended to
`__consumer_offsets` (the host reports it through `on_persisted`), so an answered commit survives
a coordinator restart and a fetch never shows an offset that could still be lost. A
transactional commit (KIP-98) is written the same way, as a transactional batch, but stays
pending (`ClassicGroup.pending_txn`) until its producer's marker settles it (the coordinator);
a partition with pending offsets is unstable for OffsetFetch's `require_stable` (KIP-447), is
not expired, and its tombstone (DeleteGroups, OffsetDelete) drops them too, as in Kafka.

Must not know: coordinator status and routing (the caller validated), the wire format.
"""

from __future__ import annotations

import struct

from redshank.cluster.group._effects import Effects, append_error
from redshank.cluster.group.api import (
    NO_OFFSET,
    NO_PRODUCER_ID,
    GroupRecord,
    GroupState,
    OffsetCommitPartition,
    OffsetCommitRequest,
    OffsetCommitResult,
    OffsetDeleteRequest,
    OffsetDeleteResult,
    OffsetFetchGroup,
    OffsetFetchGroupResult,
    PartitionError,
    PartitionOffset,
    TopicPartition,
    TxnOffsetCommitRequest,
)
from redshank.cluster.group.classic_group import ClassicGroup, PendingOffset
from redshank.cluster.group.config import GroupConfig
from redshank.cluster.group.group_records import OffsetKey, OffsetValue, offset_record
from redshank.protocol.error_codes import ErrorCode

__all__ = ["OffsetManager", "commit_failed", "subscribed_topics"]

_E = ErrorCode
_CONSUMER = "consumer"
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")


class OffsetManager:
    def __init__(self, config: GroupConfig, effects: Effects) -> None:
        self._config = config
        self._fx = effects

    def commit_error(self, group: ClassicGroup, req: OffsetCommitRequest | TxnOffsetCommitRequest
                     ) -> ErrorCode | None:
        """Kafka's validateOffsetCommit plus its per-state rule. A transactional commit skips
        the state rules (TxnOffsetCommit v0-2 carry no member; the group state is not enforced)
        and, like Kafka's, is accepted without a generation while the group is Empty."""
        txn = isinstance(req, TxnOffsetCommitRequest)
        if group.state is GroupState.DEAD:
            return _E.COORDINATOR_NOT_AVAILABLE
        if txn and req.generation_id < 0 and group.state is GroupState.EMPTY:
            return None
        if req.generation_id >= 0 or req.member_id != "" or req.group_instance_id is not None:
            if group.is_static_fenced(req.group_instance_id, req.member_id):
                return _E.FENCED_INSTANCE_ID
            if req.member_id not in group.members:
                return _E.UNKNOWN_MEMBER_ID
            if req.generation_id != group.generation_id:
                return _E.ILLEGAL_GENERATION
            if group.state is GroupState.COMPLETING_REBALANCE and not txn:
                # The member has this generation's JoinGroup answer but not its assignment yet.
                return _E.REBALANCE_IN_PROGRESS
            return None
        if group.state is not GroupState.EMPTY and not txn:
            # A "simple" commit (no generation, no member) is only for groups without members.
            return _E.UNKNOWN_MEMBER_ID
        return None

    def commit(self, group: ClassicGroup, req: OffsetCommitRequest | TxnOffsetCommitRequest,
               now_ms: int) -> None:
        """Write the offsets; a regular commit's become the committed ones once persisted, a
        transactional one's pending under its producer id."""
        self._fx.touch(group)
        error = self.commit_error(group, req)
        if error is not None:
            self._fx.complete(req.token, commit_failed(req.partitions, error))
            return
        txn = req if isinstance(req, TxnOffsetCommitRequest) else None
        expire = None
        if not isinstance(req, TxnOffsetCommitRequest):
            member = group.members.get(req.member_id)
            if member is not None:
                # A commit proves the member is alive, as a heartbeat does (Kafka).
                member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms
            expire = None if req.retention_time_ms < 0 else now_ms + req.retention_time_ms
        results: dict[int, PartitionError] = {}
        to_store: list[tuple[int, TopicPartition, OffsetValue]] = []
        for i, p in enumerate(req.partitions):
            metadata = p.metadata or ""
            if len(metadata.encode()) > self._config.offset_metadata_max_bytes:
                results[i] = PartitionError(p.topic, p.partition, _E.OFFSET_METADATA_TOO_LARGE)
                continue
            value = OffsetValue(p.offset, p.leader_epoch, metadata, now_ms, expire)
            to_store.append((i, TopicPartition(p.topic, p.partition), value))
        if not to_store:
            self._fx.complete(req.token, _ordered(results))
            return
        records = [
            offset_record(OffsetKey(group.group_id, tp[0], tp[1]), value)
            for _, tp, value in to_store
        ]
        for _, tp, _value in to_store:
            group.pending_commits[tp] += 1

        def persisted(error: ErrorCode, _now: int) -> None:
            self._fx.touch(group)
            for _, tp, _value in to_store:
                group.pending_commits[tp] -= 1
                if group.pending_commits[tp] <= 0:
                    del group.pending_commits[tp]
            # A group deleted meanwhile wrote its tombstones after these records: stay deleted.
            live = group.state is not GroupState.DEAD
            mapped = append_error(error, offsets=True)
            position = self._fx.position
            for i, tp, value in to_store:
                if error == _E.NONE and live:
                    if txn is None:
                        group.offsets[tp] = value
                        group.offset_positions[tp] = position
                    else:
                        group.pending_txn.setdefault(txn.producer_id, {})[tp] = PendingOffset(
                            position, value)
                results[i] = PartitionError(tp[0], tp[1], mapped)
            self._fx.complete(req.token, _ordered(results))

        self._fx.append(records, persisted,
                        producer_id=NO_PRODUCER_ID if txn is None else txn.producer_id,
                        producer_epoch=-1 if txn is None else txn.producer_epoch)

    def fetch(self, group: ClassicGroup | None, req: OffsetFetchGroup,
              require_stable: bool = False) -> OffsetFetchGroupResult:
        """The committed offsets (pending transactional ones are not shown); with
        `require_stable`, a partition with pending ones answers UNSTABLE_OFFSET_COMMIT."""
        live = group is not None and group.state is not GroupState.DEAD
        offsets = group.offsets if group is not None and live else {}
        if req.topics is None:
            wanted = sorted(offsets)
        else:
            wanted = [TopicPartition(topic, p) for topic, parts in req.topics for p in parts]
        out = []
        for tp in wanted:
            v = offsets.get(tp)
            if require_stable and group is not None and live and group.has_pending_txn(tp):
                out.append(PartitionOffset(tp[0], tp[1], NO_OFFSET, metadata="",
                                           error=_E.UNSTABLE_OFFSET_COMMIT))
            elif v is None:
                out.append(PartitionOffset(tp[0], tp[1], NO_OFFSET))
            else:
                out.append(PartitionOffset(tp[0], tp[1], v.offset, v.leader_epoch, v.metadata))
        return OffsetFetchGroupResult(req.group_id, _E.NONE, tuple(out))

    def expire(self, group: ClassicGroup, now_ms: int) -> list[GroupRecord]:
        """Drop offsets past retention (KIP-211); return their tombstones."""
        retention = self._config.offsets_retention_ms
        if group.protocol_type is not None and group.state is not GroupState.EMPTY:
            # A live consumer group keeps its offsets (we do not parse subscriptions, so unlike
            # Kafka we also keep offsets of topics it no longer subscribes to).
            return []
        empty_since = group.state_timestamp_ms if group.protocol_type is not None else -1
        expired = []
        for tp, v in group.offsets.items():
            if tp in group.pending_commits or group.has_pending_txn(tp):
                continue  # Kafka: an offset an open transaction may replace is kept
            if v.expire_timestamp_ms is not None:
                due = now_ms >= v.expire_timestamp_ms
            else:
                base = empty_since if empty_since >= 0 else v.commit_timestamp_ms
                due = now_ms - base >= retention
            if due:
                expired.append(tp)
        for tp in expired:
            del group.offsets[tp]
        return [offset_record(OffsetKey(group.group_id, t, p), None) for t, p in expired]

    def delete(self, group: ClassicGroup, req: OffsetDeleteRequest) -> OffsetDeleteResult | None:
        """OffsetDelete (Kafka's handleDeleteOffsets): a consumer group's partitions of topics
        a member subscribes to answer GROUP_SUBSCRIBED_TO_TOPIC; the others are deleted (NONE,
        also where nothing was committed). A group of another protocol type deletes only while
        Empty (else NON_EMPTY_GROUP). Returns the result at once when there is nothing to
        write, else appends the tombstones and answers once they are persisted (None)."""
        if group.protocol_type == _CONSUMER:
            subscribed = subscribed_topics(group)
        elif group.state is GroupState.EMPTY:
            subscribed = frozenset()
        else:
            return OffsetDeleteResult(_E.NON_EMPTY_GROUP)
        results: dict[int, PartitionError] = {}
        gone: list[tuple[int, TopicPartition]] = []
        for i, tp in enumerate(req.partitions):
            if subscribed is None or tp[0] in subscribed:
                results[i] = PartitionError(tp[0], tp[1], _E.GROUP_SUBSCRIBED_TO_TOPIC)
            elif _drop_pending(group, tp) | (group.offsets.pop(tp, None) is not None):
                gone.append((i, tp))
            else:
                results[i] = PartitionError(tp[0], tp[1], _E.NONE)
        if not gone:
            return _deleted(results)
        records = [offset_record(OffsetKey(group.group_id, tp[0], tp[1]), None) for _, tp in gone]
        token = req.token

        def persisted(error: ErrorCode, _now: int) -> None:
            mapped = append_error(error, offsets=True)
            for i, tp in gone:
                results[i] = PartitionError(tp[0], tp[1], mapped)
            self._fx.complete(token, _deleted(results))

        self._fx.append(records, persisted)
        return None

    def tombstones(self, group: ClassicGroup) -> list[GroupRecord]:
        """Delete every offset of the group now (DeleteGroups), pending transactional ones
        too: a tombstone for each partition either has (Kafka's deleteAllOffsets); replayed,
        it drops both."""
        gone = dict.fromkeys([*group.offsets, *(tp for pending in group.pending_txn.values()
                                                for tp in pending)])
        group.offsets.clear()
        group.pending_txn.clear()
        return [offset_record(OffsetKey(group.group_id, t, p), None) for t, p in gone]


def _drop_pending(group: ClassicGroup, tp: TopicPartition) -> bool:
    """Drop every open transaction's offset of `tp` (its tombstone is being written)."""
    found = False
    for producer_id in list(group.pending_txn):
        pending = group.pending_txn[producer_id]
        if pending.pop(tp, None) is not None:
            found = True
            if not pending:
                del group.pending_txn[producer_id]
    return found


def commit_failed(partitions: tuple[OffsetCommitPartition, ...],
                  error: ErrorCode) -> OffsetCommitResult:
    """The same error for every partition of a commit."""
    return OffsetCommitResult(
        tuple(PartitionError(p.topic, p.partition, error) for p in partitions)
    )


def _ordered(results: dict[int, PartitionError]) -> OffsetCommitResult:
    return OffsetCommitResult(tuple(results[i] for i in sorted(results)))


def _deleted(results: dict[int, PartitionError]) -> OffsetDeleteResult:
    return OffsetDeleteResult(_E.NONE, tuple(results[i] for i in sorted(results)))


def subscribed_topics(group: ClassicGroup) -> frozenset[str] | None:
    """The topics a consumer group's members subscribe to, from their ConsumerProtocol
    subscriptions (v0-3 start with version int16 and the topic array); None if one cannot be
    read (then every topic counts as subscribed, as Kafka's `isSubscribedToTopic`)."""
    topics: set[str] = set()
    for member in group.members.values():
        data = member.metadata_for(group.protocol_name)
        try:
            count = _I32.unpack_from(data, _I16.size)[0]
            pos = _I16.size + _I32.size
            if count < 0:
                return None
            for _ in range(count):
                size = _I16.unpack_from(data, pos)[0]
                pos += _I16.size
                if size < 0 or pos + size > len(data):
                    return None
                topics.add(str(data[pos:pos + size], "utf-8"))
                pos += size
        except (struct.error, UnicodeDecodeError):
            return None
    return frozenset(topics)
