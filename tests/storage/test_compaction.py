"""Log compaction: the latest record per key kept in closed segments, tombstones dropped after
`delete_retention_ms`, offsets and batch spans preserved, the active segment untouched, and a
crash at any step of a segment swap recovering to the old or the new contents."""

from __future__ import annotations

import pytest

from redshank.protocol.record_batch import Compression, TimestampType, iter_batches, parse_header
from redshank.protocol.records import (
    BatchBuilder,
    ControlType,
    Record,
    build_control_batch,
    iter_records,
)
from redshank.storage import Log, LogConfig, PowerLossFiles, StorageIOError
from redshank.storage.compaction import clean_batch, latest_offsets

DIR = "/data/log"
T0 = 1_700_000_000_000
DAY = 86_400_000
# One batch of a few records per segment (a batch over the room left rolls the segment).
CFG = LogConfig(segment_bytes=100, index_interval=64, preallocate_step=4096, compact=True)


def _batch(pairs: list[tuple[bytes | None, bytes | None]], ts: int = T0, *,
           compression: Compression = Compression.NONE,
           timestamp_type: TimestampType = TimestampType.CREATE_TIME) -> bytearray:
    b = BatchBuilder(compression=compression, timestamp_type=timestamp_type)
    for i, (k, v) in enumerate(pairs):
        b.append(v, key=k, timestamp=ts + i)
    return bytearray(b.build())


def _records(log: Log) -> list[Record]:
    out: list[Record] = []
    data = log.read(log.start_offset, 1 << 30)
    for pos, _h in iter_batches(data):
        out.extend(iter_records(data, pos))
    return out


def _spans(log: Log) -> list[tuple[int, int]]:
    data = log.read(log.start_offset, 1 << 30)
    return [(h.base_offset, h.last_offset) for _p, h in iter_batches(data)]


def _fill(files: PowerLossFiles, rounds: int = 4, config: LogConfig = CFG) -> Log:
    """`rounds` batches each updating keys a, b, c (values r<round>), then one more batch that
    stays in the active segment."""
    files.makedirs(DIR)
    log = Log.open(DIR, config, files=files)
    for r in range(rounds):
        log.append(_batch([(k, f"r{r}".encode()) for k in (b"a", b"b", b"c")], T0 + r), 1)
        log.flush()
    log.append(_batch([(b"a", b"active")], T0 + 100), 1)
    log.flush()
    return log


def _latest(records: list[Record]) -> dict[bytes | None, tuple[int, bytes | None]]:
    return {r.key: (r.offset, r.value) for r in records}


def test_keeps_the_latest_value_per_key_and_every_offset() -> None:
    log = _fill(PowerLossFiles())
    before = _records(log)
    spans = _spans(log)
    assert len(log.segments()) == 5
    result = log.compact(T0 + 1000)
    assert result.rewritten == 3 and result.bytes_after < result.bytes_before
    after = _records(log)
    # Closed segments hold only round 3 (the latest); the active segment still holds "a".
    assert [(r.offset, r.key, r.value) for r in after] == [
        (9, b"a", b"r3"), (10, b"b", b"r3"), (11, b"c", b"r3"), (12, b"a", b"active")]
    assert _latest(after) == _latest(before)
    # Every batch still spans its offsets: emptied batches stay as headers.
    assert _spans(log) == spans
    assert log.compact(T0 + 1000).rewritten == 0  # nothing new: a no-op
    log.close()


def test_survives_reopen_with_and_without_its_index() -> None:
    files = PowerLossFiles()
    log = _fill(files)
    log.compact(T0 + 1000)
    expected = [(r.offset, r.key, r.value) for r in _records(log)]
    log.close()
    reopened = Log.open(DIR, CFG, files=files)
    assert [(r.offset, r.key, r.value) for r in _records(reopened)] == expected
    reopened.close()
    for name in files.listdir(DIR):
        if name.endswith(".index"):
            files.remove(f"{DIR}/{name}")
    rescanned = Log.open(DIR, CFG, files=files)
    assert [(r.offset, r.key, r.value) for r in _records(rescanned)] == expected
    assert rescanned.dirty_offset == 12
    rescanned.close()


