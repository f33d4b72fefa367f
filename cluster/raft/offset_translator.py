"""Raft index <-> Kafka offset: configuration and no-op entries take no Kafka offsets.

Kafka offsets count the records of DATA entries only (an entry is one Kafka batch and takes its
lastOffsetDelta + 1 offsets), so a configuration batch never shifts them and an offset keeps its
meaning (it only changes if the entry is truncated, which never happens to a committed entry).
Must not know storage or messages.
"""

from __future__ import annotations

import bisect
from typing import NewType

from redshank.cluster.raft.types import Entry, Index

Offset = NewType("Offset", int)


class OffsetTranslator:
    """`_base[i]` is the Kafka offset of the first record at Raft index i + 1 (for a non-DATA
    entry: the offset the next record would get)."""

    __slots__ = ("_base", "_count")

    def __init__(self) -> None:
        self._base: list[int] = []
        self._count: list[int] = []

    def append(self, entry: Entry) -> None:
        assert entry.index == len(self._base) + 1, "translator out of step with the log"
        self._base.append(self.next_offset())
        self._count.append(entry.span())

    def truncate(self, first_removed: Index) -> None:
        del self._base[first_removed - 1 :]
        del self._count[first_removed - 1 :]

    def __len__(self) -> int:
        """The last Raft index covered."""
        return len(self._base)

    def next_offset(self) -> Offset:
        if not self._base:
            return Offset(0)
        return Offset(self._base[-1] + self._count[-1])

    def to_kafka(self, index: Index) -> Offset:
        """Base offset of the records at `index`."""
        return Offset(self._base[index - 1])

    def end_offset(self, index: Index) -> Offset:
        """One past the last Kafka offset at or below `index` (a high watermark for commit)."""
        if index == 0:
            return Offset(0)
        return Offset(self._base[index - 1] + self._count[index - 1])

    def to_raft(self, offset: Offset) -> Index | None:
        """Raft index of the entry holding `offset`, or None if no entry holds it."""
        i = bisect.bisect_right(self._base, offset) - 1
        while i >= 0 and self._count[i] == 0:
            i -= 1
        if i < 0 or offset >= self._base[i] + self._count[i]:
            return None
        return Index(i + 1)
