"""The storage layer's exceptions: I/O failures and misuse, nothing about Raft or Kafka.

`StorageError` is what the broker catches around the log: an I/O failure (disk full, EIO on a
write or an fdatasync) or a log that refuses work after such a failure. Reading below the log
start is `OffsetOutOfRangeError` so the caller can map it to Kafka's OFFSET_OUT_OF_RANGE.
"""

from __future__ import annotations

__all__ = ["LogFailedError", "OffsetOutOfRangeError", "StorageError", "StorageIOError"]


class StorageError(Exception):
    """Base of every exception the storage layer raises on purpose."""


class StorageIOError(StorageError):
    """An operating-system call failed (ENOSPC, EIO...); `errno` says which."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class LogFailedError(StorageError):
    """An fdatasync failed earlier: the page cache can no longer be trusted, so the log refuses
    further appends and flushes until it is closed and reopened (recovery reads what the disk
    really holds). The fsyncgate lesson: retrying fsync after EIO may report a false success."""


class OffsetOutOfRangeError(StorageError):
    """The offset lies below the log start (it was truncated away) or is negative."""
