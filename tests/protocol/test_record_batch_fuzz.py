"""record_batch on hostile input: header parsing, validation and batch walking over random and
mutated bytes raise only CorruptBatchError; every header property and the unverified walk are
pinned by a test that fails without them."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redshank.protocol.errors import CorruptBatchError
from redshank.protocol.record_batch import (
    BATCH_OVERHEAD,
    HEADER_SIZE,
    Compression,
    TimestampType,
    batch_crc,
    iter_batches,
    parse_header,
    set_base_offset,
    set_leader_epoch,
    validate_batch,
)
from redshank.protocol.records import Record, build_batch

T0 = 1_700_000_000_000


def _batch(count: int = 3, base_offset: int = 0, **kwargs: object) -> bytes:
    records = [Record(base_offset + i, T0 + i, b"k", b"v" * i, ()) for i in range(count)]
    return build_batch(records, base_offset=base_offset, **kwargs)  # type: ignore[arg-type]


def test_header_properties_follow_the_attribute_bits() -> None:
    header = parse_header(_batch(timestamp_type=TimestampType.LOG_APPEND_TIME))
    assert header.timestamp_type == TimestampType.LOG_APPEND_TIME
    assert not (header.is_transactional or header.is_control or header.has_delete_horizon)
    assert not header.is_idempotent and header.compression == Compression.NONE
    buf = bytearray(_batch(producer_id=3, producer_epoch=0, base_sequence=0))
    struct.pack_into(">h", buf, 21, 0x40 | 0x07)  # delete horizon + an unknown codec
    header = parse_header(buf)
    assert header.has_delete_horizon and header.compression == 7 and header.is_idempotent
    assert header.timestamp_type == TimestampType.CREATE_TIME


def test_batch_crc_covers_attributes_to_the_end() -> None:
    buf = bytearray(_batch())
    header = parse_header(buf)
    assert batch_crc(buf, 0, header) == header.crc
    buf[21] ^= 0x01  # first CRC-covered byte
    assert batch_crc(buf, 0, header) != header.crc
    buf[21] ^= 0x01
    buf[20] ^= 0x01  # last byte of the CRC field itself is not covered
    assert batch_crc(buf, 0, header) != parse_header(buf).crc


def test_iter_batches_without_crc_check_still_needs_whole_batches() -> None:
    a, b = bytearray(_batch(2)), bytearray(_batch(4, base_offset=2))
    b[-1] ^= 0xFF  # bad CRC: skipped when unverified, caught when verified
    walked = [(pos, h.base_offset) for pos, h in iter_batches(bytes(a + b), verify_crc=False)]
    assert walked == [(0, 0), (len(a), 2)]
    with pytest.raises(CorruptBatchError, match="CRC"):
        list(iter_batches(bytes(a + b)))
    with pytest.raises(CorruptBatchError, match="truncated"):
        list(iter_batches(bytes(a + b[:-1]), verify_crc=False))


def test_header_checks_reject_short_lengths_and_negative_positions() -> None:
    buf = bytearray(_batch())
    struct.pack_into(">i", buf, 8, HEADER_SIZE - BATCH_OVERHEAD - 1)
    with pytest.raises(CorruptBatchError, match="below header size"):
        parse_header(buf)
    with pytest.raises(CorruptBatchError, match="truncated"):
        parse_header(_batch(), -1)
    with pytest.raises(CorruptBatchError, match="truncated"):
        parse_header(_batch(), 10**9)


@given(st.binary(max_size=HEADER_SIZE * 3), st.integers(-3, HEADER_SIZE * 3))
def test_fuzz_random_bytes_raise_only_corrupt_batch_errors(buf: bytes, pos: int) -> None:
    for check in (parse_header, validate_batch):
        try:
            header = check(buf, pos)
        except CorruptBatchError:
            continue
        assert header.magic == 2 and header.size >= HEADER_SIZE
    try:
        walked = list(iter_batches(buf, verify_crc=False))
    except CorruptBatchError:
        return
    assert sum(h.size for _, h in walked) == len(buf)


_SEEDS = [_batch(1), _batch(5, compression=Compression.GZIP), _batch(2) + _batch(3, base_offset=2)]


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(_SEEDS),
    st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(1, 255)), min_size=1, max_size=4),
    st.integers(0, 400),
)
def test_fuzz_mutations_are_caught_by_length_magic_or_crc(
    seed: bytes, edits: list[tuple[int, int]], cut: int
) -> None:
    """XOR-ing bytes anywhere but baseOffset/partitionLeaderEpoch (outside the CRC by design)
    must make validation fail; so must cutting bytes off the end inside a batch."""
    buf = bytearray(seed)
    touched = set()
    for pos, flip in edits:
        at = pos % len(buf)
        buf[at] ^= flip
        touched.add(at)
    starts = [p for p, _ in iter_batches(seed)]
    outside_crc = {s + i for s in starts for i in (*range(8), *range(12, 16))}
    changed = {at for at in touched if buf[at] != seed[at]}
    keep = len(buf) - cut % len(buf)
    del buf[keep:]
    try:
        walked = list(iter_batches(bytes(buf)))
    except CorruptBatchError:
        return
    # Only edits outside the CRC, and a cut (if any) exactly at a batch boundary, go unnoticed.
    assert not {at for at in changed if at < keep} - outside_crc
    assert keep == len(seed) or keep in starts
    assert [p for p, _ in walked] == [s for s in starts if s < keep]


@given(st.integers(-(2**63), 2**63 - 1), st.integers(-(2**31), 2**31 - 1))
def test_restamping_any_offset_and_epoch_keeps_every_batch_valid(offset: int, epoch: int) -> None:
    buf = bytearray(_SEEDS[2])
    for pos, _ in list(iter_batches(buf)):
        set_base_offset(buf, pos, offset)
        set_leader_epoch(memoryview(buf), pos, epoch)
    walked = list(iter_batches(bytes(buf)))
    assert [(h.base_offset, h.partition_leader_epoch) for _, h in walked] == [(offset, epoch)] * 2
