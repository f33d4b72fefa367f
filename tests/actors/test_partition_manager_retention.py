"""The partition manager's retention pass (`apply_retention`, run on the disk writer): every open
log loses its expired closed segments; a log closed (dropped) since the pass was scheduled is
skipped, not touched. The compaction pass (`compact_logs`, the cleaner thread) cleans compacted
logs below their high watermark, within a byte budget per pass, resuming after the last log
cleaned."""

from __future__ import annotations

from pathlib import Path

from redshank.actors.partition_manager import (
    CompactCursor,
    apply_retention,
    compact_logs,
    log_append_time,
    log_config,
)
from redshank.protocol.record_batch import iter_batches
from redshank.protocol.records import Record, build_batch, iter_records
from redshank.storage import Log


def _filled(directory: Path) -> Log:
    log = Log.open(str(directory), log_config((("segment.bytes", "4096"),
                                               ("retention.bytes", "8192"))))
    for i in range(40):
        log.append(bytearray(build_batch([Record(0, 1000 + i, None, b"v" * 1000)])), 0)
        log.flush()
    return log


def test_retention_pass_trims_open_logs_and_skips_closed_ones(tmp_path: Path) -> None:
    live, dropped = _filled(tmp_path / "live"), _filled(tmp_path / "dropped")
    dropped_segments = dropped.segments()
    dropped.close()
    removed = apply_retention([live, dropped])
    assert removed > 0 and live.start_offset > 0
    kept = sum(size for _base, _term, size in live.segments())
    assert kept >= 8192
    assert Log.open(str(tmp_path / "dropped")).segments()[0][0] == dropped_segments[0][0]
    live.close()


def test_config_mapping() -> None:
    config = log_config((("segment.bytes", "4096"), ("retention.ms", "-1"),
                         ("segment.ms", "60000")))
    assert (config.segment_bytes, config.retention_ms, config.segment_ms) == (4096, None, 60000)
    assert log_append_time((("message.timestamp.type", "LogAppendTime"),))
    assert not log_append_time(())


def test_cleanup_policy_mapping() -> None:
    compact = log_config((("cleanup.policy", "compact"), ("retention.ms", "1000"),
                          ("delete.retention.ms", "5"), ("min.compaction.lag.ms", "7")))
    # A compact-only topic keeps every key's latest record: no size or time retention.
    assert (compact.compact, compact.retention_ms) == (True, None)
    assert (compact.delete_retention_ms, compact.min_compaction_lag_ms) == (5, 7)
    both = log_config((("cleanup.policy", "compact,delete"), ("retention.ms", "1000")))
    assert (both.compact, both.retention_ms, both.delete_retention_ms) == (True, 1000, 86400000)
    assert not log_config(()).compact


def _keyed(directory: Path) -> Log:
    """Three one-record segments of key k, then an active one: two cleanable records."""
    log = Log.open(str(directory), log_config((("cleanup.policy", "compact"),
                                               ("segment.bytes", "100"))))
    for i in range(4):
        log.append(bytearray(build_batch([Record(0, 1000 + i, b"k", b"v%d" % i)])), 0)
        log.flush()
    return log


def _values(log: Log) -> list[bytes | None]:
    data = log.read(0, 1 << 20)
    return [r.value for pos, _h in iter_batches(data) for r in iter_records(data, pos)]


def test_compaction_stays_below_the_high_watermark_and_the_budget(tmp_path: Path) -> None:
    a, b = _keyed(tmp_path / "a"), _keyed(tmp_path / "b")
    cursor = CompactCursor()
    # No high watermark known for a log: not compacted.
    assert compact_logs([a, b], {}, cursor) == 0
    assert _values(a) == _values(b) == [b"v0", b"v1", b"v2", b"v3"]
    # Committed below offset 2: only the first two segments are cleanable.
    compact_logs([a, b], {a.dir: 2, b.dir: 2}, cursor, budget=1)
    assert _values(a) == [b"v1", b"v2", b"v3"] and _values(b) == [b"v0", b"v1", b"v2", b"v3"]
    # The budget ran out after `a`: the next pass starts with `b`.
    compact_logs([a, b], {a.dir: 4, b.dir: 4}, cursor, budget=1)
    assert _values(b) == [b"v2", b"v3"] and _values(a) == [b"v1", b"v2", b"v3"]
    compact_logs([a, b], {a.dir: 4, b.dir: 4}, cursor)
    assert _values(a) == _values(b) == [b"v2", b"v3"]
    a.close()
    b.close()
