"""check_producer_batch: every lie a CRC-valid batch can tell about its records is refused with a
typed DecodeError, and every batch a producer really writes (each codec, keys, headers, many
records) is accepted; the bombs stop at the cap."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redshank.protocol.batch_validator import check_producer_batch
from redshank.protocol.compression import compress
from redshank.protocol.errors import (
    CorruptBatchError,
    CorruptRecordError,
    DecodeError,
    DecompressionBombError,
    DecompressionError,
    UnknownCompressionError,
)
from redshank.protocol.record_batch import HEADER_SIZE, Compression, validate_batch
from redshank.protocol.records import BatchBuilder, iter_records
from redshank.protocol.varint import encode_varint, encode_varlong

# The catalogue of lying batches lives with the integration tests that send them to a broker.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from poison import (
    LIES,
    POISON,
    T0,
    batch,
    forge,
    gzip_bomb,
    lie,
    record,
    zstd_bomb,
)


def _check(buf: bytes, max_decompressed_size: int = 64 << 20) -> None:
    check_producer_batch(buf, validate_batch(buf), max_decompressed_size=max_decompressed_size)


@pytest.mark.parametrize("codec", list(Compression))
@pytest.mark.parametrize("n", [1, 3, 65, 300])
def test_producer_batches_of_every_codec_are_accepted(codec: Compression, n: int) -> None:
    builder = BatchBuilder(compression=codec, producer_id=3, producer_epoch=0, base_sequence=0)
    for i in range(n):
        headers = [("trace", b"t" * (i % 5)), ("\u00e9", None)] if i % 3 == 0 else []
        builder.append(None if i % 7 == 0 else b"v" * (i * 37 % 9000), key=b"k" * (i % 3),
                       headers=headers, timestamp=T0 + i * 1000)
    buf = builder.build()
    _check(buf)
    assert len(list(iter_records(buf))) == n


def test_records_sent_at_a_nonzero_position_are_accepted() -> None:
    good = batch(4)
    buf = b"\xee" * 7 + good
    check_producer_batch(buf, validate_batch(buf, 7), 7)


@pytest.mark.parametrize("name", sorted(LIES))
def test_header_lies_are_refused(name: str) -> None:
    # CorruptBatchError when the header contradicts itself; its subclass CorruptRecordError
    # when count and lastOffsetDelta agree on a lie the records expose.
    with pytest.raises(CorruptBatchError, match=r"lastOffsetDelta|truncated"):
        _check(LIES[name])


def test_count_below_one_is_refused() -> None:
    for count in (0, -1):
        with pytest.raises(CorruptBatchError, match="not positive"):
            _check(lie(batch(3), count=count, last_offset_delta=count - 1))


def test_count_and_delta_agreeing_on_a_lie_are_caught_by_the_walk() -> None:
    good = batch(3)
    with pytest.raises(CorruptRecordError):  # 5 records announced, 3 present
        _check(lie(good, count=5, last_offset_delta=4))
    with pytest.raises(CorruptRecordError, match="bytes left"):  # 2 announced, 3 present
        _check(lie(good, count=2, last_offset_delta=1))


@pytest.mark.parametrize("deltas", [(0, 2, 1), (0, 0, 1), (0, 1, 3), (1, 2, 3), (0, 1, -1)])
def test_offset_deltas_other_than_0_to_n_minus_1_are_refused(deltas: tuple[int, ...]) -> None:
    section = b"".join(record(d) for d in deltas)
    with pytest.raises(CorruptRecordError, match="offset delta"):
        _check(forge(section, count=3, last_offset_delta=2))


def test_delta_beyond_two_bytes_is_compared_too() -> None:
    n = 9000  # deltas from 8192 on take three varint bytes
    section = b"".join(record(i) for i in range(n))
    _check(forge(section, count=n, last_offset_delta=n - 1))
    wrong = section[: -len(record(n - 1))] + record(n)
    with pytest.raises(CorruptRecordError, match=f"offset delta {n}"):
        _check(forge(wrong, count=n, last_offset_delta=n - 1))


@pytest.mark.parametrize("name", ["varint_11_bytes", "length_2_pow_40"])
def test_poison_lengths_are_refused(name: str) -> None:
    with pytest.raises(CorruptRecordError, match="varint"):
        _check(POISON[name])


@pytest.mark.parametrize("length", [
    encode_varint(-1),               # negative
    encode_varint(5),                # below the smallest record
    encode_varint(10_000),           # past the section
    encode_varint(2**31 - 1),        # the largest int32
    b"\x80\x80\x80\x80",             # truncated varint
])
def test_bad_record_lengths_are_refused(length: bytes) -> None:
    with pytest.raises(CorruptRecordError):
        _check(forge(record(0, length=length), count=1, last_offset_delta=0))


def test_wrong_true_length_is_refused_both_ways() -> None:
    body = record(0)[1:]
    for delta in (-1, 1):
        section = encode_varint(len(body) + delta) + body + b"\x00"
        with pytest.raises(CorruptRecordError):
            _check(forge(section, count=1, last_offset_delta=0))


def _fields(fields: bytes) -> bytes:
    body = b"\x00\x00\x00" + fields  # attributes, timestampDelta 0, offsetDelta 0
    return forge(encode_varint(len(body)) + body, count=1, last_offset_delta=0)


@pytest.mark.parametrize("fields", [
    b"\x01" + encode_varint(50) + b"v" * 3 + b"\x00",                      # value overruns
    encode_varint(-2) + b"\x01\x00" + b"\x00" * 3,                          # key length -2
    b"\x01\x01",                                                             # no header count
    b"\x01\x01" + encode_varint(3) + b"\x00",                              # 3 headers, none there
    b"\x01\x01\x02" + encode_varint(2) + b"\xff\xfe\x01",                  # header key not UTF-8
    b"\x01\x01\x02" + encode_varint(-1) + b"\x01",                         # header key length -1
    b"\x01\x01\x02\x02k" + encode_varint(-3),                              # header value -3
    b"\x01\x01\x02\x02k" + encode_varint(9) + b"v",                        # header value overruns
    b"\x01" + b"\xff" * 5 + b"\x01",                                         # 6-byte varint
])
def test_malformed_fields_inside_a_record_are_refused(fields: bytes) -> None:
    with pytest.raises(CorruptRecordError):
        _check(_fields(fields))
    with pytest.raises(DecodeError):  # the reader refuses the same bytes
        list(iter_records(_fields(fields)))


def test_timestamp_varlong_of_eleven_bytes_is_refused() -> None:
    body = b"\x00" + b"\xff" * 10 + b"\x01" + b"\x00\x01\x01\x00"
    with pytest.raises(CorruptRecordError, match="varint longer"):
        _check(forge(encode_varint(len(body)) + body, count=1, last_offset_delta=0))
    long_ok = b"\x00" + encode_varlong(-(2**62)) + b"\x00\x01\x01\x00"
    _check(forge(encode_varint(len(long_ok)) + long_ok, count=1, last_offset_delta=0))


def test_trailing_bytes_after_the_last_record_are_refused() -> None:
    section = record(0) + record(1) + b"\x00"
    with pytest.raises(CorruptRecordError, match="1 bytes left"):
        _check(forge(section, count=2, last_offset_delta=1))
    zipped = compress(Compression.LZ4, record(0) + b"junk")
    with pytest.raises(CorruptRecordError, match="4 bytes left"):
        _check(forge(zipped, count=1, last_offset_delta=0, compression=Compression.LZ4))


@pytest.mark.parametrize("codec", [5, 6, 7])
def test_unknown_codec_bits_are_refused(codec: int) -> None:
    with pytest.raises(UnknownCompressionError, match=f"codec {codec}"):
        _check(POISON[f"codec_{codec}"])


@pytest.mark.parametrize("codec", [c for c in Compression if c != Compression.NONE])
def test_compressed_section_that_does_not_decompress_is_refused(codec: Compression) -> None:
    zipped = bytearray(compress(codec, record(0) * 3, level=None))
    zipped[len(zipped) // 2:] = b"\x00" * (len(zipped) - len(zipped) // 2)
    with pytest.raises((DecompressionError, CorruptRecordError)):
        _check(forge(bytes(zipped), count=1, last_offset_delta=0, compression=codec))


@pytest.mark.parametrize("codec", [c for c in Compression if c != Compression.NONE])
def test_compressed_walk_refuses_the_same_lies(codec: Compression) -> None:
    section = compress(codec, record(0) + record(2))
    with pytest.raises(CorruptRecordError, match="offset delta 2"):
        _check(forge(section, count=2, last_offset_delta=1, compression=codec))


@pytest.mark.parametrize("codec", [Compression.GZIP, Compression.ZSTD, Compression.LZ4,
                                   Compression.SNAPPY])
def test_bombs_stop_at_a_lowered_cap(codec: Compression) -> None:
    section = compress(codec, bytes(4 << 20))  # 4 MiB of zeros, cap 1 MiB
    with pytest.raises(DecompressionBombError):
        _check(forge(section, count=1, last_offset_delta=0, compression=codec),
               max_decompressed_size=1 << 20)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", ["gzip_bomb", "zstd_bomb"])
def test_real_bombs_stop_at_the_default_cap_quickly(name: str) -> None:
    start = time.monotonic()
    with pytest.raises(DecompressionBombError, match="cap"):
        _check(POISON[name])
    assert time.monotonic() - start < 5  # a 64 MiB cap, not the 1 or 4 GiB the bomb holds


def test_bomb_builders_hold_what_they_say() -> None:
    import zlib

    import cramjam

    assert zlib.decompressobj(31).decompress(gzip_bomb(3 << 20)) == bytes(3 << 20)
    assert bytes(cramjam.zstd.decompress(zstd_bomb(1 << 20))) == bytes(1 << 20)


def _reader_accepts(buf: bytes) -> bool:
    """What the full reader says of a producer's batch: every record decodes, offsets are
    0..n-1 from the base, and the header's count and lastOffsetDelta agree with them."""
    try:
        header = validate_batch(buf)
        offsets = [r.offset - header.base_offset for r in iter_records(buf)]
    except DecodeError:
        return False
    n = header.record_count
    return n >= 1 and header.last_offset_delta == n - 1 and offsets == list(range(n))


