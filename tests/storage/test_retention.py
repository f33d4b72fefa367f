"""The retention policy as a table: by size, by time, both, and what never expires."""

from __future__ import annotations

import pytest

from redshank.storage.retention import SegmentInfo, retention_start

# Three closed segments of 100 bytes, newest timestamps 10, 20, 30; active segment of 50 bytes.
CLOSED = [SegmentInfo(100, 10, 5), SegmentInfo(100, 20, 9), SegmentInfo(100, 30, 14)]
TOTAL = 350


@pytest.mark.parametrize(
    ("retention_bytes", "retention_ms", "now_ms", "start"),
    [
        (None, None, 1000, None),  # no policy: keep everything
        (250, None, 0, 5),  # 250 left after dropping the first, >= 250: drop it only
        (100, None, 0, 9),  # the third would leave 50 < 100: it stays
        (10, None, 0, 14),  # never the active segment
        (None, 15, 30, 5),  # 10 < 30-15: first goes; 20 is not < 15
        (None, 15, 1000, 14),  # all closed segments are old
        (None, 0, 10, None),  # max timestamp 10 is not older than now-0=10
        (300, 15, 40, 9),  # time drops two, size alone would drop one
    ],
)
def test_retention_table(retention_bytes: int | None, retention_ms: int | None, now_ms: int,
                         start: int | None) -> None:
    assert retention_start(CLOSED, TOTAL, now_ms, retention_bytes, retention_ms) == start


def test_segments_without_timestamps_never_expire_by_time() -> None:
    assert retention_start([SegmentInfo(100, -1, 5)], 150, 10**15, None, 1) is None
