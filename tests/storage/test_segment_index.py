"""The sparse index: O(log n) offset and timestamp lookups, truncation, and a persisted form
that is rejected (and so rebuilt) whenever it does not match its segment exactly."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from redshank.storage import SegmentIndex


def _build(sizes: list[int], stamps: list[int], interval: int, base: int = 100
           ) -> tuple[SegmentIndex, list[tuple[int, int, int, int]]]:
    index = SegmentIndex(base, interval)
    batches = []  # (base offset, last offset, position, max timestamp)
    pos, off = 0, base
    for i, size in enumerate(sizes):
        last = off + i % 3
        index.add(off, last, pos, size, stamps[i])
        batches.append((off, last, pos, stamps[i]))
        pos += size
        off = last + 1
    return index, batches


@given(
    st.lists(st.integers(61, 5000), min_size=1, max_size=200),
    st.data(),
    st.sampled_from([1, 1024, 32 * 1024]),
)
def test_lookups_agree_with_a_linear_scan(sizes: list[int], data: st.DataObject,
                                          interval: int) -> None:
    stamps = data.draw(st.lists(st.integers(0, 10_000), min_size=len(sizes),
                                max_size=len(sizes)))
    index, batches = _build(sizes, stamps, interval)
    for base, last, _pos, _ts in batches:
        for offset in (base, last):
            got_off, got_pos = index.lookup(offset)
            # The entry starts at or before the batch holding `offset` (scan forward from it).
            holder = next(b for b in batches if b[0] <= offset <= b[1])
            assert got_off <= holder[0] and got_pos <= holder[2]
            assert any(b[0] == got_off and b[2] == got_pos for b in batches)
    target = data.draw(st.integers(-1, 10_001))
    _off, pos = index.lookup_timestamp(target)
    # Every batch before the returned position has a smaller timestamp.
    assert all(ts < target for _b, _l, p, ts in batches if p < pos)
    assert index.next_offset == batches[-1][1] + 1
    assert index.max_timestamp == max(stamps)


def test_one_entry_per_interval_and_first_always() -> None:
    index, _ = _build([1000] * 100, list(range(100)), 32 * 1024)
    # 100 KB of batches at one entry per 32 KiB (plus the first batch).
    assert len(index) == 4
    assert index.lookup(100) == (100, 0)
    assert index.lookup(99) == (100, 0)


def test_truncate_then_readd_restores_the_same_index() -> None:
    sizes, stamps = [700] * 50, [(i * 37) % 100 for i in range(50)]
    full, batches = _build(sizes, stamps, 2048)
    cut = batches[31][2]
    partial, _ = _build(sizes, stamps, 2048)
    restart = partial.truncate(cut)
    for base, last, pos, ts in batches:
        if restart <= pos < cut:
            partial.add(base, last, pos, 700, ts)
    want, _ = _build(sizes[:31], stamps[:31], 2048)
    assert partial.encode(cut) == want.encode(cut)
    assert full.truncate(0) == 0 and len(full) == 0 and full.next_offset == full.base_offset


def test_encode_decode_round_trip_and_rejections() -> None:
    index, _ = _build([900] * 300, list(range(300)), 4096)
    blob = index.encode(270_000)
    back = SegmentIndex.decode(blob, 100, 270_000)
    assert back is not None and back.encode(270_000) == blob
    assert back.lookup(250) == index.lookup(250)
    assert SegmentIndex.decode(blob, 100, 270_001) is None  # segment size changed
    assert SegmentIndex.decode(blob, 101, 270_000) is None  # another segment
    corrupt = bytearray(blob)
    corrupt[40] ^= 1
    assert SegmentIndex.decode(bytes(corrupt), 100, 270_000) is None
    assert SegmentIndex.decode(blob[:-5], 100, 270_000) is None
    assert SegmentIndex.decode(b"", 100, 0) is None


def test_million_entries_stay_compact() -> None:
    index = SegmentIndex(0, 1)
    for i in range(1_000_000):
        index.add(i, i, i * 100, 100, i)
    assert len(index) == 1_000_000
    assert index.lookup(765_432) == (765_432, 76_543_200)
    # Scanning starts at the batch stamped 500_000 itself: every batch before it is older.
    assert index.lookup_timestamp(500_000) == (500_000, 50_000_000)
