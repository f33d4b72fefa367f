"""Records inside a magic-2 batch: read them lazily, build batches and control batches.

Record layout (KIP-98), after the batch's 61-byte header, compressed as one unit when the codec
bits say so:

    length varint | attributes int8 | timestampDelta varlong | offsetDelta varint
    keyLength varint | key | valueLength varint | value
    headerCount varint | [keyLength varint | key (UTF-8) | valueLength varint | value] * count

Lengths of -1 mean null (keys, values, header values; never header keys).

This is for tools and tests (our producer, consumers' checks, fuzzing): the broker keeps batches
opaque and never decodes records on the hot path (ARCHITECTURE.md section 3); off it, ListOffsets
reads one batch's record timestamps (`record_timestamps`) to answer per record.

Must not know: I/O, clocks (callers pass timestamps), partitions, or the message codec.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable, Iterator

import crc32c as _crc32c

from redshank.protocol.batch_validator import (
    MIN_RECORD_SIZE,
    Header,
    records_section,
    walk_headers,
)
from redshank.protocol.compression import DEFAULT_MAX_DECOMPRESSED_SIZE
from redshank.protocol.compression import compress as _compress
from redshank.protocol.errors import (
    CorruptBatchError,
    CorruptRecordError,
    DecodeError,
    EncodeError,
)
from redshank.protocol.fast_dataclass import dataclass
from redshank.protocol.record_batch import (
    HEADER_SIZE,
    BatchHeader,
    Compression,
    TimestampType,
    parse_header,
    validate_batch,
)
from redshank.protocol.varint import (
    INT32_MAX,
    decode_varint,
    decode_varlong,
    encode_varint,
    encode_varlong,
)

__all__ = [
    "BatchBuilder",
    "ControlRecord",
    "ControlType",
    "Header",
    "Record",
    "build_batch",
    "build_control_batch",
    "iter_records",
    "parse_control_record",
    "record_timestamps",
]

Buffer = bytes | bytearray | memoryview

_HEADER = struct.Struct(">qiibIhiqqqhii")
_CRC = struct.Struct(">I")
_CRC_POS = 17
_CRC_START = 21
_MAGIC = 2

_TIMESTAMP_TYPE_BIT = 0x08
_TRANSACTIONAL_BIT = 0x10
_CONTROL_BIT = 0x20

# Control records (KIP-98): key = version int16 + type int16; an end-transaction marker's value =
# version int16 + coordinatorEpoch int32.
_CONTROL_KEY = struct.Struct(">hh")
_END_TXN_VALUE = struct.Struct(">hi")
_CONTROL_VERSION = 0


@dataclass(frozen=True, slots=True)
class Record:
    """One record with its absolute offset and timestamp (milliseconds)."""

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...] = ()


class ControlType(enum.IntEnum):
    """Control record types carried in a control batch's record key."""

    ABORT = 0
    COMMIT = 1


@dataclass(frozen=True, slots=True)
class ControlRecord:
    """A parsed control record. `kind` is a ControlType when known; other types (KRaft's leader
    change and snapshot markers) keep their raw int and no coordinator epoch."""

    kind: int
    version: int
    coordinator_epoch: int | None


# --- reading ----------------------------------------------------------------------------------


def iter_records(
    buf: Buffer,
    pos: int = 0,
    *,
    verify_crc: bool = True,
    max_decompressed_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE,
) -> Iterator[Record]:
    """Records of the batch at `pos`, read lazily one at a time.

    The header (and CRC32C unless `verify_crc` is false) is checked and the records section
    decompressed before this returns, so a bad batch fails here; a malformed record fails when
    iteration reaches it. Only the DecodeError family is raised.
    """
    header = validate_batch(buf, pos) if verify_crc else parse_header(buf, pos)
    if len(buf) - pos < header.size:
        raise CorruptBatchError(f"record batch at {pos} truncated")
    data, start, end = records_section(buf, pos, header,
                                       max_decompressed_size=max_decompressed_size)
    return _records(data, start, end, header)