_shapes = st.lists(st.tuples(
    st.one_of(st.none(), st.binary(max_size=70)),                         # key, fast path < 64
    st.one_of(st.none(), st.binary(max_size=300), st.just(b"x" * 9000)),  # value, 3-byte length
    st.integers(0, 10_000),                                                # timestamp step (ms)
    st.lists(st.tuples(st.text(max_size=4), st.one_of(st.none(), st.binary(max_size=4))),
             max_size=2),
), min_size=1, max_size=80)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(shape=_shapes, mutations=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                                         max_size=3), codec=st.sampled_from(list(Compression)))
def test_validator_agrees_with_the_reader_on_mutated_batches(
        shape: list[tuple[bytes | None, bytes | None, int, list[tuple[str, bytes | None]]]],
        mutations: list[tuple[int, int]], codec: Compression) -> None:
    builder = BatchBuilder()
    ts = T0
    for key, value, step, headers in shape:
        ts += step
        builder.append(value, key=key, headers=headers, timestamp=ts)
    plain = builder.build()
    section = bytearray(plain[HEADER_SIZE:])
    for at, byte in mutations:  # inside the records, before compression
        section[at % len(section)] = byte
    header = validate_batch(plain)
    buf = forge(compress(codec, bytes(section)), count=header.record_count,
                last_offset_delta=header.last_offset_delta, compression=codec)
    try:
        _check(buf)
        accepted = True
    except DecodeError:
        accepted = False
    assert accepted == _reader_accepts(buf)
