"""Merges queued Kafka produce requests into one Raft append, bounded by a memory semaphore
(Redpanda's `replicate_batcher`).

Every acks level goes through here. Units (bytes) are taken when a request is queued and released
only when the follower requests carrying its entry have been handed off, so a slow network pushes
back on producers instead of growing memory. Must not know Raft internals or transport.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from redshank.cluster.raft.types import Index


class Acks(enum.IntEnum):
    NONE = 0
    LEADER = 1
    ALL = -1


@dataclass(frozen=True, slots=True)
class ReplicateRequest:
    id: int
    records: tuple[bytes, ...]
    acks: Acks

    def size(self) -> int:
        return sum(len(r) for r in self.records) + 8 * len(self.records)


class ReplicateBatcher:
    def __init__(self, max_bytes: int = 1 << 20, max_batch_bytes: int = 64 << 10) -> None:
        self.max_bytes = max_bytes
        self.max_batch_bytes = max_batch_bytes
        self.available = max_bytes
        self._queue: list[ReplicateRequest] = []
        self._held: list[tuple[Index, int]] = []  # (index, units) awaiting follower hand-off

    def enqueue(self, req: ReplicateRequest) -> bool:
        """Queue a request; False means no memory units are left (backpressure)."""
        size = req.size()
        if size > self.available and (self._queue or self._held):
            return False
        self.available -= size
        self._queue.append(req)
        return True

    def pending(self) -> bool:
        return bool(self._queue)

    def idle(self) -> bool:
        """Nothing queued and no units held."""
        return not self._queue and not self._held

    def take(self) -> list[ReplicateRequest]:
        """The next batch: queued requests merged up to `max_batch_bytes` (at least one)."""
        out: list[ReplicateRequest] = []
        size = 0
        while self._queue and (not out or size + self._queue[0].size() <= self.max_batch_bytes):
            req = self._queue.pop(0)
            size += req.size()
            out.append(req)
        return out

    def hold(self, index: Index, batch: list[ReplicateRequest]) -> None:
        """The batch was appended at `index`; its units stay taken until hand-off."""
        self._held.append((index, sum(r.size() for r in batch)))

    def refuse(self, batch: list[ReplicateRequest]) -> None:
        """The batch was not appended (not leader): give its units back."""
        self.available += sum(r.size() for r in batch)

    def handed_off(self, up_to: Index) -> None:
        """Follower requests for entries up to `up_to` were handed to the transport."""
        while self._held and self._held[0][0] <= up_to:
            self.available += self._held.pop(0)[1]

    def drop_all(self) -> list[ReplicateRequest]:
        """Leadership lost: release everything; returns the queued requests to fail."""
        queued, self._queue = self._queue, []
        self._held.clear()
        self.available = self.max_bytes
        return queued
