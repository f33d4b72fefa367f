"""Queues Kafka produce requests for Raft appends, bounded by a memory semaphore (Redpanda's
`replicate_batcher`). Each request carries one Kafka record batch and becomes one entry (batches
stay opaque: they are never merged); the requests of one turn go out in one Ready.

Every acks level goes through here. Units (bytes) are taken when a request is queued and released
only when the follower requests carrying its entry have been handed off, so a slow network pushes
back on producers instead of growing memory. Must not know Raft internals or transport.
"""

from __future__ import annotations

import enum
from collections import deque

from redshank.cluster.raft.batches import Buffer
from redshank.cluster.raft.types import Index
from redshank.protocol.fast_dataclass import dataclass


class Acks(enum.IntEnum):
    NONE = 0
    LEADER = 1
    ALL = -1


@dataclass(frozen=True, slots=True)
class ReplicateRequest:
    id: int
    batch: Buffer  # one Kafka record batch
    acks: Acks

    def size(self) -> int:
        return len(self.batch)


class ReplicateBatcher:
    def __init__(self, max_bytes: int = 1 << 20) -> None:
        self.max_bytes = max_bytes
        self.available = max_bytes
        self._queue: deque[ReplicateRequest] = deque()
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

    def take(self) -> ReplicateRequest:
        """The next queued request (its batch becomes one entry)."""
        return self._queue.popleft()

    def hold(self, index: Index, req: ReplicateRequest) -> None:
        """The request was appended at `index`; its units stay taken until hand-off."""
        self._held.append((index, req.size()))

    def refuse(self, req: ReplicateRequest) -> None:
        """The request was not appended (not leader): give its units back."""
        self.available += req.size()

    def handed_off(self, up_to: Index) -> None:
        """Follower requests for entries up to `up_to` were handed to the transport."""
        while self._held and self._held[0][0] <= up_to:
            self.available += self._held.pop(0)[1]

    def drop_all(self) -> list[ReplicateRequest]:
        """Leadership lost: release everything; returns the queued requests to fail."""
        queued, self._queue = list(self._queue), deque()
        self._held.clear()
        self.available = self.max_bytes
        return queued