def _records(data: Buffer, pos: int, end: int, header: BatchHeader) -> Iterator[Record]:
    base_offset = header.base_offset
    base_timestamp = header.base_timestamp
    # LOG_APPEND_TIME: the broker's append time, stored as maxTimestamp, replaces every record's.
    log_append_time = header.max_timestamp if header.attributes & _TIMESTAMP_TYPE_BIT else None
    varint = decode_varint
    try:
        for _ in range(header.record_count):
            length, pos = varint(data, pos)
            record_end = pos + length
            if length < MIN_RECORD_SIZE - 1 or record_end > end:
                raise CorruptRecordError(f"record length {length} invalid at {pos}")
            pos += 1  # attributes: no record-level attribute is defined for magic 2
            timestamp_delta, pos = decode_varlong(data, pos)
            offset_delta, pos = varint(data, pos)
            # Key and value inline (this loop is the reader's whole cost): -1 is null.
            size, pos = varint(data, pos)
            key = None
            if size >= 0:
                if pos + size > record_end:
                    raise CorruptRecordError(f"key of {size} bytes overruns its record")
                key = bytes(data[pos : pos + size])
                pos += size
            elif size != -1:
                raise CorruptRecordError(f"key length {size} is negative")
            size, pos = varint(data, pos)
            value = None
            if size >= 0:
                if pos + size > record_end:
                    raise CorruptRecordError(f"value of {size} bytes overruns its record")
                value = bytes(data[pos : pos + size])
                pos += size
            elif size != -1:
                raise CorruptRecordError(f"value length {size} is negative")
            if pos >= record_end:
                raise CorruptRecordError(f"record fields overrun its {length} bytes")
            headers: tuple[Header, ...] = ()
            if data[pos] == 0:  # zero headers, the common case
                pos += 1
            else:
                read: list[Header] = []
                pos = walk_headers(data, pos, record_end, read)
                headers = tuple(read)
            if pos != record_end:
                raise CorruptRecordError(
                    f"record declared {length} bytes, its fields end {pos - record_end:+d} off"
                )
            timestamp = (
                base_timestamp + timestamp_delta if log_append_time is None else log_append_time
            )
            yield Record(base_offset + offset_delta, timestamp, key, value, headers)
    except CorruptRecordError:
        raise
    except DecodeError as exc:  # a varint ran off the end or overflowed
        raise CorruptRecordError(f"record field malformed: {exc}") from None
    if pos != end:
        raise CorruptRecordError(f"{end - pos} bytes left after the batch's last record")


def record_timestamps(buf: Buffer, pos: int = 0, *,
                      max_decompressed_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE
                      ) -> Iterator[tuple[int, int]]:
    """(offset, timestamp) of each record of the complete batch at `pos`, in order, reading
    only each record's length and deltas (keys, values and headers are skipped, not copied; no
    CRC check: the batch was checked when it was stored). A LOG_APPEND_TIME batch's records all
    carry its max timestamp. Raises the DecodeError family."""
    header = parse_header(buf, pos)
    if len(buf) - pos < header.size:
        raise CorruptBatchError(f"record batch at {pos} truncated")
    data, start, end = records_section(buf, pos, header,
                                       max_decompressed_size=max_decompressed_size)
    return _timestamps(data, start, end, header)


def _timestamps(data: Buffer, pos: int, end: int, header: BatchHeader
                ) -> Iterator[tuple[int, int]]:
    append_time = header.max_timestamp if header.attributes & _TIMESTAMP_TYPE_BIT else None
    try:
        for _ in range(header.record_count):
            length, pos = decode_varint(data, pos)
            record_end = pos + length
            if length < MIN_RECORD_SIZE - 1 or record_end > end:
                raise CorruptRecordError(f"record length {length} invalid at {pos}")
            delta, at = decode_varlong(data, pos + 1)  # after the attributes byte
            offset_delta, _ = decode_varint(data, at)
            timestamp = header.base_timestamp + delta if append_time is None else append_time
            yield header.base_offset + offset_delta, timestamp
            pos = record_end
    except CorruptRecordError:
        raise
    except DecodeError as exc:
        raise CorruptRecordError(f"record field malformed: {exc}") from None


