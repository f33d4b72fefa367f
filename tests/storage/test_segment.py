"""Segments on real files: recovery stops at a zeroed header, a bad CRC, a length past the
end or an offset gap, truncates there and converges when rerun; sealing trims the
pre-allocated tail and persists an index that is trusted only when it matches."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from storage_batches import batch_for_offset

from redshank.protocol.record_batch import parse_header, set_base_offset
from redshank.storage import OsFiles
from redshank.storage.batch_scan import BatchScanner, StopReason
from redshank.storage.segment import Segment, parse_segment_name, segment_name


def _write(seg: Segment, count: int) -> list[bytes]:
    out = []
    for _ in range(count):
        buf = batch_for_offset(seg.next_offset)
        h = parse_header(buf)
        seg.write([buf], [(h.base_offset, h.last_offset, h.size, h.max_timestamp)])
        out.append(bytes(buf))
    return out


def _segment(tmp_path: Path, count: int) -> tuple[Segment, list[bytes]]:
    seg = Segment.create(OsFiles(), str(tmp_path), 0, 3, index_interval=2048,
                         preallocate_step=64 * 1024)
    return seg, _write(seg, count)


def test_names_round_trip() -> None:
    assert segment_name(42, 7) == "00000000000000000042-7.log"
    assert parse_segment_name("00000000000000000042-7.log") == (42, 7)
    assert parse_segment_name("00000000000000000042-7.index") is None
    assert parse_segment_name("junk.log") is None


def test_preallocated_segment_recovers_to_the_last_batch(tmp_path: Path) -> None:
    seg, stored = _segment(tmp_path, 20)
    seg.sync()
    assert os.path.getsize(seg.path) == 64 * 1024 > seg.size  # zeros after the write head
    seg.close()
    again, cut = Segment.open(OsFiles(), str(tmp_path), 0, 3, recover=True)
    try:
        assert cut == 64 * 1024 - sum(map(len, stored))
        assert again.size == sum(map(len, stored))
        assert again.next_offset == parse_header(stored[-1]).last_offset + 1
        assert bytes(again.read_from(0, 1 << 20, again.size)[0]) == b"".join(stored)
    finally:
        again.close()


@pytest.mark.parametrize("damage", ["bad_crc", "truncated", "offset_gap", "zeroed"])
def test_recovery_stops_at_the_first_bad_batch(tmp_path: Path, damage: str) -> None:
    seg, stored = _segment(tmp_path, 10)
    seg.sync()
    seg.close()
    victim = sum(map(len, stored[:6]))
    with open(seg.path, "r+b") as f:
        if damage == "bad_crc":
            f.seek(victim + 100)
            f.write(b"\xff")
        elif damage == "truncated":
            f.truncate(victim + 80)
        elif damage == "offset_gap":
            f.seek(victim)
            raw = bytearray(f.read(len(stored[6])))
            set_base_offset(raw, 0, 10_000)
            f.seek(victim)
            f.write(raw)
        else:
            f.seek(victim)
            f.write(bytes(61))
    scan = BatchScanner(OsFiles().open(seg.path), 0, os.path.getsize(seg.path),
                        verify_crc=True, expected_offset=0)
    assert len(list(scan)) == 6 and scan.valid_end == victim
    assert scan.stop_reason == {"bad_crc": StopReason.BAD_CRC,
                                "truncated": StopReason.TRUNCATED,
                                "offset_gap": StopReason.OFFSET_GAP,
                                "zeroed": StopReason.BAD_HEADER}[damage]
    for _ in range(2):  # rerunning recovery converges to the same place
        again, _cut = Segment.open(OsFiles(), str(tmp_path), 0, 3, recover=True)
        assert again.size == victim and os.path.getsize(seg.path) == victim
        assert bytes(again.read_from(0, 1 << 20, again.size)[0]) == b"".join(stored[:6])
        again.close()


def test_seal_trims_and_index_is_trusted_only_when_it_matches(tmp_path: Path) -> None:
    seg, stored = _segment(tmp_path, 60)
    seg.seal()
    seg.close()
    assert os.path.getsize(seg.path) == seg.size
    trusted, cut = Segment.open(OsFiles(), str(tmp_path), 0, 3, recover=False)
    assert cut == 0 and trusted.sealed and len(trusted.index) > 1
    assert trusted.index.encode(trusted.size) == seg.index.encode(seg.size)
    trusted.close()
    # A corrupt index is ignored: the segment is scanned and the index rebuilt.
    with open(seg.index_path, "r+b") as f:
        f.seek(50)
        f.write(b"\x00\x01")
    rebuilt, _ = Segment.open(OsFiles(), str(tmp_path), 0, 3, recover=False,
                              index_interval=2048)
    try:
        assert not rebuilt.sealed and not os.path.exists(seg.index_path)
        assert rebuilt.index.encode(rebuilt.size) == seg.index.encode(seg.size)
        assert rebuilt.size == sum(map(len, stored))
    finally:
        rebuilt.close()


def test_locate_read_and_truncate(tmp_path: Path) -> None:
    seg, stored = _segment(tmp_path, 40)
    try:
        heads = [parse_header(s) for s in stored]
        positions = [sum(map(len, stored[:i])) for i in range(40)]
        for i in (0, 13, 39):
            assert seg.locate(heads[i].last_offset, seg.size) == positions[i]
        assert seg.locate(heads[-1].last_offset + 1, seg.size) is None
        data, nxt = seg.read_from(heads[5].base_offset, len(stored[5]) + 10, seg.size)
        assert bytes(data) == stored[5] and nxt == heads[6].base_offset
        # A limit snapshot hides later batches.
        assert seg.read_from(heads[30].base_offset, 1 << 20, positions[30])[0] == b""
        seg.truncate(heads[20].base_offset + 1)
        assert seg.size == positions[20] and seg.next_offset == heads[20].base_offset
        assert os.path.getsize(seg.path) == positions[20]
        more = _write(seg, 3)
        assert bytes(seg.read_from(0, 1 << 20, seg.size)[0]) == b"".join(stored[:20] + more)
        assert seg.index.lookup_timestamp(heads[10].max_timestamp)[1] <= positions[10]
        assert seg.locate_timestamp(heads[10].max_timestamp, seg.size) == heads[10].base_offset
    finally:
        seg.close()
