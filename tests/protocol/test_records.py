"""Records: build -> validate_batch -> iter_records round trips for every codec, control batches,
kafka-python and aiokafka as independent oracles in both directions, malformed records as typed
errors, and fuzzing.

kafka-python reads/writes snappy, lz4 and zstd through python-snappy, lz4 and zstandard (dev
dependencies next to kafka-python); without them those oracle cases fail rather than skip.
"""

from __future__ import annotations

import struct

import crc32c
import pytest
from aiokafka.record.default_records import DefaultRecordBatch as AiokafkaBatch
from aiokafka.record.default_records import DefaultRecordBatchBuilder as AiokafkaBuilder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatch as KafkaPythonBatch
from kafka.record.default_records import DefaultRecordBatchBuilder as KafkaPythonBuilder

from redshank.protocol.compression import compress
from redshank.protocol.errors import (
    CorruptBatchError,
    CorruptRecordError,
    DecodeError,
    DecompressionBombError,
    DecompressionError,
    EncodeError,
    UnknownCompressionError,
)
from redshank.protocol.record_batch import (
    HEADER_SIZE,
    Compression,
    TimestampType,
    set_base_offset,
    set_leader_epoch,
    validate_batch,
)
from redshank.protocol.records import (
    BatchBuilder,
    ControlRecord,
    ControlType,
    Header,
    Record,
    build_batch,
    build_control_batch,
    iter_records,
    parse_control_record,
)
from redshank.protocol.varint import encode_varint, encode_varlong

ALL_CODECS = list(Compression)
T0 = 1_700_000_000_000


def _sample(count: int = 60, base_offset: int = 0) -> list[Record]:
    """Records with null keys/values, headers (null values, non-ASCII keys), timestamps that go
    backwards, and values compressible enough that every codec shrinks them."""
    records = []
    for i in range(count):
        key = None if i % 4 == 0 else b"key-%d" % (i % 7)
        value = None if i % 9 == 5 else b"value %d " % i * (1 + i % 5)
        headers: tuple[tuple[str, bytes | None], ...] = ()
        if i % 3 == 1:
            headers = (("trace", b"t-%d" % i), ("ñ-empty", b""), ("null", None))
        records.append(Record(base_offset + i, T0 + (i * 37) % 50 - 10, key, value, headers))
    return records


def _recrc(buf: bytearray) -> bytearray:
    """Refresh the CRC after a test edits a batch's CRC-covered bytes on purpose."""
    struct.pack_into(">I", buf, 17, crc32c.crc32c(memoryview(buf)[21:]))
    return buf


def _raw_batch(records: bytes, count: int, attributes: int = 0) -> bytes:
    """A batch whose records section is given byte for byte (to plant malformed records)."""
    buf = bytearray(HEADER_SIZE) + records
    struct.pack_into(
        ">qiibIhiqqqhii", buf, 0, 0, len(buf) - 12, -1, 2, 0, attributes,
        max(count - 1, 0), T0, T0, -1, -1, -1, count,
    )
    return bytes(_recrc(buf))


def _record_bytes(body: bytes) -> bytes:
    return encode_varint(len(body)) + body


# --- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ALL_CODECS)
def test_round_trip_every_codec(codec: Compression) -> None:
    records = _sample(base_offset=1000)
    batch = build_batch(records, base_offset=1000, compression=codec)
    header = validate_batch(batch)
    assert header.size == len(batch)
    assert header.compression == codec
    assert (header.base_offset, header.last_offset_delta, header.record_count) == (1000, 59, 60)
    assert header.base_timestamp == records[0].timestamp
    assert header.max_timestamp == max(r.timestamp for r in records)
    assert list(iter_records(batch)) == records
    if codec != Compression.NONE:
        assert len(batch) < len(build_batch(records, base_offset=1000))


@pytest.mark.parametrize("codec", ALL_CODECS)
def test_many_and_large_records_round_trip(codec: Compression) -> None:
    # 2,000 records plus a 100 KiB value: several snappy 32 KiB blocks, multi-byte varints.
    records = [Record(i, T0 + i, None, b"%08d" % i * 4, ()) for i in range(2000)]
    records.append(Record(2000, T0, b"big", bytes(range(256)) * 400, (("h", b"v"),)))
    batch = build_batch(records, compression=codec)
    assert list(iter_records(memoryview(batch))) == records


