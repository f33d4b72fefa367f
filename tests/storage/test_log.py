"""The partition log on real files: offsets, reads, rolls, terms, truncation, retention."""

from __future__ import annotations

import os
from pathlib import Path

import crc32c
import pytest
from storage_batches import batch_for_offset, make_batch

from redshank.protocol.errors import CorruptBatchError
from redshank.protocol.record_batch import iter_batches, parse_header
from redshank.storage import BatchCache, Log, LogConfig, OffsetOutOfRangeError


def _batches(data: bytes | memoryview) -> list[tuple[int, int, int]]:
    """(base offset, last offset, epoch) of every batch, checking each CRC."""
    return [(h.base_offset, h.last_offset, h.partition_leader_epoch)
            for _, h in iter_batches(bytes(data))]


def _fill(log: Log, n: int, term: int = 1) -> list[bytes]:
    out = []
    for _ in range(n):
        buf = batch_for_offset(log.dirty_offset + 1)
        log.append(buf, term)
        out.append(bytes(buf))
    return out


def test_append_assigns_offsets_and_stamps_term_in_place(tmp_path: Path) -> None:
    log = Log.open(str(tmp_path))
    try:
        a = make_batch([b"a", b"b", b"c"], base_offset=999)
        b = make_batch([b"d"], base_offset=5)
        res = log.append(a + b, term=3)
        assert (res.base_offset, res.last_offset, res.batches) == (0, 3, 2)
        assert log.dirty_offset == 3 and log.flushed_offset == -1
        assert _batches(log.read(0, 1 << 20)) == [(0, 2, 3), (3, 3, 3)]
        # No I/O yet: the batches are served from memory.
        assert log.segments() == []
        assert log.flush() == 3 and log.flushed_offset == 3
        assert log.segments() == [(0, 3, len(a) + len(b))]
    finally:
        log.close()


def test_append_rejects_corrupt_batch_atomically_and_readonly_buffers(tmp_path: Path) -> None:
    log = Log.open(str(tmp_path))
    try:
        good, bad = make_batch([b"x"]), make_batch([b"y"])
        bad[-1] ^= 1
        with pytest.raises(CorruptBatchError):
            log.append(good + bad, 1)
        assert log.dirty_offset == -1
        with pytest.raises(ValueError, match="writable"):
            log.append(memoryview(bytes(good)), 1)
        # The caller may vouch for the CRC (it validated already): then it is not recomputed.
        assert log.append(bad, 1, crc_checked=True).base_offset == 0
        with pytest.raises(CorruptBatchError):
            log.append(good[:-1], 1, crc_checked=True)
    finally:
        log.close()


def test_read_returns_whole_batches_from_the_containing_one(tmp_path: Path) -> None:
    cfg = LogConfig(segment_bytes=8 * 1024)
    log = Log.open(str(tmp_path), cfg)
    stored = _fill(log, 40)
    log.flush()
    sizes = [len(s) for s in stored]
    firsts = [parse_header(s).base_offset for s in stored]
    fresh = None
    try:
        for lg in ("warm", "cold"):
            if lg == "cold":  # reopened with no cache: every read goes to the disk
                log.close()
                fresh = log = Log.open(str(tmp_path), cfg, cache=BatchCache(0))
            # An offset inside a batch starts at that batch.
            mid = firsts[7] + parse_header(stored[7]).last_offset_delta
            got = log.read(mid, sizes[7] + sizes[8])
            assert bytes(got) == stored[7] + stored[8]
            # At least one batch even when max_bytes is smaller than it.
            assert bytes(log.read(firsts[3], 1)) == stored[3]
            # Reads span segment boundaries and stop at whole batches.
            got = log.read(0, sum(sizes[:25]) + 10)
            assert bytes(got) == b"".join(stored[:25])
            assert log.read(log.dirty_offset + 1, 100) == b""
        assert fresh is not None and len(fresh.segments()) > 1
    finally:
        log.close()


