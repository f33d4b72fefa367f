"""The per-core key-value store: small keys -> bytes, for Raft hard state and other metadata.

Layout in its directory:
    wal-{gen:020d}   CRC'd records: put/delete with a sequence number, appended and fdatasync'ed
    snapshot         every key at some sequence number, naming the first WAL generation that
                     follows it; replaced atomically (tmp + fdatasync + rename + dir fsync)

Threads, as for the log: `put`/`delete`/`get` on the loop thread touch memory only (the new
state is visible at once, durable only after a flush); `flush` on the writer thread writes the
queued records and fdatasyncs, and when the WAL has grown past `snapshot_bytes` writes a
snapshot and starts a new WAL generation. `flush` returns the last durable sequence number, so
a `FlushCoordinator` can resolve waiters by sequence ("term and vote durable before any message
that depends on them leaves"). Recovery: load the snapshot, replay WALs from its generation,
stop at the first bad record and cut it off; older WALs are deleted. Knows nothing of Raft.
"""

from __future__ import annotations

import functools
import os
import struct
import threading

import crc32c as _crc32c

from redshank.storage.errors import LogFailedError, StorageError
from redshank.storage.file_io import FileHandle, FileLayer, FlushStep, OsFiles

__all__ = ["KvStore"]

_REC_HEAD = struct.Struct(">II")  # payload length, crc32c(payload)
_REC = struct.Struct(">qBHI")  # seq, op, key length, value length
_PUT, _DELETE = 1, 2
_SNAP_HEAD = struct.Struct(">4sqqI")  # magic, next WAL generation, seq, count
_SNAP_MAGIC = b"RSKV"
_MAX_KEY = 0xFFFF
_MAX_VALUE = 64 * 1024 * 1024
_SNAPSHOT = "snapshot"


def _wal_name(gen: int) -> str:
    return f"wal-{gen:020d}"


def _record(seq: int, op: int, key: bytes, value: bytes) -> bytes:
    payload = _REC.pack(seq, op, len(key), len(value)) + key + value
    return _REC_HEAD.pack(len(payload), _crc32c.crc32c(payload)) + payload


def _parse_records(blob: bytes) -> tuple[list[tuple[int, int, bytes, bytes]], int]:
    """Records in `blob` up to the first bad one, and the position where the good ones end."""
    out: list[tuple[int, int, bytes, bytes]] = []
    pos = 0
    while pos + _REC_HEAD.size <= len(blob):
        length, crc = _REC_HEAD.unpack_from(blob, pos)
        start = pos + _REC_HEAD.size
        payload = blob[start : start + length]
        if length < _REC.size or len(payload) != length or _crc32c.crc32c(payload) != crc:
            break
        seq, op, klen, vlen = _REC.unpack_from(payload)
        if _REC.size + klen + vlen != length or op not in (_PUT, _DELETE):
            break
        key = payload[_REC.size : _REC.size + klen]
        out.append((seq, op, key, payload[_REC.size + klen :]))
        pos = start + length
    return out, pos