def test_header_fields_and_attribute_bits() -> None:
    records = _sample(3)
    batch = build_batch(
        records,
        compression=Compression.LZ4,
        producer_id=77,
        producer_epoch=3,
        base_sequence=500,
        partition_leader_epoch=9,
        is_transactional=True,
    )
    header = validate_batch(batch)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (77, 3, 500)
    assert header.partition_leader_epoch == 9
    assert header.is_transactional and not header.is_control and header.is_idempotent
    assert header.timestamp_type == TimestampType.CREATE_TIME
    assert header.attributes == 0x10 | Compression.LZ4


def test_offset_gaps_are_kept_as_deltas() -> None:
    records = [Record(o, T0, None, b"v", ()) for o in (10, 11, 15, 40)]
    batch = build_batch(records, base_offset=10)
    header = validate_batch(batch)
    assert (header.last_offset_delta, header.record_count) == (30, 4)
    assert [r.offset for r in iter_records(batch)] == [10, 11, 15, 40]


def test_log_append_time_replaces_record_timestamps_with_max_timestamp() -> None:
    records = [Record(i, T0 + i, None, b"v", ()) for i in range(3)]
    batch = build_batch(records, timestamp_type=TimestampType.LOG_APPEND_TIME)
    header = validate_batch(batch)
    assert header.timestamp_type == TimestampType.LOG_APPEND_TIME
    assert [r.timestamp for r in iter_records(batch)] == [T0 + 2] * 3


def test_restamped_offsets_and_epoch_show_in_records() -> None:
    batch = bytearray(build_batch(_sample(5), compression=Compression.ZSTD))
    set_base_offset(batch, 0, 5000)
    set_leader_epoch(batch, 0, 4)
    assert [r.offset for r in iter_records(batch)] == [5000, 5001, 5002, 5003, 5004]


def test_iter_records_reads_the_batch_at_a_position() -> None:
    first = build_batch(_sample(2))
    second = build_batch(_sample(3, base_offset=2), base_offset=2, compression=Compression.GZIP)
    joined = first + second + b"trailing"
    assert list(iter_records(joined, len(first))) == _sample(3, base_offset=2)
    assert list(iter_records(joined)) == _sample(2)


def test_builder_assigns_sequential_offsets() -> None:
    builder = BatchBuilder(base_offset=100, compression=Compression.SNAPPY)
    assert builder.append(b"a", timestamp=T0) == 100
    assert builder.append(b"b", key=b"k", headers=[("h", None)], timestamp=T0 + 5) == 101
    assert builder.append(None, timestamp=T0 - 5, offset=105) == 105
    assert len(builder) == 3 and builder.next_offset == 106
    assert builder.uncompressed_size > HEADER_SIZE
    assert list(iter_records(builder.build())) == [
        Record(100, T0, None, b"a", ()),
        Record(101, T0 + 5, b"k", b"b", (("h", None),)),
        Record(105, T0 - 5, None, None, ()),
    ]


def test_builder_rejects_what_it_cannot_encode() -> None:
    with pytest.raises(EncodeError, match="at least one record"):
        BatchBuilder().build()
    builder = BatchBuilder(base_offset=10)
    builder.append(b"a", timestamp=T0, offset=12)
    for bad_offset in (12, 11, 9, 10 + 2**31):
        with pytest.raises(EncodeError):
            builder.append(b"b", timestamp=T0, offset=bad_offset)
    with pytest.raises(EncodeError):
        build_batch([Record(0, T0, None, b"v", ())], producer_epoch=1 << 20)
    with pytest.raises(EncodeError):
        BatchBuilder(compression=6)  # type: ignore[arg-type]
    with pytest.raises(EncodeError):
        build_batch([Record(0, 2**63 - 1, None, b"", ()), Record(1, -(2**63), None, b"", ())])