def test_read_cached_never_touches_disk(tmp_path: Path) -> None:
    cache = BatchCache(10 * 1024)
    log = Log.open(str(tmp_path), cache=cache)
    try:
        stored = _fill(log, 30)
        log.flush()
        # The newest batches are cached, the oldest evicted: a read there needs the disk.
        assert log.read_cached(0, 100) is None
        last = parse_header(stored[-1]).base_offset
        assert bytes(log.read_cached(last, 1 << 20) or b"") == stored[-1]
        assert bytes(log.read(0, 1)) == stored[0]
    finally:
        log.close()


def test_reopen_keeps_everything_flushed_and_continues(tmp_path: Path) -> None:
    log = Log.open(str(tmp_path), LogConfig(segment_bytes=16 * 1024))
    stored = _fill(log, 50, term=2)
    log.close()
    assert not any(n.endswith(".tmp") for n in os.listdir(tmp_path))
    log = Log.open(str(tmp_path), LogConfig(segment_bytes=16 * 1024))
    try:
        assert log.flushed_offset == log.dirty_offset
        assert bytes(log.read(0, 1 << 24)) == b"".join(stored)
        assert log.last_term == 2
        more = _fill(log, 5, term=4)
        log.flush()
        assert bytes(log.read(0, 1 << 24)) == b"".join(stored + more)
        # Sealed segments are trimmed to their data: no pre-allocated tail is left.
        for base, term, size in log.segments()[:-1]:
            path = tmp_path / f"{base:020d}-{term}.log"
            assert path.stat().st_size == size
            assert (tmp_path / f"{base:020d}-{term}.index").exists()
    finally:
        log.close()


def test_segments_roll_by_size_term_and_time(tmp_path: Path) -> None:
    log = Log.open(str(tmp_path), LogConfig(segment_bytes=4096, segment_ms=50))
    try:
        _fill(log, 10, term=1)
        log.flush()
        by_size = log.segments()
        assert len(by_size) > 1 and all(t == 1 for _, t, _ in by_size)
        assert all(size <= 4096 for _, _, size in by_size)
        _fill(log, 1, term=2)
        log.flush()
        assert log.segments()[-1][1] == 2 and log.segments()[-1][0] == log.dirty_offset - (
            log.dirty_offset - log.segments()[-1][0])
        assert log.term_at(0) == 1 and log.term_at(log.dirty_offset) == 2
        count = len(log.segments())
        # Roll by time: the active segment is older than segment_ms at the next write.
        seg = log._segments[-1]
        assert seg.first_write_at is not None
        seg.first_write_at -= 1.0
        _fill(log, 1, term=2)
        log.flush()
        assert len(log.segments()) == count + 1
        # Active segments are pre-allocated ahead of the write head.
        active = log._segments[-1]
        assert os.path.getsize(active.path) >= active.size
    finally:
        log.close()


def test_term_at_and_term_rules(tmp_path: Path) -> None:
    log = Log.open(str(tmp_path))
    try:
        _fill(log, 3, term=1)
        first_t3 = log.dirty_offset + 1
        _fill(log, 2, term=3)
        assert log.term_at(0) == 1 and log.term_at(first_t3 - 1) == 1
        assert log.term_at(first_t3) == 3 and log.last_term == 3
        assert log.term_at(log.dirty_offset + 1) is None
        with pytest.raises(ValueError, match="term"):
            _fill(log, 1, term=2)
    finally:
        log.close()


def test_truncate_removes_suffix_across_segments_and_memory(tmp_path: Path) -> None:
    cfg = LogConfig(segment_bytes=8 * 1024)
    log = Log.open(str(tmp_path), cfg)
    try:
        stored = _fill(log, 30, term=1)
        log.flush()
        stored += _fill(log, 5, term=2)  # unflushed, in memory
        bases = [parse_header(s).base_offset for s in stored]
        cut = bases[12] + 1  # inside batch 12: the whole batch goes
        assert log.truncate(cut) == bases[12] - 1
        assert log.dirty_offset == bases[12] - 1 and log.flushed_offset == bases[12] - 1
        assert bytes(log.read(0, 1 << 24)) == b"".join(stored[:12])
        assert log.last_term == 1
        again = _fill(log, 3, term=5)
        log.flush()
        assert bytes(log.read(0, 1 << 24)) == b"".join(stored[:12] + again)
    finally:
        log.close()
    log = Log.open(str(tmp_path), cfg)
    try:
        assert bytes(log.read(0, 1 << 24)) == b"".join(stored[:12] + again)
        assert log.term_at(log.dirty_offset) == 5
        assert log.truncate(0) == -1
        assert log.read(0, 100) == b""
        _fill(log, 1, term=6)
        log.flush()
        assert _batches(log.read(0, 1 << 20))[0][0] == 0
    finally:
        log.close()


