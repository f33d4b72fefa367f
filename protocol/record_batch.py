"""Record batch v2 (magic 2) headers: parse, validate, restamp; never touch the records.

Layout of the 61-byte header (KIP-98; all big-endian):

    0  baseOffset int64        | 8  batchLength int32 (bytes after this field)
    12 partitionLeaderEpoch i32 | 16 magic int8 = 2  | 17 crc uint32 (CRC-32C of bytes 21..end)
    21 attributes int16        | 23 lastOffsetDelta int32
    27 baseTimestamp int64     | 35 maxTimestamp int64
    43 producerId int64        | 51 producerEpoch int16 | 53 baseSequence int32
    57 recordsCount int32      | 61 records...

baseOffset and partitionLeaderEpoch lie outside the CRC, so the broker assigns offsets and stamps
the leader epoch in place without recomputing it.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator

import crc32c as _crc32c

from redshank.protocol.errors import CorruptBatchError
from redshank.protocol.fast_dataclass import dataclass

__all__ = [
    "BATCH_OVERHEAD",
    "HEADER_SIZE",
    "MAGIC_AT",
    "MAGIC_V2",
    "BatchHeader",
    "Compression",
    "TimestampType",
    "batch_crc",
    "iter_batches",
    "parse_header",
    "set_base_offset",
    "set_leader_epoch",
    "stamp_log_append_time",
    "validate_batch",
]

HEADER_SIZE = 61
# baseOffset + batchLength: the bytes not counted by batchLength.
BATCH_OVERHEAD = 12
MAGIC_V2 = 2
MAGIC_AT = 16  # the magic byte's position in a batch
_CRC_START = 21

_HEADER = struct.Struct(">qiibIhiqqqhii")
_OFFSET = struct.Struct(">q")
_EPOCH = struct.Struct(">i")
_ATTRIBUTES = struct.Struct(">h")
_CRC = struct.Struct(">I")
_MAX_TIMESTAMP_AT = 35

_COMPRESSION_MASK = 0x07
_TIMESTAMP_TYPE_BIT = 0x08
_TRANSACTIONAL_BIT = 0x10
_CONTROL_BIT = 0x20
_DELETE_HORIZON_BIT = 0x40


class Compression(enum.IntEnum):
    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4


class TimestampType(enum.IntEnum):
    CREATE_TIME = 0
    LOG_APPEND_TIME = 1


@dataclass(frozen=True, slots=True)
class BatchHeader:
    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    @property
    def size(self) -> int:
        """Bytes the whole batch occupies, header included."""
        return self.batch_length + BATCH_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def compression(self) -> int:
        """The codec bits (a `Compression` value when valid; 5-7 are not)."""
        return self.attributes & _COMPRESSION_MASK

    @property
    def timestamp_type(self) -> TimestampType:
        return TimestampType(1 if self.attributes & _TIMESTAMP_TYPE_BIT else 0)

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & _TRANSACTIONAL_BIT)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & _CONTROL_BIT)

    @property
    def has_delete_horizon(self) -> bool:
        return bool(self.attributes & _DELETE_HORIZON_BIT)

    @property
    def is_idempotent(self) -> bool:
        """Idempotent iff producerId >= 0 (clients fill the other fields inconsistently)."""
        return self.producer_id >= 0


def parse_header(buf: bytes | bytearray | memoryview, pos: int = 0) -> BatchHeader:
    """Parse the header at `pos`, checking only what the header alone can tell.

    Raises CorruptBatchError when fewer than 61 bytes remain, the magic is not 2, or batchLength
    cannot hold a header. Whether the whole batch is present is the caller's question
    (`header.size` against the bytes it has).
    """
    if pos < 0 or len(buf) - pos < HEADER_SIZE:
        raise CorruptBatchError(f"record batch header truncated at {pos}")
    fields = _HEADER.unpack_from(buf, pos)
    header = BatchHeader(*fields)
    if header.magic != MAGIC_V2:
        raise CorruptBatchError(f"unsupported record batch magic {header.magic}")
    if header.batch_length < HEADER_SIZE - BATCH_OVERHEAD:
        raise CorruptBatchError(f"record batch length {header.batch_length} below header size")
    return header


def batch_crc(buf: bytes | bytearray | memoryview, pos: int, header: BatchHeader) -> int:
    """CRC-32C over attributes..end of the batch at `pos` (the batch must be complete)."""
    view = memoryview(buf)[pos + _CRC_START : pos + header.size]
    return int(_crc32c.crc32c(view))


def validate_batch(buf: bytes | bytearray | memoryview, pos: int = 0) -> BatchHeader:
    """Parse the header at `pos` and check that the whole batch is present and its CRC holds."""
    header = parse_header(buf, pos)
    if len(buf) - pos < header.size:
        raise CorruptBatchError(
            f"record batch at {pos} needs {header.size} bytes, {len(buf) - pos} present"
        )
    if batch_crc(buf, pos, header) != header.crc:
        raise CorruptBatchError(f"record batch at {pos} fails its CRC32C")
    return header


def iter_batches(
    buf: bytes | bytearray | memoryview, *, verify_crc: bool = True
) -> Iterator[tuple[int, BatchHeader]]:
    """Yield (position, header) for each complete batch in `buf`, which must hold whole batches.

    Raises CorruptBatchError on a bad or truncated batch; callers that must tolerate a truncated
    tail (a fetch response, a recovering segment) stop at the first error themselves.
    """
    pos = 0
    end = len(buf)
    while pos < end:
        header = validate_batch(buf, pos) if verify_crc else parse_header(buf, pos)
        if not verify_crc and end - pos < header.size:
            raise CorruptBatchError(f"record batch at {pos} truncated")
        yield pos, header
        pos += header.size


def set_base_offset(buf: bytearray | memoryview, pos: int, base_offset: int) -> None:
    """Rewrite the batch's base offset in place (outside the CRC)."""
    _OFFSET.pack_into(buf, pos, base_offset)


def set_leader_epoch(buf: bytearray | memoryview, pos: int, epoch: int) -> None:
    """Rewrite the batch's partitionLeaderEpoch in place (outside the CRC)."""
    _EPOCH.pack_into(buf, pos + 12, epoch)


def stamp_log_append_time(buf: bytearray | memoryview, pos: int, header: BatchHeader,
                          now_ms: int) -> None:
    """Mark the (complete) batch at `pos` as LogAppendTime with maxTimestamp `now_ms`, and
    recompute its CRC: message.timestamp.type=LogAppendTime (KIP-32). Consumers then read every
    record's timestamp as maxTimestamp; the records themselves are not touched."""
    _ATTRIBUTES.pack_into(buf, pos + _CRC_START, header.attributes | _TIMESTAMP_TYPE_BIT)
    _OFFSET.pack_into(buf, pos + _MAX_TIMESTAMP_AT, now_ms)
    _CRC.pack_into(buf, pos + 17, int(_crc32c.crc32c(memoryview(buf)[pos + _CRC_START:
                                                                      pos + header.size])))