# --- control batches ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(ControlType))
def test_control_batch_layout(kind: ControlType) -> None:
    batch = build_control_batch(
        kind, producer_id=42, producer_epoch=7, coordinator_epoch=3, timestamp=T0, base_offset=99
    )
    header = validate_batch(batch)
    assert header.is_control and header.is_transactional
    assert header.attributes == 0x30  # bits 4 and 5, uncompressed, create time
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (42, 7, -1)
    (record,) = iter_records(batch)
    assert record.offset == 99 and record.timestamp == T0 and record.headers == ()
    assert record.key == struct.pack(">hh", 0, kind)
    assert record.value == struct.pack(">hi", 0, 3)
    assert parse_control_record(record) == ControlRecord(kind, 0, 3)


def test_parse_control_record_rejects_short_fields_and_keeps_unknown_types() -> None:
    def rec(key: bytes | None, value: bytes | None) -> Record:
        return Record(0, T0, key, value, ())

    assert parse_control_record(rec(struct.pack(">hh", 0, 2), None)) == ControlRecord(2, 0, None)
    for key, value in (
        (None, b""),
        (b"\x00\x00\x00", b""),
        (struct.pack(">hh", -1, 0), struct.pack(">hi", 0, 1)),
        (struct.pack(">hh", 0, 1), b"\x00\x00\x00"),
        (struct.pack(">hh", 0, 1), struct.pack(">hi", -1, 1)),
    ):
        with pytest.raises(CorruptRecordError):
            parse_control_record(rec(key, value))


# --- kafka-python and aiokafka as independent oracles ------------------------------------------
# Both have their own record codecs (aiokafka's in a C extension, kafka-python's in pure Python)
# and their own xerial/lz4 framing; their builders and readers share one API.

ORACLES = {
    "kafka-python": (KafkaPythonBuilder, KafkaPythonBatch),
    "aiokafka": (AiokafkaBuilder, AiokafkaBatch),
}


def _oracle_batch(oracle: str, codec: Compression, records: list[Record]) -> bytes:
    builder_type, _ = ORACLES[oracle]
    # magic, codec, transactional, producer id, epoch, base sequence, max batch size
    builder = builder_type(2, int(codec), False, -1, -1, -1, 1 << 24)
    for r in records:
        builder.append(r.offset, r.timestamp, r.key, r.value, list(r.headers))
    return bytes(builder.build())


@pytest.mark.parametrize("oracle", ORACLES)
@pytest.mark.parametrize("codec", ALL_CODECS)
def test_we_read_oracle_batches(oracle: str, codec: Compression) -> None:
    records = _sample()
    batch = _oracle_batch(oracle, codec, records)
    header = validate_batch(batch)
    assert header.compression == codec  # they send uncompressed when it does not shrink
    assert header.record_count == len(records)
    assert list(iter_records(batch)) == records


@pytest.mark.parametrize("oracle", ORACLES)
@pytest.mark.parametrize("codec", ALL_CODECS)
def test_oracles_read_our_batches(oracle: str, codec: Compression) -> None:
    records = _sample(base_offset=300)
    batch = build_batch(records, base_offset=300, compression=codec, producer_id=5,
                        producer_epoch=1, base_sequence=17)
    theirs = ORACLES[oracle][1](batch)
    assert theirs.validate_crc()
    assert theirs.compression_type == codec
    assert (theirs.base_offset, theirs.last_offset_delta) == (300, 59)
    assert theirs.max_timestamp == max(r.timestamp for r in records)
    assert (theirs.producer_id, theirs.producer_epoch, theirs.base_sequence) == (5, 1, 17)
    read = [Record(r.offset, r.timestamp, r.key, r.value, tuple(r.headers)) for r in theirs]
    assert read == records


@pytest.mark.parametrize("oracle", ORACLES)
def test_oracles_read_our_control_batches(oracle: str) -> None:
    batch = build_control_batch(
        ControlType.ABORT, producer_id=8, producer_epoch=2, coordinator_epoch=6, timestamp=T0
    )
    theirs = ORACLES[oracle][1](batch)
    assert theirs.validate_crc() and theirs.is_control_batch and theirs.is_transactional
    (marker,) = list(theirs)
    assert marker.offset == 0
    assert (marker.key, marker.value) == (b"\x00\x00\x00\x00", b"\x00\x00\x00\x00\x00\x06")