def test_truncate_prefix_and_start_offset_checkpoint(tmp_path: Path) -> None:
    cfg = LogConfig(segment_bytes=4 * 1024)
    log = Log.open(str(tmp_path), cfg)
    try:
        stored = _fill(log, 30)
        log.flush()
        before = len(log.segments())
        bases = [parse_header(s).base_offset for s in stored]
        assert log.truncate_prefix(bases[20]) == bases[20]
        assert log.start_offset == bases[20] and len(log.segments()) < before
        with pytest.raises(OffsetOutOfRangeError):
            log.read(bases[19], 100)
        assert bytes(log.read(bases[20], 1)) == stored[20]
    finally:
        log.close()
    log = Log.open(str(tmp_path), cfg)
    try:
        assert log.start_offset == bases[20]
        # Past the end: the log becomes empty and the next append continues the offsets.
        end = log.dirty_offset + 1
        assert log.truncate_prefix(end + 100) == end
        assert log.read(end, 100) == b""
        _fill(log, 1)
        assert _batches(log.read(end, 1 << 20))[0][0] == end
    finally:
        log.close()


def test_timestamp_to_offset(tmp_path: Path) -> None:
    log = Log.open(str(tmp_path), LogConfig(segment_bytes=4096, index_interval=1024))
    try:
        stamps = [100, 300, 200, 500, 400, 900, 700]  # not monotonic, like real producers
        for i, ts in enumerate(stamps * 5):
            log.append(make_batch([b"v" * 300], timestamps=[ts + 1000 * (i // 7)]), 1)
            if i == 20:
                log.flush()  # part on disk, part in memory
        expect = {}
        all_ts = [ts + 1000 * (i // 7) for i, ts in enumerate(stamps * 5)]
        for target in (0, 150, 450, 950, 1250, 2850, 4900, 4901):
            expect[target] = next((i for i, t in enumerate(all_ts) if t >= target), None)
        for target, want in expect.items():
            assert log.timestamp_to_offset(target) == want, target
    finally:
        log.close()


def test_timestamp_to_record_refines_inside_the_batch(tmp_path: Path) -> None:
    """Per record, as Kafka: the first record whose timestamp is >= the target (the time index
    names the batch, its record timestamps the record), on disk and in memory; the record of a
    batch's max timestamp; a log start inside a batch skips the records below it."""
    log = Log.open(str(tmp_path), LogConfig(segment_bytes=4096, index_interval=1024))
    try:
        log.append(make_batch([b"a"] * 5, timestamps=[1000, 3000, 2000, 5000, 4000]), 1)
        log.flush()  # offsets 0-4 on disk
        log.append(make_batch([b"b"] * 3, timestamps=[100, 7000, 7000]), 1)  # 5-7 in memory
        assert log.timestamp_to_record(0) == (0, 1000)
        assert log.timestamp_to_record(2500) == (1, 3000)
        assert log.timestamp_to_record(4500) == (3, 5000)
        assert log.timestamp_to_record(5001) == (6, 7000)  # the first batch's max is 5000
        assert log.timestamp_to_record(7001) is None
        assert log.record_in_batch(4, 5000) == (3, 5000)  # any offset of the batch names it
        assert log.record_in_batch(7, 7000) == (6, 7000)
        assert log.record_in_batch(2, 9000) is None
        assert log.max_timestamp_record() == (6, 7000)  # the first record of the largest
        log.truncate_prefix(2)
        assert log.timestamp_to_record(2500) == (3, 5000)  # offset 1 is below the log start
    finally:
        log.close()
    reopened = Log.open(str(tmp_path), LogConfig(segment_bytes=4096, index_interval=1024))
    try:  # from the segments' time indexes alone
        assert reopened.max_timestamp_record() == (6, 7000)
    finally:
        reopened.close()
    empty = Log.open(str(tmp_path / "empty"), LogConfig())
    try:
        assert empty.max_timestamp_record() is None
    finally:
        empty.close()


def test_retention_by_size_and_time_never_the_active_segment(tmp_path: Path) -> None:
    log = Log.open(str(tmp_path), LogConfig(segment_bytes=4096, retention_bytes=10_000))
    try:
        for i in range(40):
            log.append(make_batch([b"r" * 400], timestamps=[1000 + i]), 1)
        log.flush()
        assert sum(s for _, _, s in log.segments()) > 10_000
        removed = log.apply_retention(now_ms=0)
        assert removed > 0
        total = sum(s for _, _, s in log.segments())
        assert total >= 10_000 and total - log.segments()[0][2] < 10_000
        assert log.start_offset == log.segments()[0][0]
    finally:
        log.close()
    log = Log.open(str(tmp_path), LogConfig(segment_bytes=4096, retention_ms=100))
    try:
        # Closed segments hold timestamps 1016..1023 and 1024..1031; a segment goes once its
        # newest timestamp is older than retention_ms. The active one is kept regardless.
        assert log.apply_retention(now_ms=1023 + 100) == 0
        assert log.apply_retention(now_ms=1031 + 100) == 1
        assert log.start_offset == 24
        log.append(make_batch([b"r"], timestamps=[5000]), 1)
        log.flush()
        assert log.apply_retention(now_ms=10_000) >= 1
        assert len(log.segments()) == 1
        assert log.read(log.start_offset, 1 << 20) != b""
    finally:
        log.close()


def test_reads_stop_at_max_offset_on_disk_and_in_memory(tmp_path: Path) -> None:
    log = Log.open(str(tmp_path), LogConfig(segment_bytes=8 * 1024), cache=BatchCache(0))
    try:
        stored = _fill(log, 20)
        log.flush()
        stored += _fill(log, 5)  # in memory only
        lasts = [parse_header(s).base_offset + parse_header(s).last_offset_delta
                 for s in stored]
        for hw_batch in (3, 17, 19, 22):
            hw = lasts[hw_batch]
            got = log.read(0, 1 << 24, max_offset=hw)
            assert bytes(got) == b"".join(stored[: hw_batch + 1])
            # A high watermark inside a batch (or just before it) excludes that batch.
            assert bytes(log.read(0, 1 << 24, max_offset=hw - 1)) == b"".join(
                stored[:hw_batch])
        assert log.read(lasts[5] + 1, 100, max_offset=lasts[5]) == b""
        mem = log.read_cached(lasts[20] + 1, 1 << 20, max_offset=lasts[22])
        assert mem is not None and bytes(mem) == b"".join(stored[21:23])
    finally:
        log.close()


def test_append_refuses_a_negative_last_offset_delta_even_with_a_valid_crc(tmp_path: Path) -> None:
    # Offsets come from lastOffsetDelta: a negative one would rewind the log (issue 12). The
    # produce path proves it equals count - 1; the log still refuses one that slipped past.
    log = Log.open(str(tmp_path))
    try:
        log.append(make_batch([b"a", b"b"]), 1)
        for crc_checked in (False, True):
            liar = make_batch([b"x"])
            liar[23:27] = (-5).to_bytes(4, "big", signed=True)
            liar[17:21] = crc32c.crc32c(bytes(liar[21:])).to_bytes(4, "big")
            with pytest.raises(CorruptBatchError, match="lastOffsetDelta -5"):
                log.append(make_batch([b"c"]) + liar, 1, crc_checked=crc_checked)
            assert log.dirty_offset == 1
        assert log.append(make_batch([b"d"]), 1).base_offset == 2
    finally:
        log.close()
