"""The log's configuration and the result of an append: plain values, no behaviour."""

from __future__ import annotations

from redshank.protocol.fast_dataclass import dataclass
from redshank.storage.segment import DEFAULT_PREALLOCATE_STEP
from redshank.storage.segment_index import DEFAULT_INDEX_INTERVAL
from redshank.storage.types import Offset

__all__ = ["AppendResult", "LogConfig"]


@dataclass(frozen=True, slots=True)
class LogConfig:
    segment_bytes: int = 128 * 1024 * 1024
    # Roll a segment this long after its first write (None: never by time).
    segment_ms: int | None = None
    # Retention, at segment granularity, never touching the active segment (None: keep all).
    retention_bytes: int | None = None
    retention_ms: int | None = None
    # Compaction (cleanup.policy=compact): the latest record per key kept in closed segments;
    # tombstones dropped once older than `delete_retention_ms`; segments whose newest record is
    # younger than `min_compaction_lag_ms` wait (Kafka's defaults: one day, 0).
    compact: bool = False
    delete_retention_ms: int = 86_400_000
    min_compaction_lag_ms: int = 0
    index_interval: int = DEFAULT_INDEX_INTERVAL
    preallocate_step: int = DEFAULT_PREALLOCATE_STEP

    def __post_init__(self) -> None:
        if min(self.segment_bytes, self.index_interval, self.preallocate_step) <= 0:
            raise ValueError(f"sizes in {self} must be positive")


@dataclass(frozen=True, slots=True)
class AppendResult:
    base_offset: Offset
    last_offset: Offset
    batches: int
    bytes: int
