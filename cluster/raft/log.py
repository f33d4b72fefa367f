"""The log the Raft core reads and writes, behind a Protocol, plus an in-memory implementation.

The core keeps the log it has (durable or not) in a `RaftLog`; the host makes it durable from
`Ready.entries`. Index 0 is a sentinel with term 0. Must not know files, segments or Kafka offsets
(the storage log adapts to this Protocol later).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from redshank.cluster.raft.types import Entry, Index, Term


class RaftLog(Protocol):
    def last_index(self) -> Index: ...

    def term(self, index: Index) -> Term:
        """Term of the entry at `index` (0 for index 0); `index` must be <= last_index."""
        ...

    def entry(self, index: Index) -> Entry: ...

    def slice(self, lo: Index, hi: Index) -> list[Entry]:
        """Entries lo..hi inclusive."""
        ...

    def append(self, entries: Sequence[Entry]) -> None:
        """Append; the first entry's index may be <= last_index + 1, truncating the suffix."""
        ...


class MemoryLog:
    """A list of entries; `_entries[i - 1]` has index i."""

    __slots__ = ("_entries",)

    def __init__(self, entries: Sequence[Entry] = ()) -> None:
        self._entries: list[Entry] = list(entries)
        for i, e in enumerate(self._entries, start=1):
            assert e.index == i, "entries must be contiguous from index 1"

    def last_index(self) -> Index:
        return Index(len(self._entries))

    def term(self, index: Index) -> Term:
        if index == 0:
            return Term(0)
        return self._entries[index - 1].term

    def entry(self, index: Index) -> Entry:
        assert index >= 1
        return self._entries[index - 1]

    def slice(self, lo: Index, hi: Index) -> list[Entry]:
        return self._entries[lo - 1 : hi]

    def append(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        first = entries[0].index
        assert 1 <= first <= len(self._entries) + 1, "append leaves a gap"
        del self._entries[first - 1 :]
        self._entries.extend(entries)

    def entries(self) -> list[Entry]:
        return list(self._entries)
