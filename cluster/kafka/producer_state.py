"""Idempotent producer state of one partition: per producer id, the last 5 batches' sequences.

Concern: deciding whether a batch from an idempotent producer is new, a retry of one already
written (the original offset is returned, no duplicate is stored), out of order, or from a fenced
epoch (notes G20). A duplicate names the original's offsets; whether the original is durable
yet is its host's question (a retry is answered only once the original is, at the retry's acks
level). Must not know: logs, actors, sockets. Not persisted on its own: the host rebuilds it from
the log's tail when the log is opened, so it holds what a restart would recover; an unknown
producer id is accepted at any sequence (as Kafka does once a producer's state expired).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from redshank.cluster.partition.api import ProducerBatch
from redshank.protocol.error_codes import ErrorCode

__all__ = ["WINDOW", "Duplicate", "ProducerStateTable", "SequenceError"]

WINDOW = 5  # clients keep at most 5 requests in flight per partition
_INT32_MAX = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Duplicate:
    base_offset: int
    last_offset: int


@dataclass(frozen=True, slots=True)
class SequenceError:
    error_code: int
    message: str


@dataclass(slots=True)
class _Producer:
    epoch: int
    # (first sequence, last sequence, base offset, last offset), oldest first.
    batches: deque[tuple[int, int, int, int]] = field(default_factory=lambda: deque(maxlen=WINDOW))


def _next_seq(seq: int) -> int:
    return 0 if seq == _INT32_MAX else seq + 1


class ProducerStateTable:
    def __init__(self) -> None:
        self._producers: dict[int, _Producer] = {}

    def __len__(self) -> int:
        return len(self._producers)

    def check(self, batch: ProducerBatch) -> Duplicate | SequenceError | None:
        """None: append it; Duplicate: answer with the original offset; else the error."""
        state = self._producers.get(batch.producer_id)
        if state is None or batch.producer_epoch > state.epoch:
            return None  # a new producer or a new epoch starts a fresh sequence space
        if batch.producer_epoch < state.epoch:
            return SequenceError(
                ErrorCode.INVALID_PRODUCER_EPOCH,
                f"epoch {batch.producer_epoch} below the producer's epoch {state.epoch}",
            )
        for first, last, base, last_offset in state.batches:
            if first == batch.first_sequence and last == batch.last_sequence:
                return Duplicate(base, last_offset)
        if not state.batches:
            return None
        expected = _next_seq(state.batches[-1][1])
        if batch.first_sequence != expected:
            return SequenceError(
                ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
                f"sequence {batch.first_sequence}, expected {expected}",
            )
        return None

    def truncate(self, offset: int) -> None:
        """The log lost every batch from `offset` on (a Raft conflict: they never committed):
        forget them, so a producer's retry of one is appended again instead of answered with
        offsets that now hold nothing or another batch. A producer left with no batch is
        forgotten (any sequence is accepted from it, as for an expired producer)."""
        for pid in list(self._producers):
            state = self._producers[pid]
            while state.batches and state.batches[-1][2] >= offset:
                state.batches.pop()
            if not state.batches:
                del self._producers[pid]

    def record(self, batch: ProducerBatch, base_offset: int, last_offset: int) -> None:
        """Remember an appended batch (call only after `check` returned None)."""
        state = self._producers.get(batch.producer_id)
        if state is None or batch.producer_epoch > state.epoch:
            state = self._producers[batch.producer_id] = _Producer(batch.producer_epoch)
        state.batches.append((batch.first_sequence, batch.last_sequence, base_offset,
                              last_offset))
