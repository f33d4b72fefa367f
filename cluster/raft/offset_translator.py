"""Raft index <-> Kafka offset: configuration and no-op entries take no Kafka offsets.

Kafka offsets count the records of DATA entries only (an entry is one Kafka batch and takes its
lastOffsetDelta + 1 offsets), so a configuration batch never shifts them and an offset keeps its
meaning (it only changes if the entry is truncated, which never happens to a committed entry).
Must not know storage or messages.
"""

from __future__ import annotations

import bisect

from redshank.cluster.raft.types import Entry, Index
from redshank.storage.types import Offset as Offset  # one vocabulary with the storage log

_FIRST = Index(1)


class OffsetTranslator:
    """`_base[i - first]` is the Kafka offset of the first record at Raft index i (for a non-DATA
    entry: the offset the next record would get). A log compacted below `first` starts the
    translator there, at the Kafka offset its first entry begins at."""

    __slots__ = ("_base", "_count", "_first", "_origin")

    def __init__(self, first: Index = _FIRST, first_offset: int = 0) -> None:
        self._first = first
        self._origin = first_offset
        self._base: list[int] = []
        self._count: list[int] = []

    def append(self, entry: Entry) -> None:
        assert entry.index == self._first + len(self._base), "translator out of step with the log"
        self._base.append(self.next_offset())
        self._count.append(entry.span())

    def append_span(self, index: Index, span: int) -> None:
        """As `append`, for an entry known only by its span (recovered headers)."""
        assert index == self._first + len(self._base), "translator out of step with the log"
        self._base.append(self.next_offset())
        self._count.append(span)

    def truncate(self, first_removed: Index) -> None:
        del self._base[max(0, first_removed - self._first) :]
        del self._count[max(0, first_removed - self._first) :]

    def compact(self, below: Index) -> None:
        """Forget the entries below `below` (they are no longer asked about)."""
        n = min(max(0, below - self._first), len(self._base))
        if n:
            self._origin = self._base[n] if n < len(self._base) else self.next_offset()
            del self._base[:n]
            del self._count[:n]
            self._first = Index(self._first + n)

    def extend_back(self, spans: list[int], first_offset: int) -> None:
        """Entries before the first one are known again (`spans`, ending just before it), the
        first of them at Kafka offset `first_offset`."""
        assert len(spans) < self._first, "extends before index 1"
        bases, at = [], first_offset
        for span in spans:
            bases.append(at)
            at += span
        assert at == (self._base[0] if self._base else self._origin), "spans do not end here"
        self._base[:0] = bases
        self._count[:0] = spans
        self._first = Index(self._first - len(spans))
        self._origin = first_offset

    def __len__(self) -> int:
        """The last Raft index covered."""
        return self._first - 1 + len(self._base)

    def next_offset(self) -> Offset:
        if not self._base:
            return Offset(self._origin)
        return Offset(self._base[-1] + self._count[-1])

    def to_kafka(self, index: Index) -> Offset:
        """Base offset of the records at `index`."""
        return Offset(self._base[index - self._first])

    def end_offset(self, index: Index) -> Offset:
        """One past the last Kafka offset at or below `index` (a high watermark for commit)."""
        if index < self._first:
            return Offset(self._origin if index == self._first - 1 else 0)
        return Offset(self._base[index - self._first] + self._count[index - self._first])

    def to_raft(self, offset: Offset) -> Index | None:
        """Raft index of the entry holding `offset`, or None if no entry holds it."""
        i = bisect.bisect_right(self._base, offset) - 1
        while i >= 0 and self._count[i] == 0:
            i -= 1
        if i < 0 or offset >= self._base[i] + self._count[i]:
            return None
        return Index(self._first + i)
