"""Log compaction (Kafka's log cleaner, `cleanup.policy=compact`): which records of the closed
segments survive, and the batches that carry them afterwards.

The one place in storage that reads records (keys, values, timestamps) rather than batch
headers; it uses `redshank.protocol.records` to read and rebuild batches. Pure: bytes in, bytes
out; `Log.compact` does the I/O and the crash-safe swap.

Rules (Kafka's `LogCleaner.shouldRetainRecord`, KIP-534 without the delete-horizon bit):

- a record survives when it is the latest of its key in the cleanable range (the closed
  segments below the high watermark, and older than `min.compaction.lag.ms`);
- a tombstone (null value) that is the latest of its key survives until its timestamp is
  older than `delete.retention.ms`, so consumers reading from the start see the delete first;
- a record without a key is dropped (Kafka counts it as invalid; produce refuses new ones);
- control batches and transactional batches are kept whole: the producer state, the last stable
  offset and the aborted-transactions index are rebuilt from them (Kafka's cleaner also drops
  aborted records and, past the delete horizon, markers: not done here).

Offsets are preserved, and so is every batch: a batch keeps its baseOffset, lastOffsetDelta,
partitionLeaderEpoch, producer fields and codec, and loses only records. A batch left without
records stays as an empty batch (a header, recordCount 0, as Kafka writes to keep producer
state). Keeping every batch keeps the offsets of the log contiguous, so recovery's offset checks,
Raft's index-to-offset walk and a follower's catch-up (which appends batches one after another)
all see the log they saw before; consumers see offset gaps inside batches, as with Kafka.

Must not know: files, segments, clocks (callers pass `now_ms`), Raft.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

import crc32c as _crc32c

from redshank.protocol.record_batch import (
    HEADER_SIZE,
    BatchHeader,
    Compression,
    parse_header,
)
from redshank.protocol.records import BatchBuilder, Record, iter_records

__all__ = ["KeyMap", "clean_batch", "empty_batch", "latest_offsets"]

# key -> offset of its latest record in the cleanable range.
KeyMap = dict[bytes, int]

_HEADER = struct.Struct(">qiibIhiqqqhii")
_LAST_DELTA = struct.Struct(">i")
_LAST_DELTA_AT = 23
_CRC = struct.Struct(">I")
_CRC_AT = 17
_CRC_START = 21
_KEEP_BITS = 0x08 | 0x10  # timestamp type, transactional; the codec goes with the records


def _kept_whole(header: BatchHeader) -> bool:
    return header.is_control or header.is_transactional


def latest_offsets(batches: Iterable[bytes | memoryview], into: KeyMap | None = None) -> KeyMap:
    """Pass 1: the offset of the latest record of each key over `batches` (in offset order)."""
    latest: KeyMap = {} if into is None else into
    for batch in batches:
        header = parse_header(batch)
        if _kept_whole(header) or header.record_count == 0:
            continue
        for record in iter_records(batch, verify_crc=False):
            if record.key is not None:
                latest[record.key] = record.offset
    return latest


def _survives(record: Record, latest: KeyMap, tombstone_horizon_ms: int) -> bool:
    if record.key is None or latest.get(record.key, record.offset) != record.offset:
        return False
    return record.value is not None or record.timestamp >= tombstone_horizon_ms


def clean_batch(batch: bytes | memoryview, latest: KeyMap, tombstone_horizon_ms: int
                ) -> tuple[bytes | memoryview, int]:
    """Pass 2: the batch with only its surviving records, and the earliest timestamp of a
    tombstone it still holds (2**63 - 1: none). The same object back when nothing goes.
    Tombstones with a timestamp below `tombstone_horizon_ms` go."""
    header = parse_header(batch)
    none_left = (1 << 63) - 1
    if _kept_whole(header) or header.record_count == 0:
        return batch, none_left
    records = list(iter_records(batch, verify_crc=False))
    kept = [r for r in records if _survives(r, latest, tombstone_horizon_ms)]
    tombstones = [r.timestamp for r in kept if r.value is None]
    oldest = min(tombstones, default=none_left)
    if len(kept) == len(records):
        return batch, oldest
    if not kept:
        return empty_batch(header), oldest
    builder = BatchBuilder(
        base_offset=header.base_offset,
        compression=Compression(header.compression),
        producer_id=header.producer_id,
        producer_epoch=header.producer_epoch,
        base_sequence=header.base_sequence,
        timestamp_type=header.timestamp_type,
        partition_leader_epoch=header.partition_leader_epoch,
    )
    for record in kept:
        builder.add(record)
    out = bytearray(builder.build())
    # The batch still spans its original offsets (Kafka keeps lastOffsetDelta), so the next
    # batch still follows it and no offset is ever handed out twice.
    _LAST_DELTA.pack_into(out, _LAST_DELTA_AT, header.last_offset_delta)
    _CRC.pack_into(out, _CRC_AT, _crc32c.crc32c(memoryview(out)[_CRC_START:]))
    return bytes(out), oldest


def empty_batch(header: BatchHeader) -> bytes:
    """A record-less batch spanning the same offsets as `header`'s (Kafka's
    `DefaultRecordBatch.writeEmptyHeader`), uncompressed, its timestamps the batch's max."""
    out = bytearray(HEADER_SIZE)
    _HEADER.pack_into(
        out, 0, header.base_offset, HEADER_SIZE - 12, header.partition_leader_epoch, 2, 0,
        header.attributes & _KEEP_BITS, header.last_offset_delta, header.max_timestamp,
        header.max_timestamp, header.producer_id, header.producer_epoch, header.base_sequence, 0,
    )
    _CRC.pack_into(out, _CRC_AT, _crc32c.crc32c(memoryview(out)[_CRC_START:]))
    return bytes(out)
