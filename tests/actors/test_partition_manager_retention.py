"""The partition manager's retention pass (`apply_retention`, run on the disk writer): every open
log loses its expired closed segments; a log closed (dropped) since the pass was scheduled is
skipped, not touched."""

from __future__ import annotations

from pathlib import Path

from redshank.actors.partition_manager import apply_retention, log_append_time, log_config
from redshank.protocol.records import Record, build_batch
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