class KvStore:
    def __init__(self, files: FileLayer, directory: str, snapshot_bytes: int) -> None:
        self._files = files
        self.dir = directory
        self.snapshot_bytes = snapshot_bytes
        self._data: dict[bytes, bytes] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._pending: list[bytes] = []
        self._seq = 0  # last sequence number assigned
        self._flushed = 0
        self._gen = 0
        self._wal: FileHandle | None = None
        self._wal_pos = 0
        self._failed: BaseException | None = None

    @classmethod
    def open(cls, directory: str, *, files: FileLayer | None = None,
             snapshot_bytes: int = 4 * 1024 * 1024) -> KvStore:
        store = cls(files or OsFiles(), directory, snapshot_bytes)
        store._recover()
        return store

    # -- memory side (loop thread) -------------------------------------------------------------
    def get(self, key: bytes) -> bytes | None:
        with self._lock:
            return self._data.get(key)

    def items(self, prefix: bytes = b"") -> list[tuple[bytes, bytes]]:
        with self._lock:
            return sorted((k, v) for k, v in self._data.items() if k.startswith(prefix))

    def put(self, key: bytes, value: bytes) -> int:
        """Set `key`; returns the sequence number to wait for (durable after a flush)."""
        if len(key) > _MAX_KEY or len(value) > _MAX_VALUE:
            raise ValueError(f"kvstore key or value too large ({len(key)}, {len(value)})")
        return self._queue(_PUT, bytes(key), bytes(value))

    def delete(self, key: bytes) -> int:
        return self._queue(_DELETE, bytes(key), b"")

    def _queue(self, op: int, key: bytes, value: bytes) -> int:
        with self._lock:
            if self._failed is not None:
                raise LogFailedError(f"kvstore {self.dir} failed earlier: {self._failed}")
            self._seq += 1
            self._pending.append(_record(self._seq, op, key, value))
            if op == _PUT:
                self._data[key] = value
            else:
                self._data.pop(key, None)
            return self._seq

    @property
    def failed(self) -> bool:
        """An fdatasync failed: the store must be closed and opened again (as `Log.failed`)."""
        return self._failed is not None

    @property
    def dirty_offset(self) -> int:
        return self._seq

    @property
    def flushed_offset(self) -> int:
        return self._flushed

    # -- durability (writer thread) ------------------------------------------------------------
    def flush(self) -> int:
        return self.begin_flush().sync_and_end()

    # Which group of a `FlushCoordinator` round it is synced in: before the logs (stage 1), so
    # a partition's Raft entries kept here are durable before the batches after them.
    flush_stage = 0

    def begin_flush(self) -> FlushStep:
        """As `Log.begin_flush`: write the queued records, hold the flush lock until `end`."""
        self._flush_lock.acquire()
        try:
            with self._lock:
                if self._failed is not None:
                    raise LogFailedError(f"kvstore {self.dir} failed earlier: {self._failed}")
                records, self._pending = self._pending, []
                upto = self._seq
                snap = None
                if self._wal_pos + sum(map(len, records)) >= self.snapshot_bytes:
                    snap = dict(self._data)
            if records:
                assert self._wal is not None
                try:
                    self._wal.pwrite(records, self._wal_pos)
                except StorageError:
                    with self._lock:  # keep them queued, in order, for the next flush
                        self._pending = records + self._pending
                    raise
                self._wal_pos += sum(map(len, records))
        except BaseException:
            self._flush_lock.release()
            raise
        return FlushStep(self._wal if records else None,
                         functools.partial(self._end_flush, upto, snap))

    def _end_flush(self, upto: int, snap: dict[bytes, bytes] | None,
                   error: StorageError | None) -> int:
        try:
            if error is not None:
                self._failed = error
                raise error
            self._flushed = upto
            if snap is not None:
                self._snapshot(snap, upto)
            return self._flushed
        finally:
            self._flush_lock.release()

    def _snapshot(self, data: dict[bytes, bytes], seq: int) -> None:
        """Start WAL gen+1, then write a snapshot of `data` (state at `seq`, which covers all of
        WAL gen) naming gen+1, then delete WAL gen. A crash at any step recovers the same."""
        old_gen, old_wal = self._gen, self._wal
        new_wal = self._files.open(os.path.join(self.dir, _wal_name(old_gen + 1)), create=True)
        new_wal.truncate(0)
        self._files.fsync_dir(self.dir)
        parts = [_SNAP_HEAD.pack(_SNAP_MAGIC, old_gen + 1, seq, len(data))]
        for key, value in sorted(data.items()):
            parts.append(struct.pack(">HI", len(key), len(value)) + key + value)
        body = b"".join(parts)
        tmp = os.path.join(self.dir, _SNAPSHOT + ".tmp")
        handle = self._files.open(tmp, create=True)
        try:
            handle.truncate(0)
            handle.pwrite([body, struct.pack(">I", _crc32c.crc32c(body))], 0)
            handle.fdatasync()
        finally:
            handle.close()
        self._files.rename(tmp, os.path.join(self.dir, _SNAPSHOT))
        self._files.fsync_dir(self.dir)
        self._gen, self._wal, self._wal_pos = old_gen + 1, new_wal, 0
        if old_wal is not None:
            old_wal.close()
        self._files.remove(os.path.join(self.dir, _wal_name(old_gen)))
        self._files.fsync_dir(self.dir)

    def close(self) -> None:
        """Flush what is pending and close; the files are closed even if that flush fails
        (the error is raised after)."""
        try:
            if self._failed is None:
                self.flush()
        finally:
            if self._wal is not None:
                self._wal.close()
                self._wal = None

    # -- recovery ------------------------------------------------------------------------------
    def _recover(self) -> None:
        files, d = self._files, self.dir
        files.makedirs(d)
        gen, seq = self._load_snapshot()
        gens = sorted(int(n[4:]) for n in files.listdir(d)
                      if n.startswith("wal-") and n[4:].isdigit())
        for g in gens:
            if g < gen:
                files.remove(os.path.join(d, _wal_name(g)))
        live = [g for g in gens if g >= gen] or [gen]
        for g in live:
            wal = files.open(os.path.join(d, _wal_name(g)), create=True)
            size = wal.size()
            records, good = _parse_records(wal.pread(size, 0))
            for rseq, op, key, value in records:
                if rseq <= seq:
                    continue
                seq = rseq
                if op == _PUT:
                    self._data[key] = value
                else:
                    self._data.pop(key, None)
            if good != size:
                wal.truncate(good)  # a torn last record: cut it so appends follow good ones
                wal.fdatasync()
            if g != live[-1]:
                wal.close()
            else:
                self._wal, self._wal_pos, self._gen = wal, good, g
        files.fsync_dir(d)
        self._seq = self._flushed = seq

    def _load_snapshot(self) -> tuple[int, int]:
        path = os.path.join(self.dir, _SNAPSHOT)
        if not self._files.exists(path):
            return 0, 0
        handle = self._files.open(path)
        try:
            blob = handle.pread(handle.size(), 0)
        finally:
            handle.close()
        body = blob[:-4]
        if len(blob) < _SNAP_HEAD.size + 4 or struct.unpack(">I", blob[-4:])[0] != (
            _crc32c.crc32c(body)
        ):
            raise StorageError(f"kvstore snapshot {path} is corrupt")
        magic, gen, seq, count = _SNAP_HEAD.unpack_from(body)
        if magic != _SNAP_MAGIC:
            raise StorageError(f"kvstore snapshot {path} has a bad magic")
        pos = _SNAP_HEAD.size
        for _ in range(count):
            klen, vlen = struct.unpack_from(">HI", body, pos)
            pos += 6
            key = body[pos : pos + klen]
            self._data[key] = body[pos + klen : pos + klen + vlen]
            pos += klen + vlen
        return gen, seq