def test_tombstones_go_after_delete_retention() -> None:
    files = PowerLossFiles()
    files.makedirs(DIR)
    log = Log.open(DIR, CFG, files=files)
    log.append(_batch([(b"a", b"1"), (b"b", b"1")], T0), 1)
    log.flush()
    log.append(_batch([(b"a", None)], T0 + 10), 1)  # the tombstone of "a"
    log.flush()
    log.append(_batch([(b"c", b"1")], T0 + 20), 1)  # active
    log.flush()
    log.compact(T0 + DAY)  # not yet older than delete.retention.ms
    assert [(r.key, r.value) for r in _records(log)] == [
        (b"b", b"1"), (b"a", None), (b"c", b"1")]
    assert log.compact(T0 + DAY).rewritten == 0
    assert log.compact(T0 + 10 + DAY + 1).rewritten == 1
    assert [(r.key, r.value) for r in _records(log)] == [(b"b", b"1"), (b"c", b"1")]
    log.close()


def test_min_compaction_lag_and_high_watermark_hold_segments_back() -> None:
    lagging = LogConfig(segment_bytes=100, index_interval=64, preallocate_step=4096,
                        compact=True, min_compaction_lag_ms=50)
    log = _fill(PowerLossFiles(), config=lagging)
    # Rounds 0..3 have timestamps T0..T0+5: at T0+53 only rounds 0-1 are older than the lag.
    log.compact(T0 + 53)
    assert [r.value for r in _records(log) if r.key == b"a"] == [b"r1", b"r2", b"r3", b"active"]
    # The high watermark stops it too: nothing past offset 5 (round 1's end).
    log.config = CFG
    log._cleaned = None
    log.compact(T0 + 1000, max_offset=5)
    assert [r.value for r in _records(log) if r.key == b"a"] == [b"r1", b"r2", b"r3", b"active"]
    log.close()


def test_not_compacted_unless_configured() -> None:
    log = _fill(PowerLossFiles(), config=LogConfig(segment_bytes=100, preallocate_step=4096))
    assert log.compact(T0 + 1000).rewritten == 0
    assert len(_records(log)) == 13
    log.close()


def test_clean_batch_drops_keyless_keeps_control_and_codec() -> None:
    mixed = bytes(_batch([(None, b"x"), (b"k", b"old"), (b"k", b"new")],
                         compression=Compression.LZ4))
    latest = latest_offsets([mixed])
    assert latest == {b"k": 2}
    out, oldest = clean_batch(mixed, latest, 0)
    h = parse_header(out)
    assert (h.base_offset, h.last_offset_delta, h.record_count) == (0, 2, 1)
    assert h.compression == Compression.LZ4 and oldest == (1 << 63) - 1
    assert [(r.offset, r.key, r.value) for r in iter_records(out)] == [(2, b"k", b"new")]
    control = build_control_batch(ControlType.COMMIT, producer_id=1, producer_epoch=0,
                                  coordinator_epoch=0, timestamp=T0)
    assert clean_batch(control, {}, 0)[0] is control
    appended = bytes(_batch([(b"k", b"v"), (b"j", b"w")], T0,
                            timestamp_type=TimestampType.LOG_APPEND_TIME))
    out, _ = clean_batch(appended, {b"k": 5, b"j": 1}, 0)
    h = parse_header(out)
    assert h.timestamp_type == TimestampType.LOG_APPEND_TIME and h.record_count == 1
    assert [r.timestamp for r in iter_records(out)] == [parse_header(appended).max_timestamp]


def test_emptied_batch_is_a_header_spanning_the_same_offsets() -> None:
    batch = bytes(_batch([(b"k", b"1"), (b"k", b"2")]))
    out, _ = clean_batch(batch, {b"k": 99}, 0)
    h = parse_header(out)
    assert (h.record_count, h.last_offset_delta, len(out)) == (0, 1, 61)
    assert list(iter_records(out)) == []


