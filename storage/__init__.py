"""The log engine: segments, indexes, recovery, retention, kvstore. Knows no Raft or Kafka."""

from redshank.storage.batch_cache import BatchCache, CacheStats
from redshank.storage.errors import (
    LogFailedError,
    OffsetOutOfRangeError,
    StorageError,
    StorageIOError,
)
from redshank.storage.file_io import FileHandle, FileLayer, OsFiles
from redshank.storage.flush_coordinator import Flushable, FlushCoordinator, FlushHandle
from redshank.storage.kvstore import KvStore
from redshank.storage.log import AppendResult, CompactResult, Log, LogConfig
from redshank.storage.segment_index import SegmentIndex
from redshank.storage.sim_files import PowerLossFiles
from redshank.storage.types import Offset, Term

__all__ = [
    "AppendResult",
    "BatchCache",
    "CacheStats",
    "CompactResult",
    "FileHandle",
    "FileLayer",
    "FlushCoordinator",
    "FlushHandle",
    "Flushable",
    "KvStore",
    "Log",
    "LogConfig",
    "LogFailedError",
    "Offset",
    "OffsetOutOfRangeError",
    "OsFiles",
    "PowerLossFiles",
    "SegmentIndex",
    "StorageError",
    "StorageIOError",
    "Term",
]
