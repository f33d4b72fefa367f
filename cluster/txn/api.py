"""The transaction coordinator's inputs and outputs (KIP-98): requests, results and effects.

The contract between the sans-IO `TxnCoordinator` (cluster/txn/coordinator.py) and its host
(actors/txn_host.py), shaped like the group coordinator's (cluster/group/api.py): the host feeds
requests with a token and the clock, and executes what each call returns, in order:

- `Completion(token, result)`: answer that request now (possibly one made earlier).
- `Append(append_id, records)`: append these `__transaction_state` records as one batch of the
  coordinator's partition (acks=all: committed on a majority), then report the outcome with
  `on_persisted(append_id, error, now_ms)`, in the order the appends were returned.
- `WriteMarkers(marker_id, ...)`: write a COMMIT or ABORT control batch for `producer_id`/
  `producer_epoch` to every partition listed (data partitions and `__consumer_offsets` partitions
  alike: the transaction's offsets commit is decided by the marker on the group's partition, as in
  Kafka), retrying a partition that answers a retriable error (its leader moved, not yet elected)
  until it succeeds or the coordinator resigns; then report with `on_markers_written(marker_id,
  now_ms)`. Markers may be written concurrently; `on_markers_written` comes once all are written.

Values are the coordinator's own small types; the Kafka handlers map every version of
InitProducerId (v0-5), AddPartitionsToTxn (v0-5: v4+ batches several transactional ids; per id
it is one `AddPartitionsRequest`), AddOffsetsToTxn, EndTxn, ListTransactions and
DescribeTransactions to and from them. TxnOffsetCommit is the group coordinator's (it holds the
offsets pending until the marker on its partition).

Must not know: the wire encoding of any Kafka message, connections, clocks.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable
from typing import TypeAlias

from redshank.cluster.kafka.topic_table import TopicPartition
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.fast_dataclass import dataclass

__all__ = [
    "NO_PRODUCER_EPOCH",
    "NO_PRODUCER_ID",
    "AddOffsetsRequest",
    "AddOffsetsResult",
    "AddPartitionsRequest",
    "AddPartitionsResult",
    "Append",
    "Completion",
    "DescribeTransactionsRequest",
    "DescribeTransactionsResult",
    "DescribedTransaction",
    "EndTxnRequest",
    "EndTxnResult",
    "InitProducerIdRequest",
    "InitProducerIdResult",
    "ListTransactionsRequest",
    "ListTransactionsResult",
    "Output",
    "ProducerIdBlock",
    "Token",
    "TransactionListing",
    "TxnRecord",
    "TxnRequest",
    "TxnResult",
    "TxnState",
    "WriteMarkers",
]

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1

Token: TypeAlias = Hashable


class TxnState(enum.Enum):
    """Kafka's transaction states, named as DescribeTransactions/ListTransactions show them."""

    EMPTY = "Empty"
    ONGOING = "Ongoing"
    PREPARE_COMMIT = "PrepareCommit"
    PREPARE_ABORT = "PrepareAbort"
    COMPLETE_COMMIT = "CompleteCommit"
    COMPLETE_ABORT = "CompleteAbort"
    DEAD = "Dead"
    PREPARE_EPOCH_FENCE = "PrepareEpochFence"


# ---------------------------------------------------------------------------------------------
# Requests and results.


@dataclass(frozen=True, slots=True)
class InitProducerIdRequest:
    """InitProducerId with a transactional id. `producer_id`/`producer_epoch` are v3+ (KIP-360:
    a producer re-initialising after an error names the id and epoch it had; -1 otherwise)."""

    transactional_id: str
    transaction_timeout_ms: int
    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_PRODUCER_EPOCH


@dataclass(frozen=True, slots=True)
class InitProducerIdResult:
    error: ErrorCode
    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_PRODUCER_EPOCH


@dataclass(frozen=True, slots=True)
class AddPartitionsRequest:
    transactional_id: str
    producer_id: int
    producer_epoch: int
    partitions: tuple[TopicPartition, ...]
    verify_only: bool = False  # v4+ verify-only (KIP-890): answer whether they are added


