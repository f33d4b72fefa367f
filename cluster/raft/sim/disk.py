"""A simulated disk for one node: ordered writes, fsync, and crashes that lose unsynced writes.

Writes are kept in order; a crash keeps everything synced plus a random prefix of the writes since
the last sync (the page cache may have flushed some of them). Must not know Raft's rules.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from redshank.cluster.raft.types import Entry, HardState


class SimDisk:
    __slots__ = ("_pending", "hard_state", "log")

    def __init__(self) -> None:
        # Synced state: what survives any crash.
        self.log: list[Entry] = []
        self.hard_state = HardState()
        self._pending: list[tuple[list[Entry], HardState | None]] = []

    def write(self, entries: list[Entry], hard_state: HardState | None) -> None:
        if entries or hard_state is not None:
            self._pending.append((entries, hard_state))

    def dirty(self) -> bool:
        return bool(self._pending)

    def sync(self) -> None:
        for entries, hs in self._pending:
            self._apply(entries, hs)
        self._pending.clear()

    def crash(self, rng: random.Random) -> None:
        keep = rng.randrange(len(self._pending) + 1) if self._pending else 0
        for entries, hs in self._pending[:keep]:
            self._apply(entries, hs)
        self._pending.clear()

    def lose_unsynced(self) -> None:
        """Power loss with nothing of the page cache reaching the disk."""
        self._pending.clear()

    def _apply(self, entries: list[Entry], hs: HardState | None) -> None:
        if entries:
            first = entries[0].index
            del self.log[first - 1 :]
            self.log.extend(entries)
        if hs is not None:
            self.hard_state = hs

    def has(self, index: int, term: int) -> bool:
        """Is the entry (index, term) durable here?"""
        return 0 < index <= len(self.log) and self.log[index - 1].term == term


class Durable:
    """What a crash of one replica can no longer take away: the terms of its log entries and
    its hard state as of its last completed fsync (the simulator's shadow of a real storage
    log and kvstore, for the checkers)."""

    __slots__ = ("hard_state", "terms")

    def __init__(self) -> None:
        self.terms: list[int] = []  # terms[i - 1]: term of the durable entry at index i
        self.hard_state = HardState()

    def differs(self, last: int, first: int, term_at: Callable[[Any], int]) -> range:
        """The indexes up to `last` where a log (`term_at(i)` for i >= `first`; entries below
        are committed and unchanged) differs from this one: where they agree, the prefix
        agrees too (log matching), so the scan goes back from the end and stops there."""
        k = min(len(self.terms), last)
        while k >= first and self.terms[k - 1] != term_at(k):
            k -= 1
        # A shadow shorter than the log's start (files this shadow never saw: a removed
        # directory a power loss brought back) is extended from the start.
        return range(max(k, first - 1) + 1, last + 1)

    def synced(self, last: int, changes: dict[int, int], hard_state: HardState) -> None:
        """An fsync covered the replica's log up to `last`, whose terms differ from these at
        the indexes in `changes` (as `differs` found them when the flush began), and
        `hard_state`."""
        start = min(changes) if changes else last + 1
        del self.terms[start - 1 :]
        self.terms.extend([0] * (start - 1 - len(self.terms)))  # unknown below: never "has"
        self.terms.extend(changes[i] for i in range(start, last + 1))
        self.hard_state = hard_state

    def has(self, index: int, term: int) -> bool:
        """Is the entry (index, term) durable here?"""
        return 0 < index <= len(self.terms) and self.terms[index - 1] == term
