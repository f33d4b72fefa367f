"""A partition log and a durable offset store as a library: the broker's storage, small API.

Concern: records in, offsets out, with the broker's durability rules (`append` is readable at once
and durable once `flush` returns: write + fdatasync; a crash keeps every flushed record and may drop
unflushed ones; opening recovers a torn tail). Batches are Kafka wire-format record batches
(`redshank.storage.Log` underneath); one open `Log` per directory (a lock file says so). Must not
know about actors or cores.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterable
from types import TracebackType
from typing import overload

from redshank.protocol.record_batch import iter_batches
from redshank.protocol.records import BatchBuilder, Record, iter_records
from redshank.storage import KvStore, LogConfig
from redshank.storage import Log as _StorageLog

from ._errors import LogBusyError

__all__ = ["Log", "OffsetStore", "Record"]

_LOCK = ".lock"
RecordIn = bytes | tuple[bytes | None, bytes | None]


def _lock(directory: str) -> int:
    os.makedirs(directory, exist_ok=True)
    fd = os.open(os.path.join(directory, _LOCK), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LogBusyError(f"{directory} is open elsewhere") from None
    return fd


class Log:
    """An append-only log of records in one directory. Use `Log.open(dir)`.

    Thread-safe: appends, flushes and reads may come from different threads. `flush` and `read`
    may block on the disk: on a core's event loop, call them from a `ThreadActor`."""

    def __init__(self, inner: _StorageLog, lock_fd: int) -> None:
        self._log = inner
        self._lock_fd = lock_fd
        self._append_lock = threading.Lock()

    @classmethod
    def open(cls, directory: str | os.PathLike[str], *, segment_bytes: int = 128 << 20) -> Log:
        """Open (creating if needed) the log in `directory`, recovering what a crash left.
        `LogBusyError` if it is open elsewhere."""
        path = os.fspath(directory)
        fd = _lock(path)
        try:
            return cls(_StorageLog.open(path, LogConfig(segment_bytes=segment_bytes)), fd)
        except BaseException:
            os.close(fd)
            raise

    def append(
        self,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Iterable[tuple[str, bytes | None]] = (),
        timestamp_ms: int | None = None,
    ) -> int:
        """Append one record; returns its offset. Readable at once, durable after `flush()`."""
        builder = BatchBuilder()
        ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
        builder.append(value, key=key, headers=headers, timestamp=ts)
        return self._append(builder)

    def append_batch(self, records: Iterable[RecordIn], *, timestamp_ms: int | None = None
                     ) -> int:
        """Append values (or `(key, value)` pairs) as one batch, offsets consecutive; returns the
        last one's offset. All or nothing. ValueError if `records` is empty."""
        builder = BatchBuilder()
        ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
        for record in records:
            key, value = (None, record) if isinstance(record, bytes | bytearray) else record
            builder.append(value, key=key, timestamp=ts)
        if not len(builder):
            raise ValueError("append_batch needs at least one record")
        return self._append(builder)

    def _append(self, builder: BatchBuilder) -> int:
        buf = bytearray(builder.build())
        with self._append_lock:
            return int(self._log.append(buf, 0, crc_checked=True).last_offset)

    def flush(self) -> int:
        """Write and fdatasync everything appended; returns the last durable offset (-1 when the
        log is empty). Raises `redshank.storage.StorageError` on a disk error: after a failed
        fdatasync the log refuses appends (`LogFailedError`); close and reopen it."""
        return int(self._log.flush())

    def read(self, offset: int, *, max_records: int = 1000, max_bytes: int = 1 << 20
             ) -> list[Record]:
        """Records from `offset` on (at most `max_records`, about `max_bytes`; at least one if
        any exists); [] at the end. Flushed or not, every appended record is readable.
        `redshank.storage.OffsetOutOfRangeError` below `start_offset`."""
        if offset >= self.end_offset or max_records <= 0:
            return []
        data = self._log.read(offset, max_bytes)
        out: list[Record] = []
        for pos, _header in iter_batches(data, verify_crc=False):
            for record in iter_records(data, pos, verify_crc=False):
                if record.offset >= offset:
                    out.append(record)
                    if len(out) >= max_records:
                        return out
        return out

    @property
    def start_offset(self) -> int:
        """The first offset held."""
        return int(self._log.start_offset)

    @property
    def end_offset(self) -> int:
        """The offset the next appended record gets."""
        return int(self._log.dirty_offset) + 1

    @property
    def flushed_offset(self) -> int:
        """The last durable offset (`start_offset - 1` when nothing is)."""
        return int(self._log.flushed_offset)

    def close(self) -> None:
        """Flush, seal and release the directory. Idempotent."""
        if self._lock_fd < 0:
            return
        try:
            self._log.close()
        finally:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> Log:
        return self

    def __exit__(self, _t: type[BaseException] | None, _e: BaseException | None,
                 _tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Log {self._log.dir} start={self.start_offset} end={self.end_offset}>"


class OffsetStore:
    """Named offsets (a consumer's position in a `Log`), durable when `commit` returns.
    Use `OffsetStore.open(dir)`; thread-safe."""

    def __init__(self, inner: KvStore, lock_fd: int) -> None:
        self._kv = inner
        self._lock_fd = lock_fd
        self._commit_lock = threading.Lock()

    @classmethod
    def open(cls, directory: str | os.PathLike[str]) -> OffsetStore:
        path = os.fspath(directory)
        fd = _lock(path)
        try:
            return cls(KvStore.open(path), fd)
        except BaseException:
            os.close(fd)
            raise

    @overload
    def get(self, name: str) -> int | None: ...

    @overload
    def get(self, name: str, default: int) -> int: ...

    def get(self, name: str, default: int | None = None) -> int | None:
        """The offset last committed under `name`, else `default`."""
        raw = self._kv.get(name.encode())
        return default if raw is None else int.from_bytes(raw, "big", signed=True)

    def commit(self, name: str, offset: int) -> None:
        """Store `offset` under `name` and fdatasync before returning."""
        with self._commit_lock:
            self._kv.put(name.encode(), offset.to_bytes(8, "big", signed=True))
            self._kv.flush()

    def close(self) -> None:
        if self._lock_fd < 0:
            return
        try:
            self._kv.close()
        finally:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> OffsetStore:
        return self

    def __exit__(self, _t: type[BaseException] | None, _e: BaseException | None,
                 _tb: TracebackType | None) -> None:
        self.close()