def parse_control_record(record: Record) -> ControlRecord:
    """Read a control batch's record: its type, and the coordinator epoch of an end-txn marker."""
    key, value = record.key, record.value
    if key is None or len(key) < _CONTROL_KEY.size:
        raise CorruptRecordError("control record key shorter than version + type")
    version, kind = _CONTROL_KEY.unpack_from(key)
    if version < 0:
        raise CorruptRecordError(f"control record key version {version} is negative")
    if kind not in (ControlType.ABORT, ControlType.COMMIT):
        return ControlRecord(kind, version, None)
    if value is None or len(value) < _END_TXN_VALUE.size:
        raise CorruptRecordError("end-transaction marker value shorter than version + epoch")
    value_version, coordinator_epoch = _END_TXN_VALUE.unpack_from(value)
    if value_version < 0:
        raise CorruptRecordError(f"end-transaction marker version {value_version} is negative")
    return ControlRecord(ControlType(kind), version, coordinator_epoch)


# --- building ---------------------------------------------------------------------------------


def _put_bytes(out: bytearray, data: bytes | None) -> None:
    if data is None:
        out += b"\x01"  # zigzag(-1)
        return
    out += encode_varint(len(data))
    out += data


class BatchBuilder:
    """Accumulates records and produces one valid magic-2 batch.

    Offsets are absolute: `append` without `offset` takes the next one after the last (starting
    at `base_offset`), so a producer's batch has deltas 0..n-1; explicit offsets may leave gaps
    (as compaction does) but must increase. The batch's base timestamp is the first record's (as
    Java's MemoryRecordsBuilder does) and its max timestamp the largest.
    """

    def __init__(
        self,
        *,
        base_offset: int = 0,
        compression: Compression = Compression.NONE,
        producer_id: int = -1,
        producer_epoch: int = -1,
        base_sequence: int = -1,
        timestamp_type: TimestampType = TimestampType.CREATE_TIME,
        partition_leader_epoch: int = -1,
        is_transactional: bool = False,
        is_control: bool = False,
    ) -> None:
        try:
            self.compression = Compression(compression)
            self.timestamp_type = TimestampType(timestamp_type)
        except ValueError as exc:
            raise EncodeError(str(exc)) from None
        self.base_offset = base_offset
        self.producer_id = producer_id
        self.producer_epoch = producer_epoch
        self.base_sequence = base_sequence
        self.partition_leader_epoch = partition_leader_epoch
        self.is_transactional = is_transactional
        self.is_control = is_control
        self._records = bytearray()
        self._count = 0
        self._last_delta = -1
        self._base_timestamp: int | None = None
        self._max_timestamp = -1

    def __len__(self) -> int:
        return self._count

    @property
    def uncompressed_size(self) -> int:
        """Bytes the batch would take uncompressed (for a producer deciding when to close it)."""
        return HEADER_SIZE + len(self._records)

    @property
    def next_offset(self) -> int:
        return self.base_offset + self._last_delta + 1

    def append(
        self,
        value: bytes | None,
        *,
        timestamp: int,
        key: bytes | None = None,
        headers: Iterable[Header] = (),
        offset: int | None = None,
    ) -> int:
        """Add a record; return its offset. EncodeError on a value that cannot be encoded."""
        delta = self._last_delta + 1 if offset is None else offset - self.base_offset
        if delta <= self._last_delta or delta > INT32_MAX:
            raise EncodeError(
                f"offset {self.base_offset + delta} must follow {self.next_offset - 1} "
                f"within int32 of base {self.base_offset}"
            )
        if self._base_timestamp is None:
            self._base_timestamp = timestamp
        headers = tuple(headers)
        body = bytearray(b"\x00")  # attributes
        body += encode_varlong(timestamp - self._base_timestamp)
        body += encode_varint(delta)
        _put_bytes(body, key)
        _put_bytes(body, value)
        body += encode_varint(len(headers))
        for header_key, header_value in headers:
            encoded_key = header_key.encode("utf-8")
            body += encode_varint(len(encoded_key))
            body += encoded_key
            _put_bytes(body, header_value)
        self._records += encode_varint(len(body))
        self._records += body
        self._count += 1
        self._last_delta = delta
        self._max_timestamp = max(self._max_timestamp, timestamp)
        return self.base_offset + delta

    def add(self, record: Record) -> None:
        """Add a Record at its own offset and timestamp."""
        self.append(
            record.value,
            timestamp=record.timestamp,
            key=record.key,
            headers=record.headers,
            offset=record.offset,
        )

    def _attributes(self) -> int:
        attributes = int(self.compression)
        if self.timestamp_type == TimestampType.LOG_APPEND_TIME:
            attributes |= _TIMESTAMP_TYPE_BIT
        if self.is_transactional:
            attributes |= _TRANSACTIONAL_BIT
        if self.is_control:
            attributes |= _CONTROL_BIT
        return attributes

    def build(self) -> bytes:
        """The finished batch: lengths, deltas, max timestamp and CRC32C filled in."""
        if self._base_timestamp is None:
            raise EncodeError("a record batch needs at least one record")
        body = _compress(self.compression, self._records)
        out = bytearray(HEADER_SIZE)
        out += body
        try:
            _HEADER.pack_into(
                out,
                0,
                self.base_offset,
                len(out) - 12,  # batchLength counts from partitionLeaderEpoch on
                self.partition_leader_epoch,
                _MAGIC,
                0,  # CRC, filled below once the bytes it covers are final
                self._attributes(),
                self._last_delta,
                self._base_timestamp,
                self._max_timestamp,
                self.producer_id,
                self.producer_epoch,
                self.base_sequence,
                self._count,
            )
        except struct.error as exc:
            raise EncodeError(f"batch header field out of range: {exc}") from None
        _CRC.pack_into(out, _CRC_POS, _crc32c.crc32c(memoryview(out)[_CRC_START:]))
        return bytes(out)


