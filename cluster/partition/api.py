"""What a partition is asked and what it answers: the inputs and results of one partition's
owner, in the partition's own words (not a Kafka response's shape).

Pure data: frozen dataclasses and the special offsets of ListOffsets and DeleteRecords. The
frontends build the inputs from Kafka requests and the Kafka responses from the results; the
partition's host (an actor) and the sans-IO partition speak only these. Must not know actors,
logs, sockets.
"""

from __future__ import annotations

from redshank.protocol.fast_dataclass import dataclass

__all__ = ["EARLIEST", "HIGH_WATERMARK", "LATEST", "MAX_TIMESTAMP", "READ_COMMITTED", "Append",
           "AppendMarker", "DescribeProducers", "EpochEnd", "OffsetAnswer", "PartitionResult",
           "ProducerBatch", "ProducerInfo", "ProducersAnswer", "QueryOffset", "Read",
           "ReadResult", "SetTimestampType", "TrimPrefix", "TrimResult", "WaitForData"]

# ListOffsets timestamps with a special meaning.
LATEST = -1
EARLIEST = -2
MAX_TIMESTAMP = -3
# DeleteRecords: trim up to the high watermark.
HIGH_WATERMARK = -1
# Fetch and ListOffsets isolation_level: 1 reads only below the last stable offset (KIP-98).
READ_COMMITTED = 1


@dataclass(frozen=True, slots=True)
class ProducerBatch:
    """The idempotence fields of a request's batches for one partition (producer_id >= 0)."""

    producer_id: int
    producer_epoch: int
    first_sequence: int
    last_sequence: int
    transactional: bool = False  # part of a transaction (KIP-98): it holds the LSO back


# ---- inputs ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Append:
    """Produce: append `records` (whole batches, validated) with `acks`; -> `PartitionResult`."""

    # A view (of the request, or read in place from another core's ring: copy what you keep)
    # or a buffer of its own; a bytearray is handed over (the owner's log may keep it).
    records: bytes | bytearray | memoryview
    acks: int
    producer: ProducerBatch | None


@dataclass(frozen=True, slots=True)
class Read:
    """Fetch: the batches from `offset`, at most `max_bytes` (the first batch whole), below the
    high watermark; -> `ReadResult`."""

    offset: int
    max_bytes: int
    leader_epoch: int
    copy: bool  # True when the reply crosses cores (the ring copies it; a remote reader)
    # The core whose watermark watch should hear of every advance from now on (fetch).
    subscriber: int | None = None
    isolation: int = 0  # READ_COMMITTED: below the last stable offset, aborted txns listed


@dataclass(frozen=True, slots=True)
class AppendMarker:
    """WriteTxnMarkers: append a COMMIT (`commit`) or ABORT control batch for the producer's
    transaction, acks=all; -> `PartitionResult` once committed (KIP-98)."""

    producer_id: int
    producer_epoch: int
    coordinator_epoch: int
    commit: bool


@dataclass(frozen=True, slots=True)
class DescribeProducers:
    """DescribeProducers: the partition's active producers; -> `ProducersAnswer`."""


@dataclass(frozen=True, slots=True)
class WaitForData:
    """Resolve with True once the high watermark passes `offset`, False after `timeout_ms`."""

    offset: int
    timeout_ms: int


@dataclass(frozen=True, slots=True)
class QueryOffset:
    """ListOffsets: `timestamp` (or EARLIEST, LATEST, MAX_TIMESTAMP); -> `OffsetAnswer` with
    the leader epoch of the offset found."""

    timestamp: int
    current_leader_epoch: int = -1  # the client's (-1: not known, not checked)
    isolation: int = 0  # READ_COMMITTED: LATEST answers the last stable offset


@dataclass(frozen=True, slots=True)
class EpochEnd:
    """OffsetForLeaderEpoch: where `leader_epoch` ends; -> `OffsetAnswer` (offset: the end
    offset, leader_epoch: the largest epoch at most the one asked)."""

    leader_epoch: int
    current_leader_epoch: int = -1


@dataclass(frozen=True, slots=True)
class SetTimestampType:
    """message.timestamp.type changed: True stamps every appended batch with the broker's time
    (LogAppendTime), False keeps the producer's (CreateTime). Applies from the next append."""

    log_append_time: bool


@dataclass(frozen=True, slots=True)
class TrimPrefix:
    """DeleteRecords: make `offset` (-1: the high watermark) the log start; -> `TrimResult`."""

    offset: int


# ---- results --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PartitionResult:
    error_code: int
    base_offset: int = -1
    log_start_offset: int = -1
    error_message: str | None = None
    # ProduceResponse v8+ record_errors: (batch index, message) per rejected record. Only the
    # produce handler's own refusals carry them (never sent between cores).
    record_errors: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ReadResult:
    error_code: int
    high_watermark: int = -1
    log_start_offset: int = -1
    records: bytes | memoryview | None = None
    last_stable_offset: int = -1  # -1: not known (the high watermark is reported)
    # READ_COMMITTED: (producer id, first offset) of the aborted transactions the records
    # overlap (FetchResponse aborted_transactions); () otherwise.
    aborted: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class OffsetAnswer:
    error_code: int
    offset: int = -1
    timestamp: int = -1
    leader_epoch: int = -1


@dataclass(frozen=True, slots=True)
class TrimResult:
    error_code: int
    low_watermark: int = -1


@dataclass(frozen=True, slots=True)
class ProducerInfo:
    """One active producer of a partition (DescribeProducers)."""

    producer_id: int
    producer_epoch: int
    last_sequence: int
    last_timestamp: int
    coordinator_epoch: int
    current_txn_start_offset: int  # -1: no ongoing transaction


@dataclass(frozen=True, slots=True)
class ProducersAnswer:
    error_code: int
    producers: tuple[ProducerInfo, ...] = ()