@dataclass(frozen=True, slots=True)
class AddPartitionsResult:
    """One error per partition, in request order (a request-wide error is given to each)."""

    errors: tuple[tuple[TopicPartition, ErrorCode], ...]


@dataclass(frozen=True, slots=True)
class AddOffsetsRequest:
    """AddOffsetsToTxn: the coordinator adds the group's `__consumer_offsets` partition
    (`offsets_partition`, computed by the handler with cluster.group.partitioning) to the
    transaction, so the marker that ends it decides the group's pending offsets."""

    transactional_id: str
    producer_id: int
    producer_epoch: int
    group_id: str
    offsets_partition: TopicPartition


@dataclass(frozen=True, slots=True)
class AddOffsetsResult:
    error: ErrorCode


@dataclass(frozen=True, slots=True)
class EndTxnRequest:
    transactional_id: str
    producer_id: int
    producer_epoch: int
    committed: bool


@dataclass(frozen=True, slots=True)
class EndTxnResult:
    error: ErrorCode


@dataclass(frozen=True, slots=True)
class ListTransactionsRequest:
    """Filters as in Kafka: empty = any. `duration_filter_ms` (v1): only transactions running
    longer than that (-1 = any)."""

    state_filters: tuple[str, ...] = ()
    producer_id_filters: tuple[int, ...] = ()
    duration_filter_ms: int = -1


@dataclass(frozen=True, slots=True)
class TransactionListing:
    transactional_id: str
    producer_id: int
    state: TxnState


@dataclass(frozen=True, slots=True)
class ListTransactionsResult:
    error: ErrorCode
    transactions: tuple[TransactionListing, ...] = ()
    unknown_state_filters: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DescribeTransactionsRequest:
    transactional_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DescribedTransaction:
    transactional_id: str
    error: ErrorCode  # TRANSACTIONAL_ID_NOT_FOUND, NOT_COORDINATOR, ... or NONE
    state: TxnState | None = None
    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_PRODUCER_EPOCH
    transaction_timeout_ms: int = 0
    transaction_start_time_ms: int = -1
    partitions: tuple[TopicPartition, ...] = ()


@dataclass(frozen=True, slots=True)
class DescribeTransactionsResult:
    transactions: tuple[DescribedTransaction, ...]


TxnRequest: TypeAlias = (
    InitProducerIdRequest | AddPartitionsRequest | AddOffsetsRequest | EndTxnRequest
    | ListTransactionsRequest | DescribeTransactionsRequest
)
TxnResult: TypeAlias = (
    InitProducerIdResult | AddPartitionsResult | AddOffsetsResult | EndTxnResult
    | ListTransactionsResult | DescribeTransactionsResult
)


# ---------------------------------------------------------------------------------------------
# Producer ids.


@dataclass(frozen=True, slots=True)
class ProducerIdBlock:
    """Producer ids the coordinator may hand out: [first, first + size). The host obtains blocks
    from the controller (cluster-wide unique, as for idempotent producers) and gives them with
    `add_producer_ids`; a coordinator with none left answers InitProducerId with
    COORDINATOR_LOAD_IN_PROGRESS (retriable) and asks for more (`Output.wants_producer_ids`)."""

    first: int
    size: int


# ---------------------------------------------------------------------------------------------
# Effects.


@dataclass(frozen=True, slots=True)
class TxnRecord:
    """One `__transaction_state` record: the latest value per key wins; None = tombstone.
    Key and value use Kafka's layout (TransactionLog key v0, value v0/v1)."""

    key: bytes
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Append:
    append_id: int
    records: tuple[TxnRecord, ...]


@dataclass(frozen=True, slots=True)
class WriteMarkers:
    marker_id: int
    transactional_id: str
    producer_id: int
    producer_epoch: int
    committed: bool
    coordinator_epoch: int
    partitions: tuple[TopicPartition, ...]


@dataclass(frozen=True, slots=True)
class Completion:
    token: Token
    result: TxnResult


@dataclass(frozen=True, slots=True)
class Output:
    completions: tuple[Completion, ...] = ()
    appends: tuple[Append, ...] = ()
    markers: tuple[WriteMarkers, ...] = ()
    wants_producer_ids: bool = False
