"""Retention policy: which closed segments have expired, by size and by time.

Pure: it sees (size, max timestamp, next offset) per closed segment, oldest first, and returns
the new log start offset (or None). Segment granularity, never the active segment, as in Kafka:
the oldest segment goes while the log would still hold at least `retention_bytes` without it,
or while its newest timestamp is older than `now - retention_ms`. The log applies the result
with `truncate_prefix`. Knows nothing of files.
"""

from __future__ import annotations

from collections.abc import Sequence

from redshank.protocol.fast_dataclass import dataclass

__all__ = ["SegmentInfo", "retention_start"]


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    size: int
    max_timestamp: int  # -1 when no batch carried a timestamp: never expires by time
    next_offset: int


def retention_start(
    closed: Sequence[SegmentInfo],
    total_bytes: int,
    now_ms: int,
    retention_bytes: int | None,
    retention_ms: int | None,
) -> int | None:
    """The offset the log should start at after retention, None when nothing expires.
    `closed` excludes the active segment; `total_bytes` includes it."""
    start = None
    for seg in closed:
        too_big = retention_bytes is not None and total_bytes - seg.size >= retention_bytes
        too_old = (retention_ms is not None and seg.max_timestamp >= 0
                   and seg.max_timestamp < now_ms - retention_ms)
        if not (too_big or too_old):
            break
        total_bytes -= seg.size
        start = seg.next_offset
    return start