class _CrashAt(PowerLossFiles):
    """Fails the `at`-th directory-changing operation (remove, rename, fsync_dir) once armed."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at
        self.armed = False

    def _step(self, op: str, path: str) -> None:
        if self.armed:
            self.at -= 1
            if self.at == 0:
                raise StorageIOError(f"{op} {path}: power cut (test)", 5)

    def remove(self, path: str) -> None:
        self._step("remove", path)
        super().remove(path)

    def rename(self, src: str, dst: str) -> None:
        self._step("rename", src)
        super().rename(src, dst)

    def fsync_dir(self, path: str) -> None:
        self._step("fsync_dir", path)
        super().fsync_dir(path)


@pytest.mark.parametrize("at", range(1, 16))  # 3 segment swaps of 5 steps
def test_a_crash_during_the_swap_recovers_old_or_new(at: int) -> None:
    files = _CrashAt(at)
    log = _fill(files)
    before = [(r.offset, r.key, r.value) for r in _records(log)]
    files.armed = True
    with pytest.raises(StorageIOError):
        log.compact(T0 + 1000)
    after_cut = files.power_loss()
    reopened = Log.open(DIR, CFG, files=after_cut)
    got = [(r.offset, r.key, r.value) for r in _records(reopened)]
    # Each segment holds its old or its new contents: the latest value per key and every
    # offset are what they were, whichever it is.
    assert _latest([Record(o, 0, k, v) for o, k, v in got]) == \
        _latest([Record(o, 0, k, v) for o, k, v in before])
    assert set(got) <= set(before)
    assert not [n for n in after_cut.listdir(DIR) if n.endswith(".tmp")]
    reopened.compact(T0 + 1000)
    assert [(r.offset, r.key, r.value) for r in _records(reopened)] == [
        (9, b"a", b"r3"), (10, b"b", b"r3"), (11, b"c", b"r3"), (12, b"a", b"active")]
    reopened.close()


class _DeleteWhileCleaning(PowerLossFiles):
    """Runs `during` when compaction creates its first `*.clean.tmp` file."""

    def __init__(self) -> None:
        super().__init__()
        self.during: list[object] = []

    def open(self, path: str, *, create: bool = False):  # type: ignore[no-untyped-def]
        if create and path.endswith(".clean.tmp") and self.during:
            self.during.pop()()  # type: ignore[operator]
        return super().open(path, create=create)


def test_a_segment_deleted_during_its_cleaning_is_not_swapped_back() -> None:
    files = _DeleteWhileCleaning()
    log = _fill(files)
    files.during.append(lambda: log.truncate_prefix(6))  # retention drops segments 0 and 3
    log.compact(T0 + 1000)
    assert log.start_offset == 6
    assert [s[0] for s in log.segments()] == [6, 9, 12]
    assert [(r.offset, r.key, r.value) for r in _records(log)] == [
        (9, b"a", b"r3"), (10, b"b", b"r3"), (11, b"c", b"r3"), (12, b"a", b"active")]
    assert not [n for n in files.listdir(DIR) if n.endswith(".tmp")]
    assert not files.exists(f"{DIR}/{0:020d}-1.log")
    log.close()


def test_compaction_alongside_appends_and_flushes(tmp_path: object) -> None:
    """A cleaner thread compacting while the writer appends, rolls and flushes: every flush
    goes through and the end state keeps the latest value of every key."""
    import threading

    from redshank.storage import OsFiles

    directory = f"{tmp_path}/log"
    log = Log.open(directory, CFG, files=OsFiles())
    stop = threading.Event()
    passes = [0]

    def clean() -> None:
        while not stop.is_set():
            log.compact(T0 + 10_000)
            passes[0] += 1

    cleaner = threading.Thread(target=clean)
    cleaner.start()
    try:
        for i in range(60):
            log.append(_batch([(b"k%d" % (i % 7), b"%d" % i)], T0 + i), 1)
            log.flush()
    finally:
        stop.set()
        cleaner.join(30)
    assert not cleaner.is_alive() and passes[0] > 0
    log.compact(T0 + 10_000)
    latest = _latest(_records(log))
    assert {k: v for k, (_o, v) in latest.items()} == {
        b"k%d" % k: b"%d" % max(i for i in range(60) if i % 7 == k) for k in range(7)}
    assert len(_records(log)) <= 7 + 1
    log.close()
    reopened = Log.open(directory, CFG, files=OsFiles())
    assert _latest(_records(reopened)) == latest
    reopened.close()
