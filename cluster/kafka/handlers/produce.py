"""Produce (0): validate the request and its batches, split it per partition, build the response.

Concern: everything about a produce request that needs no log: acks, topic and partition
existence, batch validation (one batch per partition, header, magic 2, CRC32C, sizes, no
client-sent control batches, transactional batches with a producer id and epoch,
`max.message.bytes`, records walked for count and offset deltas),
the idempotence fields of the batch, the topic's timestamp window (message.timestamp.before/
after.max.ms) and stored codec (compression.type: a batch in another codec is recompressed),
and the response from per-partition results. Batches stay opaque: records are walked, never
decoded. Must not know: logs, actors, sockets.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import cast

from redshank.cluster.kafka.topic_configs import (
    stored_codec,
    timestamp_refusal,
    timestamp_window,
)
from redshank.cluster.kafka.topic_table import TopicInfo, TopicPartition
from redshank.cluster.partition.api import PartitionResult, ProducerBatch
from redshank.protocol.batch_recompress import recompress
from redshank.protocol.batch_validator import check_producer_batch
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.errors import DecodeError, DecompressionBombError
from redshank.protocol.fast_dataclass import dataclass
from redshank.protocol.messages.produce import (
    BatchIndexAndErrorMessage,
    PartitionProduceResponse,
    ProduceRequest,
    ProduceResponse,
    TopicProduceResponse,
)
from redshank.protocol.record_batch import (
    MAGIC_AT,
    MAGIC_V2,
    Compression,
    parse_header,
    validate_batch,
)
from redshank.protocol.records import record_timestamps

__all__ = ["PartitionWrite", "build", "plan"]

# Batch header fields (magic 2) at their offsets: lastOffsetDelta at 23; producerId,
# producerEpoch, baseSequence at 43.
_LAST_OFFSET_DELTA = struct.Struct(">i")
_PRODUCER = struct.Struct(">qhi")




@dataclass(frozen=True, slots=True)
class PartitionWrite:
    tp: TopicPartition  # the key of its result
    core: int
    records: bytes | memoryview
    producer: ProducerBatch | None

    @property
    def topic(self) -> str:
        return self.tp[0]

    @property
    def partition(self) -> int:
        return self.tp[1]



def plan(request: ProduceRequest, topics: Mapping[str, TopicInfo | None],
         now_ms: int | None = None, *, built: bool = False
         ) -> tuple[list[PartitionWrite], dict[TopicPartition, PartitionResult]]:
    """(writes to route to the partitions' owners, results already known). `now_ms`: the
    broker's clock, for message.timestamp.before/after.max.ms (None: not checked).

    `built`: the batches come from the broker's own encoder (a transform's output,
    `actors.transform_spec.OutputBatch`), not a client: one uncompressed magic-2 batch each,
    non-transactional, framed and CRC'd by construction, so the CRC re-check and the record
    walk (which exist because client bytes cannot be trusted) are skipped. The topic's own
    rules still apply: max.message.bytes, a compacted topic's keys (walked), the timestamp
    window, compression.type."""
    writes: list[PartitionWrite] = []
    done: dict[TopicPartition, PartitionResult] = {}
    acks_ok = request.acks in (-1, 0, 1)
    for t in request.topic_data:
        info = topics.get(t.name)
        for p in t.partition_data:
            tp = TopicPartition(t.name, p.index)
            if not acks_ok:
                done[tp] = PartitionResult(ErrorCode.INVALID_REQUIRED_ACKS)
                continue
            core = info.core_of(p.index) if info is not None else None
            if info is None or core is None:
                done[tp] = PartitionResult(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
                continue
            compacted = _compacted(info)
            checked = (_check_built(p.records, info.max_message_bytes)
                       if built and not compacted else
                       check_records(p.records, info.max_message_bytes,
                                     tp if compacted else None))
            if isinstance(checked, PartitionResult):
                done[tp] = checked
                continue
            assert p.records is not None
            late = None if now_ms is None else _timestamps_refused(info, p.records, now_ms)
            if late is not None:
                done[tp] = late
                continue
            writes.append(PartitionWrite(tp, core, _as_stored(info, p.records), checked))
    return writes, done


def _check_built(records: bytes | memoryview | None, max_message_bytes: int
                 ) -> ProducerBatch | PartitionResult | None:
    """A broker-built batch's one check that depends on the topic: its size; -> its
    idempotence fields (a transform's output is an idempotent producer's), as
    `check_records` returns them."""
    if not records:
        return _invalid("no record batch")
    if len(records) > max_message_bytes:
        return PartitionResult(
            ErrorCode.MESSAGE_TOO_LARGE,
            error_message=f"batch of {len(records)} bytes above max.message.bytes "
                          f"{max_message_bytes}",
        )
    last_delta, = _LAST_OFFSET_DELTA.unpack_from(records, 23)
    producer_id, epoch, base_sequence = _PRODUCER.unpack_from(records, 43)
    if producer_id < 0:
        return None
    return ProducerBatch(producer_id, epoch, base_sequence, base_sequence + last_delta)


def _compacted(info: TopicInfo) -> bool:
    for key, value in info.configs:
        if key == "cleanup.policy":
            return "compact" in value
    return False


def check_records(records: bytes | memoryview | None, max_message_bytes: int,
                  compacted: TopicPartition | None = None
                  ) -> ProducerBatch | PartitionResult | None:
    """The batch's idempotence fields, or the error result that rejects it.

    Checked as Kafka checks a client's produce, before anything is stored (ProduceRequest.
    validateRecords, UnifiedLog.analyzeAndValidateRecords, LogValidator.validateBatch): exactly
    one magic-2 batch whose CRC32C holds, then its header rules and its records walked
    (`check_producer_batch`). Kafka's split of the two codes: CORRUPT_MESSAGE (retriable) when
    the bytes were damaged on the way (bad CRC, truncated, bad framing); INVALID_RECORD (not
    retriable) when the producer signed bytes that break the rules (a header that lies about
    its records, malformed records, an unknown codec, a compressed section that does not
    decompress). A section that decompresses past the cap is MESSAGE_TOO_LARGE, as for a batch
    over `max.message.bytes` (a Java producer splits the batch and retries).

    `compacted`: the partition, when its topic is compacted: a record without a key is refused
    with INVALID_RECORD and one record error per such record (LogValidator.validateRecord,
    KIP-467), and nothing of the batch is stored."""
    if not records:
        return _invalid("no record batch")
    if len(records) > MAGIC_AT and records[MAGIC_AT] != MAGIC_V2:  # Produce v3+ carries magic 2
        return _invalid(f"record batch magic {records[MAGIC_AT]}: produce takes magic 2 only")
    try:
        h = validate_batch(records, 0)
    except DecodeError as exc:
        return PartitionResult(ErrorCode.CORRUPT_MESSAGE, error_message=str(exc))
    if h.size != len(records):
        return _invalid(f"exactly one record batch per partition allowed, {len(records) - h.size}"
                        " bytes follow the first")
    if h.size > max_message_bytes:
        return PartitionResult(
            ErrorCode.MESSAGE_TOO_LARGE,
            error_message=f"batch of {h.size} bytes above max.message.bytes {max_message_bytes}",
        )
    if h.is_control:
        return _invalid("clients may not send control batches")
    if h.is_transactional and (h.producer_id < 0 or h.producer_epoch < 0):
        # KIP-98: a transaction's batches belong to a producer id and epoch (the partition
        # tracks its ongoing transaction by them, and fences older epochs).
        return _invalid("transactional batch without a producer id and epoch")
    if h.base_offset != 0:
        return _invalid(f"a producer's batch must have baseOffset 0, not {h.base_offset}")
    null_keys: list[int] | None = [] if compacted is not None else None
    try:
        check_producer_batch(records, h, null_keys=null_keys)
    except DecompressionBombError as exc:
        return PartitionResult(ErrorCode.MESSAGE_TOO_LARGE, error_message=str(exc))
    except DecodeError as exc:
        return _invalid(str(exc))
    if null_keys and compacted is not None:
        return _keyless(null_keys, compacted)
    if h.producer_id < 0:
        return None
    if h.base_sequence < 0:
        return _invalid(f"idempotent batch with base sequence {h.base_sequence}")
    return ProducerBatch(h.producer_id, h.producer_epoch, h.base_sequence,
                         h.base_sequence + h.last_offset_delta, h.is_transactional)


def _timestamps_refused(info: TopicInfo, records: bytes | memoryview, now_ms: int
                        ) -> PartitionResult | None:
    """INVALID_TIMESTAMP when a record's timestamp lies outside the topic's window (Kafka's
    LogValidator.validateTimestamp, per record). Only topics that set a window pay the walk."""
    window = timestamp_window(info.configs)
    if window is None:
        return None
    stamps = tuple(ts for _offset, ts in record_timestamps(records))
    why = timestamp_refusal(window, stamps, now_ms)
    return None if why is None else PartitionResult(ErrorCode.INVALID_TIMESTAMP,
                                                    error_message=why)


_CODECS = {"uncompressed": Compression.NONE, "gzip": Compression.GZIP,
           "snappy": Compression.SNAPPY, "lz4": Compression.LZ4, "zstd": Compression.ZSTD}


def _as_stored(info: TopicInfo, records: bytes | memoryview) -> bytes | memoryview:
    """The batch in the codec the topic's compression.type names (Kafka recompresses a batch
    whose codec differs; `producer`, the default, keeps it as sent)."""
    wanted = stored_codec(info.configs)
    if wanted is None:
        return records
    codec, level = _CODECS[wanted[0]], wanted[1]
    h = parse_header(records)
    return records if h.compression == codec else recompress(records, h, codec, level)


def _invalid(message: str) -> PartitionResult:
    return PartitionResult(ErrorCode.INVALID_RECORD, error_message=message)


def _keyless(indexes: list[int], tp: TopicPartition) -> PartitionResult:
    """Kafka's words: the record error per keyless record, and the partition's message naming
    how many there are and the first three (LogValidator.processRecordErrors)."""
    text = ("Compacted topic cannot accept message without key in topic partition "
            f"{tp[0]}-{tp[1]}.")
    errors = tuple((i, text) for i in indexes)
    shown = ", ".join(f"RecordError(batchIndex={i}, message='{text}')" for i in indexes[:3])
    return PartitionResult(
        ErrorCode.INVALID_RECORD,
        error_message=f"One or more records have been rejected due to {len(errors)} record "
                      f"errors in total, and only showing the first three errors at most: "
                      f"[{shown}]",
        record_errors=errors)


def build(request: ProduceRequest, results: Mapping[TopicPartition, PartitionResult]
          ) -> ProduceResponse:
    # A plain (topic, partition) finds a TopicPartition key (equal tuples), and costs a tenth of
    # building one per partition of every produce request.
    by_tuple = cast("Mapping[tuple[str, int], PartitionResult]", results)
    topics = []
    for t in request.topic_data:
        parts = []
        for p in t.partition_data:
            r = by_tuple[(t.name, p.index)]
            parts.append(
                PartitionProduceResponse(
                    index=p.index,
                    error_code=r.error_code,
                    base_offset=r.base_offset,
                    log_start_offset=r.log_start_offset,
                    error_message=r.error_message,
                    record_errors=tuple(BatchIndexAndErrorMessage(i, m)
                                        for i, m in r.record_errors) if r.record_errors else (),
                )
            )
        topics.append(TopicProduceResponse(name=t.name, partition_responses=tuple(parts)))
    return ProduceResponse(responses=tuple(topics))
