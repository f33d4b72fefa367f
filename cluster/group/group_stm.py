"""Replay of a `__consumer_offsets` partition: the latest group metadata and offsets per group,
and the offsets of transactions still open.

Applying records in log order leaves, per key, the last value written (a tombstone removes the
key), which is exactly what compaction keeps; the coordinator builds its groups from the result
when loading completes. Transactional offsets (KIP-98: records of a transactional batch, a
TxnOffsetCommit) are held per producer id until that producer's marker: COMMIT makes them the
committed ones (unless a regular commit of the same key was written after them), ABORT drops
them, and with no marker yet they stay pending. `settle_txn` is that rule, used by the
coordinator too when a marker it wrote is committed.

Must not know: the coordinator's rebalance logic, where the records came from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from redshank.cluster.group.api import NO_PRODUCER_ID, GroupRecord, TopicPartition, TxnMarker
from redshank.cluster.group.classic_group import PendingOffset
from redshank.cluster.group.group_records import (
    GroupValue,
    OffsetKey,
    OffsetValue,
    decode_group_value,
    decode_key,
    decode_offset_value,
)
from redshank.cluster.group.txn_fences import ProducerFences

__all__ = ["GroupStm", "settle_txn"]


def settle_txn(offsets: dict[TopicPartition, OffsetValue], positions: dict[TopicPartition, int],
               pending: Mapping[TopicPartition, PendingOffset], committed: bool) -> None:
    """One group's share of a transaction's marker: on COMMIT each pending offset becomes the
    committed one unless the committed one's record is later in the log (Kafka keeps the most
    recent record, so compaction of the partition cannot change which offset wins)."""
    if not committed:
        return
    for tp, p in pending.items():
        if tp not in offsets or p.position > positions.get(tp, -1):
            offsets[tp] = p.value
            positions[tp] = p.position


class GroupStm:
    def __init__(self) -> None:
        # Invariant: every value here is the last non-tombstone record of its key applied so far
        # (transactional records only once their producer's COMMIT marker is applied).
        self.groups: dict[str, GroupValue] = {}
        self.offsets: dict[str, dict[TopicPartition, OffsetValue]] = {}
        # The log position (`applied` when read) of each committed offset's record.
        self.positions: dict[str, dict[TopicPartition, int]] = {}
        # Open transactions: producer id -> group id -> offsets written, no marker yet.
        self.pending: dict[int, dict[str, dict[TopicPartition, PendingOffset]]] = {}
        self.fences = ProducerFences()  # the epochs of the markers applied
        self.applied = 0

    def apply(self, record: GroupRecord | TxnMarker) -> None:
        """Apply one record or marker; raises GroupRecordError on a damaged key or value."""
        if isinstance(record, TxnMarker):
            self.applied += 1
            self._end_txn(record)
            return
        key = decode_key(record.key)
        self.applied += 1
        if isinstance(key, OffsetKey):
            tp = TopicPartition(key.topic, key.partition)
            if record.value is None:
                self._drop_offset(key.group_id, tp)
            elif record.producer_id != NO_PRODUCER_ID:
                value = decode_offset_value(record.value)
                self.pending.setdefault(record.producer_id, {}).setdefault(
                    key.group_id, {})[tp] = PendingOffset(self.applied, value)
            else:
                value = decode_offset_value(record.value)
                self.offsets.setdefault(key.group_id, {})[tp] = value
                self.positions.setdefault(key.group_id, {})[tp] = self.applied
        elif record.value is None:
            # A group tombstone leaves offsets alone: DeleteGroups writes theirs explicitly.
            self.groups.pop(key.group_id, None)
        else:
            self.groups[key.group_id] = decode_group_value(record.value)

    def _drop_offset(self, group_id: str, tp: TopicPartition) -> None:
        """An offset tombstone removes the committed offset and, as in Kafka, every open
        transaction's offset of that partition in the group (DeleteGroups, OffsetDelete)."""
        group_offsets = self.offsets.get(group_id)
        if group_offsets is not None:
            group_offsets.pop(tp, None)
            if not group_offsets:
                del self.offsets[group_id]
                self.positions.pop(group_id, None)
        for producer_id in list(self.pending):
            by_group = self.pending[producer_id]
            group_pending = by_group.get(group_id)
            if group_pending is not None:
                group_pending.pop(tp, None)
                if not group_pending:
                    del by_group[group_id]
                    if not by_group:
                        del self.pending[producer_id]

    def _end_txn(self, marker: TxnMarker) -> None:
        self.fences.record(marker)
        for group_id, pending in self.pending.pop(marker.producer_id, {}).items():
            if marker.committed:
                settle_txn(self.offsets.setdefault(group_id, {}),
                           self.positions.setdefault(group_id, {}), pending, True)

    def apply_all(self, records: Iterable[GroupRecord | TxnMarker]) -> None:
        for record in records:
            self.apply(record)

    def pending_of(self, group_id: str) -> dict[int, dict[TopicPartition, PendingOffset]]:
        """The group's open transactions: producer id -> its pending offsets."""
        return {pid: dict(by_group[group_id]) for pid, by_group in self.pending.items()
                if group_id in by_group}

    def group_ids(self) -> list[str]:
        """Every group with metadata, offsets or pending offsets, in first-seen order."""
        pending = [g for by_group in self.pending.values() for g in by_group]
        return list(dict.fromkeys([*self.groups, *self.offsets, *pending]))
