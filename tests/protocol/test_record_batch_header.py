"""Header-level record batch handling: parse, validate CRC32C, restamp in place."""

from __future__ import annotations

import struct

import crc32c
import pytest

from redshank.protocol.errors import CorruptBatchError
from redshank.protocol.record_batch import (
    HEADER_SIZE,
    Compression,
    TimestampType,
    iter_batches,
    parse_header,
    set_base_offset,
    set_leader_epoch,
    stamp_log_append_time,
    validate_batch,
)


def _batch(records: bytes = b"\x00" * 10, count: int = 1, attributes: int = 0) -> bytearray:
    """A magic-2 batch with arbitrary record bytes (the header layer never reads them)."""
    after_crc = struct.pack(">hiqqqhii", attributes, count - 1, 1000, 1005, -1, -1, -1, count)
    body = after_crc + records
    crc = crc32c.crc32c(body)
    length = 4 + 1 + 4 + len(body)  # partitionLeaderEpoch, magic, crc, then the CRC'd part
    return bytearray(struct.pack(">qiibI", 0, length, -1, 2, crc) + body)


def test_parse_and_validate_round_trip() -> None:
    buf = _batch(count=3, attributes=int(Compression.ZSTD) | 0x20)
    header = validate_batch(buf)
    assert header.size == len(buf)
    assert header.record_count == 3 and header.last_offset_delta == 2
    assert header.compression == Compression.ZSTD and header.is_control
    assert not header.is_idempotent
    assert (header.base_timestamp, header.max_timestamp) == (1000, 1005)


def test_restamping_offset_and_epoch_keeps_the_crc_valid() -> None:
    buf = _batch(count=5)
    set_base_offset(buf, 0, 42)
    set_leader_epoch(memoryview(buf), 0, 7)
    header = validate_batch(buf)
    assert (header.base_offset, header.last_offset, header.partition_leader_epoch) == (42, 46, 7)


def test_bad_crc_magic_and_truncation_are_typed_errors() -> None:
    buf = _batch()
    buf[-1] ^= 0xFF
    with pytest.raises(CorruptBatchError, match="CRC"):
        validate_batch(buf)
    bad_magic = _batch()
    bad_magic[16] = 1
    with pytest.raises(CorruptBatchError, match="magic"):
        parse_header(bad_magic)
    with pytest.raises(CorruptBatchError, match="truncated"):
        parse_header(_batch()[: HEADER_SIZE - 1])
    with pytest.raises(CorruptBatchError, match="needs"):
        validate_batch(_batch()[:-1])


def test_iter_batches_walks_concatenated_batches() -> None:
    a, b = _batch(count=2), _batch(b"\x01" * 30, count=4)
    set_base_offset(b, 0, 2)
    found = list(iter_batches(bytes(a + b)))
    assert [(pos, h.base_offset, h.record_count) for pos, h in found] == [
        (0, 0, 2),
        (len(a), 2, 4),
    ]
    with pytest.raises(CorruptBatchError):
        list(iter_batches(bytes(a + b[:-3])))


def test_stamp_log_append_time_sets_type_and_max_timestamp_and_keeps_crc_valid() -> None:
    buf = _batch(count=2, attributes=int(Compression.LZ4)) + _batch(records=b"\x01" * 7)
    first = parse_header(buf)
    records_before = bytes(buf[HEADER_SIZE:first.size])
    for pos, h in list(iter_batches(buf)):
        stamp_log_append_time(buf, pos, h, 1_700_000_000_123)
    stamped = [h for _pos, h in iter_batches(buf)]  # CRCs verified
    assert [h.timestamp_type for h in stamped] == [TimestampType.LOG_APPEND_TIME] * 2
    assert [h.max_timestamp for h in stamped] == [1_700_000_000_123] * 2
    assert [h.base_timestamp for h in stamped] == [1000, 1000]
    assert stamped[0].compression == Compression.LZ4 and stamped[0].record_count == 2
    assert bytes(buf[HEADER_SIZE:first.size]) == records_before
