"""One transactional id's in-memory metadata and the transitions the coordinator persists.

A transition is computed first (`Transit`, immutable), written to the log as the id's new value,
and applied only once the append is durable (`TxnMetadata.apply`): a failed append leaves the
metadata exactly as it was. While a transition is in flight `pending` names its target state, and
every request that would start another one for the same id answers CONCURRENT_TRANSACTIONS (Kafka's
`pendingState`).

Must not know: the coordinator's request rules, the log, clocks.
"""

from __future__ import annotations

import dataclasses

from redshank.cluster.kafka.topic_table import TopicPartition
from redshank.cluster.txn.api import (
    NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
    DescribedTransaction,
    TxnState,
)
from redshank.cluster.txn.txn_records import TxnValue
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.fast_dataclass import dataclass

__all__ = ["MAX_EPOCH", "Transit", "TxnMetadata", "epoch_exhausted"]

MAX_EPOCH = 32767  # int16


def epoch_exhausted(epoch: int) -> bool:
    """Kafka never hands a client MAX_EPOCH: the coordinator must always be able to bump once
    more to fence the current producer (TransactionMetadata.isEpochExhausted)."""
    return epoch >= MAX_EPOCH - 1


@dataclass(frozen=True, slots=True)
class Transit:
    """The metadata a transition leads to (Kafka's TxnTransitMetadata)."""

    state: TxnState
    producer_id: int
    previous_producer_id: int
    producer_epoch: int
    last_producer_epoch: int
    timeout_ms: int
    partitions: tuple[TopicPartition, ...]
    start_ms: int
    last_update_ms: int

    def value(self) -> TxnValue:
        return TxnValue(
            self.producer_id, self.producer_epoch, self.timeout_ms, self.state,
            () if self.state is TxnState.EMPTY else self.partitions,
            self.last_update_ms, self.start_ms,
        )


class TxnMetadata:
    """Lives in one TxnCoordinator (the leader of its `__transaction_state` partition), created
    by InitProducerId for a new id or by loading; ends when its tombstone is durable or the
    coordinator resigns."""

    __slots__ = (
        "last_producer_epoch", "last_update_ms", "partitions", "pending", "persisted",
        "previous_producer_id", "producer_epoch", "producer_id", "start_ms", "state",
        "timeout_ms", "transactional_id",
    )

    def __init__(
        self, transactional_id: str, *, producer_id: int, producer_epoch: int, timeout_ms: int,
        state: TxnState, last_update_ms: int, partitions: tuple[TopicPartition, ...] = (),
        start_ms: int = -1, previous_producer_id: int = NO_PRODUCER_ID,
        last_producer_epoch: int = NO_PRODUCER_EPOCH, persisted: bool = False,
    ) -> None:
        self.transactional_id = transactional_id
        self.producer_id = producer_id
        self.previous_producer_id = previous_producer_id
        # Invariant: never decreases while producer_id stays the same; a new producer id starts
        # at 0 (checked by apply).
        self.producer_epoch = producer_epoch
        # The epoch before the last InitProducerId bump, only in memory (as in Kafka): lets a
        # KIP-360 retry of that bump get the same answer.
        self.last_producer_epoch = last_producer_epoch
        self.timeout_ms = timeout_ms
        self.state = state
        # Insertion-ordered set: the order the partitions joined (markers go out in it).
        self.partitions: dict[TopicPartition, None] = dict.fromkeys(partitions)
        self.start_ms = start_ms
        self.last_update_ms = last_update_ms
        self.pending: TxnState | None = None
        self.persisted = persisted  # False: created by InitProducerId, first record in flight

    @classmethod
    def from_value(cls, transactional_id: str, v: TxnValue) -> TxnMetadata:
        return cls(
            transactional_id, producer_id=v.producer_id, producer_epoch=v.producer_epoch,
            timeout_ms=v.timeout_ms, state=v.state, last_update_ms=v.last_update_ms,
            partitions=v.partitions, start_ms=v.start_ms,
            previous_producer_id=v.previous_producer_id, persisted=True,
        )

    def transit(self, **changes: object) -> Transit:
        """The current metadata with `changes` (Transit field names)."""
        base = Transit(
            self.state, self.producer_id, self.previous_producer_id, self.producer_epoch,
            self.last_producer_epoch, self.timeout_ms, tuple(self.partitions), self.start_ms,
            self.last_update_ms,
        )
        return dataclasses.replace(base, **changes)  # type: ignore[arg-type]

    def apply(self, t: Transit) -> None:
        """The append of `t` is durable: take it over. A transition that would move the epoch
        backwards is a bug in the coordinator, not a client error."""
        if t.producer_id == self.producer_id:
            if t.producer_epoch < self.producer_epoch:
                raise RuntimeError(
                    f"{self.transactional_id}: epoch {self.producer_epoch} -> {t.producer_epoch}"
                )
        elif t.producer_epoch != 0:
            raise RuntimeError(
                f"{self.transactional_id}: new producer id {t.producer_id} at epoch "
                f"{t.producer_epoch}"
            )
        self.state = t.state
        self.producer_id = t.producer_id
        self.previous_producer_id = t.previous_producer_id
        self.producer_epoch = t.producer_epoch
        self.last_producer_epoch = t.last_producer_epoch
        self.timeout_ms = t.timeout_ms
        self.partitions = dict.fromkeys(t.partitions)
        self.start_ms = t.start_ms
        self.last_update_ms = t.last_update_ms
        self.persisted = True

    def describe(self) -> DescribedTransaction:
        return DescribedTransaction(
            self.transactional_id, ErrorCode.NONE, self.state, self.producer_id,
            self.producer_epoch, self.timeout_ms, self.start_ms, tuple(self.partitions),
        )