def build_batch(
    records: Iterable[Record],
    *,
    base_offset: int = 0,
    compression: Compression = Compression.NONE,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    timestamp_type: TimestampType = TimestampType.CREATE_TIME,
    partition_leader_epoch: int = -1,
    is_transactional: bool = False,
) -> bytes:
    """One batch holding `records` at their own (absolute, increasing) offsets."""
    builder = BatchBuilder(
        base_offset=base_offset,
        compression=compression,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
        timestamp_type=timestamp_type,
        partition_leader_epoch=partition_leader_epoch,
        is_transactional=is_transactional,
    )
    for record in records:
        builder.add(record)
    return builder.build()


def build_control_batch(
    kind: ControlType,
    *,
    producer_id: int,
    producer_epoch: int,
    coordinator_epoch: int,
    timestamp: int,
    base_offset: int = 0,
    partition_leader_epoch: int = -1,
) -> bytes:
    """An end-transaction marker batch: transactional + control bits, one uncompressed record."""
    builder = BatchBuilder(
        base_offset=base_offset,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        partition_leader_epoch=partition_leader_epoch,
        is_transactional=True,
        is_control=True,
    )
    builder.append(
        _END_TXN_VALUE.pack(_CONTROL_VERSION, coordinator_epoch),
        key=_CONTROL_KEY.pack(_CONTROL_VERSION, ControlType(kind)),
        timestamp=timestamp,
    )
    return builder.build()
