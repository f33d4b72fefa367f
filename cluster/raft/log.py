"""The log the Raft core reads and writes, behind a Protocol, plus an in-memory implementation.

The core keeps the log it has (durable or not) in a `RaftLog`; the host makes it durable from
`Ready.entries`. Index 0 is a sentinel with term 0. A log may begin after index 1 (the entries
before `first_index()` are compacted away; the term just before it is still known), and may hold
entries it cannot hand out without I/O: `entry`/`slice` then raise `EntriesUnavailable` and the
host loads them. Must not know files, segments or Kafka offsets (`cluster/partition/raft_log.py`
adapts the storage log to this Protocol).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from redshank.cluster.raft.types import Config, Entry, EntryKind, Index, Term


class EntriesUnavailable(Exception):
    """The entries lo..hi exist but are not in memory: the host must load them."""

    def __init__(self, lo: Index, hi: Index) -> None:
        super().__init__(f"entries {lo}..{hi} are not in memory")
        self.lo = lo
        self.hi = hi


class RaftLog(Protocol):
    def first_index(self) -> Index:
        """The first index held (1 unless compacted); `term(first_index() - 1)` is known."""
        ...

    def last_index(self) -> Index: ...

    def configs(self) -> list[tuple[Index, Config]]:
        """Every configuration entry held, in index order."""
        ...

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

    def first_index(self) -> Index:
        return Index(1)

    def last_index(self) -> Index:
        return Index(len(self._entries))

    def configs(self) -> list[tuple[Index, Config]]:
        return [(e.index, e.config) for e in self._entries
                if e.kind == EntryKind.CONFIG and e.config is not None]

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
