"""Produce (0): validate the request and its batches, split it per partition, build the response.

Concern: everything about a produce request that needs no log: acks, topic and partition
existence, batch validation (header, magic 2, CRC32C, sizes, no client-sent control batches,
`max.message.bytes`), the idempotence fields of the batches, and the response from per-partition
results. Batches stay opaque: only headers are parsed. Must not know: logs, actors, sockets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from redshank.cluster.kafka.topic_table import TopicInfo
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.errors import DecodeError
from redshank.protocol.messages.produce import (
    PartitionProduceResponse,
    ProduceRequest,
    ProduceResponse,
    TopicProduceResponse,
)
from redshank.protocol.record_batch import validate_batch

__all__ = ["PartitionResult", "PartitionWrite", "ProducerBatch", "build", "plan"]

Tp = tuple[str, int]


@dataclass(frozen=True, slots=True)
class ProducerBatch:
    """The idempotence fields of a request's batches for one partition (producer_id >= 0)."""

    producer_id: int
    producer_epoch: int
    first_sequence: int
    last_sequence: int


@dataclass(frozen=True, slots=True)
class PartitionWrite:
    topic: str
    partition: int
    core: int
    records: bytes | memoryview
    producer: ProducerBatch | None


@dataclass(frozen=True, slots=True)
class PartitionResult:
    error_code: int
    base_offset: int = -1
    log_start_offset: int = -1
    error_message: str | None = None


def plan(request: ProduceRequest, topics: Mapping[str, TopicInfo | None]
         ) -> tuple[list[PartitionWrite], dict[Tp, PartitionResult]]:
    """(writes to route to the partitions' owners, results already known)."""
    writes: list[PartitionWrite] = []
    done: dict[Tp, PartitionResult] = {}
    acks_ok = request.acks in (-1, 0, 1)
    for t in request.topic_data:
        info = topics.get(t.name)
        for p in t.partition_data:
            tp = (t.name, p.index)
            if not acks_ok:
                done[tp] = PartitionResult(ErrorCode.INVALID_REQUIRED_ACKS)
                continue
            core = info.core_of(p.index) if info is not None else None
            if info is None or core is None:
                done[tp] = PartitionResult(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
                continue
            checked = check_records(p.records, info.max_message_bytes)
            if isinstance(checked, PartitionResult):
                done[tp] = checked
                continue
            assert p.records is not None
            writes.append(PartitionWrite(t.name, p.index, core, p.records, checked))
    return writes, done


def check_records(records: bytes | memoryview | None, max_message_bytes: int
                  ) -> ProducerBatch | PartitionResult | None:
    """The batches' idempotence fields, or the error result that rejects them all."""
    if not records:
        return PartitionResult(ErrorCode.CORRUPT_MESSAGE, error_message="no record batches")
    pos = 0
    first = last = None
    total = len(records)
    while pos < total:
        try:
            h = validate_batch(records, pos)
        except DecodeError as exc:
            return PartitionResult(ErrorCode.CORRUPT_MESSAGE, error_message=str(exc))
        if h.size > max_message_bytes:
            return PartitionResult(
                ErrorCode.MESSAGE_TOO_LARGE,
                error_message=f"batch of {h.size} bytes above max.message.bytes "
                f"{max_message_bytes}",
            )
        if h.is_control:
            return PartitionResult(
                ErrorCode.INVALID_RECORD, error_message="clients may not send control batches"
            )
        if h.is_transactional:
            return PartitionResult(
                ErrorCode.INVALID_RECORD, error_message="transactions are not supported"
            )
        if h.record_count <= 0:
            return PartitionResult(ErrorCode.INVALID_RECORD, error_message="empty batch")
        if first is None:
            first = h
        last = h
        pos += h.size
    assert first is not None and last is not None
    if first.producer_id < 0:
        return None
    if last.producer_id != first.producer_id or last.producer_epoch != first.producer_epoch:
        return PartitionResult(
            ErrorCode.INVALID_RECORD, error_message="batches of different producers in one request"
        )
    last_seq = last.base_sequence + last.last_offset_delta
    return ProducerBatch(first.producer_id, first.producer_epoch, first.base_sequence, last_seq)


def build(request: ProduceRequest, results: Mapping[Tp, PartitionResult]) -> ProduceResponse:
    topics = []
    for t in request.topic_data:
        parts = []
        for p in t.partition_data:
            r = results[(t.name, p.index)]
            parts.append(
                PartitionProduceResponse(
                    index=p.index,
                    error_code=r.error_code,
                    base_offset=r.base_offset,
                    log_start_offset=r.log_start_offset,
                    error_message=r.error_message,
                )
            )
        topics.append(TopicProduceResponse(name=t.name, partition_responses=tuple(parts)))
    return ProduceResponse(responses=tuple(topics))
