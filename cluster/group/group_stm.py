"""Replay of a `__consumer_offsets` partition: the latest group metadata and offsets per group.

Applying records in log order leaves, per key, the last value written (a tombstone removes the
key), which is exactly what compaction keeps; the coordinator builds its groups from the result
when loading completes.

Must not know: the coordinator's rebalance logic, where the records came from.
"""

from __future__ import annotations

from collections.abc import Iterable

from redshank.cluster.group.api import GroupRecord, TopicPartition
from redshank.cluster.group.group_records import (
    GroupValue,
    OffsetKey,
    OffsetValue,
    decode_group_value,
    decode_key,
    decode_offset_value,
)

__all__ = ["GroupStm"]


class GroupStm:
    def __init__(self) -> None:
        # Invariant: every value here is the last non-tombstone record of its key applied so far.
        self.groups: dict[str, GroupValue] = {}
        self.offsets: dict[str, dict[TopicPartition, OffsetValue]] = {}
        self.applied = 0

    def apply(self, record: GroupRecord) -> None:
        """Apply one record; raises GroupRecordError on a damaged key or value."""
        key = decode_key(record.key)
        self.applied += 1
        if isinstance(key, OffsetKey):
            tp = TopicPartition(key.topic, key.partition)
            if record.value is None:
                group_offsets = self.offsets.get(key.group_id)
                if group_offsets is not None:
                    group_offsets.pop(tp, None)
                    if not group_offsets:
                        del self.offsets[key.group_id]
            else:
                value = decode_offset_value(record.value)
                self.offsets.setdefault(key.group_id, {})[tp] = value
        elif record.value is None:
            # A group tombstone leaves offsets alone: DeleteGroups writes theirs explicitly.
            self.groups.pop(key.group_id, None)
        else:
            self.groups[key.group_id] = decode_group_value(record.value)

    def apply_all(self, records: Iterable[GroupRecord]) -> None:
        for record in records:
            self.apply(record)

    def group_ids(self) -> list[str]:
        """Every group with metadata or offsets, in first-seen order."""
        return list(dict.fromkeys([*self.groups, *self.offsets]))