# --- malformed input ---------------------------------------------------------------------------


def test_bad_crc_is_caught_unless_verification_is_off() -> None:
    batch = bytearray(build_batch(_sample(4)))
    batch[-2] ^= 0x01  # the last byte of the last record's value (the header count follows)
    with pytest.raises(CorruptBatchError, match="CRC"):
        iter_records(batch)
    assert len(list(iter_records(batch, verify_crc=False))) == 4
    with pytest.raises(CorruptBatchError, match="truncated"):
        iter_records(batch[:-1], verify_crc=False)


def test_unknown_codec_bits_are_typed_errors() -> None:
    for bits in (5, 6, 7):
        batch = _recrc(bytearray(build_batch(_sample(2))))
        struct.pack_into(">h", batch, 21, bits)
        with pytest.raises(UnknownCompressionError):
            iter_records(_recrc(batch))


def test_corrupt_compressed_section_is_a_decompression_error() -> None:
    valid = _record_bytes(b"\x00\x00\x00\x01\x01\x00")  # one empty record
    with pytest.raises(DecompressionError):
        iter_records(_raw_batch(b"not zstd at all", 1, attributes=Compression.ZSTD))
    ok = _raw_batch(compress(Compression.GZIP, valid), 1, attributes=Compression.GZIP)
    assert list(iter_records(ok)) == [Record(0, T0, None, None, ())]


def test_compressed_bomb_in_a_batch_is_capped() -> None:
    bomb = compress(Compression.ZSTD, bytes(32 * 1024 * 1024))
    batch = _raw_batch(bomb, 1, attributes=Compression.ZSTD)
    with pytest.raises(DecompressionBombError):
        iter_records(batch, max_decompressed_size=1024 * 1024)


def test_negative_or_impossible_record_counts_fail_up_front() -> None:
    one = _record_bytes(b"\x00\x00\x00\x01\x01\x00")
    with pytest.raises(CorruptBatchError, match="negative"):
        iter_records(_raw_batch(one, -1))
    with pytest.raises(CorruptRecordError, match="cannot fit"):
        iter_records(_raw_batch(one, 2**31 - 1))


def test_records_are_read_lazily_up_to_the_malformed_one() -> None:
    good = _record_bytes(b"\x00\x00\x00\x01\x01\x00")
    bad = _record_bytes(b"\x00\x00\x02\x01\x01\x02" + b"\x03")  # header count 1, key length -2
    records = iter_records(_raw_batch(good + bad, 2))
    assert next(records) == Record(0, T0, None, None, ())
    with pytest.raises(CorruptRecordError):
        next(records)


@pytest.mark.parametrize(
    ("section", "count", "match"),
    [
        # Declared length shorter than the fields it holds.
        (encode_varint(5) + b"\x00\x00\x00\x01\x01\x00", 1, "length"),
        # Declared length longer than the fields: fields end before the record does.
        (_record_bytes(b"\x00\x00\x00\x01\x01\x00\x00"), 1, "off"),
        # Key length runs past the record.
        (_record_bytes(b"\x00\x00\x00" + encode_varint(50) + b"ab\x01\x00"), 1, "overruns"),
        # Key length -3 is neither null nor a length.
        (_record_bytes(b"\x00\x00\x00\x05\x01\x00"), 1, "negative"),
        # Header count negative, and larger than the bytes left.
        (_record_bytes(b"\x00\x00\x00\x01\x01\x03"), 1, "header count"),
        (_record_bytes(b"\x00\x00\x00\x01\x01" + encode_varint(1000) + b"\x00" * 4), 1, "count"),
        # Null header key.
        (_record_bytes(b"\x00\x00\x00\x01\x01\x02\x01\x01"), 1, "header key"),
        # Header key that is not UTF-8.
        (_record_bytes(b"\x00\x00\x00\x01\x01\x02\x02\xff\x01"), 1, "UTF-8"),
        # Timestamp delta varlong longer than 10 bytes.
        (_record_bytes(b"\x00" + b"\xff" * 11 + b"\x00\x01\x01\x00"), 1, "malformed"),
        # Bytes left after the last record.
        (_record_bytes(b"\x00\x00\x00\x01\x01\x00") + b"\x00" * 7, 1, "left after"),
        # Count says two records; the second's declared length runs past the batch.
        (_record_bytes(b"\x00\x00\x00\x01\x01\x00") + encode_varint(20) + b"\x00" * 6, 2,
         "length"),
    ],
)
def test_malformed_records_are_corrupt_record_errors(
    section: bytes, count: int, match: str
) -> None:
    with pytest.raises(CorruptRecordError, match=match):
        list(iter_records(_raw_batch(section, count)))


def test_timestamp_and_offset_deltas_are_applied() -> None:
    body = b"\x00" + encode_varlong(-7) + encode_varint(3) + b"\x01\x01\x00"
    (record,) = iter_records(_raw_batch(_record_bytes(body), 1))
    assert (record.offset, record.timestamp) == (3, T0 - 7)


# --- properties and fuzzing ---------------------------------------------------------------------

_maybe_bytes = st.none() | st.binary(max_size=40)
_headers = st.lists(st.tuples(st.text(max_size=8), _maybe_bytes), max_size=3).map(tuple)


@st.composite
def _records(draw: st.DrawFn) -> tuple[int, list[Record]]:
    base = draw(st.integers(0, 2**40))
    gaps = draw(st.lists(st.integers(1, 1000), min_size=1, max_size=20))
    records, offset = [], base
    for gap in gaps:
        ts = draw(st.integers(-(2**40), 2**41))
        headers: tuple[Header, ...] = draw(_headers)
        records.append(Record(offset, ts, draw(_maybe_bytes), draw(_maybe_bytes), headers))
        offset += gap
    return base, records


@given(_records(), st.sampled_from(ALL_CODECS))
def test_property_build_then_read_is_identity(
    case: tuple[int, list[Record]], codec: Compression
) -> None:
    base, records = case
    batch = build_batch(records, base_offset=base, compression=codec)
    header = validate_batch(batch)
    assert header.record_count == len(records)
    assert header.last_offset == records[-1].offset
    assert list(iter_records(batch)) == records


def _read_all(buf: bytes | bytearray, limit: int = 1 << 20) -> list[Record]:
    return list(iter_records(buf, max_decompressed_size=limit))


_SEEDS = [
    build_batch(_sample(8), compression=codec) for codec in ALL_CODECS
] + [build_control_batch(ControlType.COMMIT, producer_id=1, producer_epoch=0,
                         coordinator_epoch=0, timestamp=T0)]


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(_SEEDS),
    st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1, max_size=8),
    st.integers(0, 2000),
    st.booleans(),
)
def test_fuzz_mutated_batches_raise_only_decode_errors(
    seed: bytes, edits: list[tuple[int, int]], cut: int, fix_crc: bool
) -> None:
    buf = bytearray(seed)
    for pos, value in edits:
        # Mostly past the CRC field so the record parser, not just the CRC check, sees the damage.
        buf[HEADER_SIZE - 40 + pos % (len(buf) - HEADER_SIZE + 40)] = value
    if cut:
        del buf[len(buf) - cut % len(buf) :]
    if fix_crc and len(buf) >= HEADER_SIZE:
        struct.pack_into(">i", buf, 8, len(buf) - 12)
        _recrc(buf)
    try:
        records = _read_all(buf)
    except DecodeError:
        return
    assert all(isinstance(r, Record) for r in records)


@given(st.binary(min_size=0, max_size=300), st.integers(0, 7), st.integers(-5, 100))
def test_fuzz_random_records_sections_raise_only_decode_errors(
    section: bytes, codec_bits: int, count: int
) -> None:
    try:
        records = _read_all(_raw_batch(section, count, attributes=codec_bits), limit=1 << 16)
    except DecodeError:
        return
    assert len(records) == count


@given(st.binary(max_size=200))
def test_fuzz_random_bytes_raise_only_decode_errors(buf: bytes) -> None:
    try:
        _read_all(buf)
    except DecodeError:
        return
