"""One segment: a file of record batches starting at a base offset, all of one term, plus its
sparse index. Owns pre-allocation, the write head, recovery of its tail, trimming when sealed.

File names: `{base_offset:020d}-{term}.log` and the same stem with `.index`. A Raft term change
rolls the log to a new segment (as Redpanda does), so every batch's term is its segment's term.

Threads: `write`, `sync`, `seal`, `truncate`, `close` are the writer's; `read_from` and
`locate` may run on any thread (positional reads below a `limit` the caller snapshotted).
Knows nothing of other segments, caches or flush coordination.
"""

from __future__ import annotations

import os
import re
import struct
import time
from collections.abc import Sequence

from redshank.protocol.errors import CorruptBatchError
from redshank.protocol.record_batch import HEADER_SIZE, parse_header
from redshank.storage.batch_scan import BatchScanner
from redshank.storage.errors import StorageError
from redshank.storage.file_io import Buffer, FileHandle, FileLayer
from redshank.storage.segment_index import DEFAULT_INDEX_INTERVAL, SegmentIndex
from redshank.storage.segment_state import state_path

__all__ = [
    "DEFAULT_PREALLOCATE_STEP", "BatchMeta", "Segment", "parse_segment_name", "segment_name",
]

# (base offset, last offset, size in bytes, max timestamp) of one batch to write.
BatchMeta = tuple[int, int, int, int]

DEFAULT_PREALLOCATE_STEP = 16 * 1024 * 1024
_FIRST_STEP = 64 * 1024  # a segment's first pre-allocation; each next one doubles the file
_NAME = re.compile(r"^(\d{20})-(\d+)\.log$")
_BASE_LENGTH = struct.Struct(">qi")  # baseOffset, batchLength
_DELTA = struct.Struct(">i")  # lastOffsetDelta, at byte 23
# Bytes read per syscall when stepping from an index entry to the wanted batch.
_LOCATE_CHUNK = 64 * 1024


def segment_name(base_offset: int, term: int) -> str:
    return f"{base_offset:020d}-{term}.log"


def parse_segment_name(name: str) -> tuple[int, int] | None:
    """(base offset, term) of a segment file name, or None for any other file."""
    m = _NAME.match(name)
    return (int(m.group(1)), int(m.group(2))) if m else None


class Segment:
    __slots__ = (
        "_file", "_files", "allocated", "base_offset", "dir", "first_write_at", "index",
        "preallocate_step", "sealed", "size", "term",
    )

    def __init__(
        self,
        files: FileLayer,
        directory: str,
        file: FileHandle,
        base_offset: int,
        term: int,
        index: SegmentIndex,
        size: int,
        allocated: int,
        preallocate_step: int,
    ) -> None:
        self._files = files
        self._file = file
        self.dir = directory
        self.base_offset = base_offset
        self.term = term
        self.index = index
        # The write head: bytes of whole, valid batches. Everything past it is pre-allocated
        # zeros (or garbage a crash left, which recovery truncated away).
        self.size = size
        self.allocated = allocated
        self.preallocate_step = preallocate_step
        self.sealed = False
        # Monotonic time of the first write since this process opened it (roll by time).
        self.first_write_at: float | None = None

    @property
    def path(self) -> str:
        return os.path.join(self.dir, segment_name(self.base_offset, self.term))

    @property
    def index_path(self) -> str:
        return self.path[: -len(".log")] + ".index"

    @property
    def next_offset(self) -> int:
        return self.index.next_offset

    @property
    def last_offset(self) -> int:
        return self.index.next_offset - 1

    def is_empty(self) -> bool:
        return self.size == 0

    # -- creation and opening (writer thread) ------------------------------------------------
    @classmethod
    def create(
        cls,
        files: FileLayer,
        directory: str,
        base_offset: int,
        term: int,
        *,
        index_interval: int = DEFAULT_INDEX_INTERVAL,
        preallocate_step: int = DEFAULT_PREALLOCATE_STEP,
    ) -> Segment:
        path = os.path.join(directory, segment_name(base_offset, term))
        file = files.open(path, create=True)
        file.truncate(0)
        files.fsync_dir(directory)
        index = SegmentIndex(base_offset, index_interval)
        return cls(files, directory, file, base_offset, term, index, 0, 0, preallocate_step)

    @classmethod
    def open(
        cls,
        files: FileLayer,
        directory: str,
        base_offset: int,
        term: int,
        *,
        recover: bool,
        index_interval: int = DEFAULT_INDEX_INTERVAL,
        preallocate_step: int = DEFAULT_PREALLOCATE_STEP,
    ) -> tuple[Segment, int]:
        """Open an existing segment. Trusts its index when it matches the file exactly (a
        sealed segment) unless `recover`; otherwise scans with CRCs and truncates the file
        after the last valid batch. Returns the segment and the bytes cut off."""
        path = os.path.join(directory, segment_name(base_offset, term))
        file = files.open(path)
        file_size = file.size()
        seg = cls(files, directory, file, base_offset, term, SegmentIndex(base_offset,
                  index_interval), 0, file_size, preallocate_step)
        if not recover:
            index = seg._load_index(file_size)
            if index is not None:
                seg.index, seg.size, seg.sealed = index, file_size, True
                return seg, 0
        scan = BatchScanner(file, 0, file_size, verify_crc=True, expected_offset=base_offset)
        for pos, header in scan:
            seg.index.add(header.base_offset, header.last_offset, pos, header.size,
                          header.max_timestamp)
        seg.size = scan.valid_end
        cut = file_size - scan.valid_end
        if cut:
            # Cut the torn or pre-allocated tail so no stale bytes remain past the write head;
            # synced now so a second crash recovers to the same place (recovery converges).
            file.truncate(seg.size)
            file.fdatasync()
            seg.allocated = seg.size
        files.remove(seg.index_path)
        return seg, cut

    def _load_index(self, file_size: int) -> SegmentIndex | None:
        if not self._files.exists(self.index_path):
            return None
        handle = self._files.open(self.index_path)
        try:
            blob = handle.pread(handle.size(), 0)
        finally:
            handle.close()
        return SegmentIndex.decode(blob, self.base_offset, file_size)

    # -- writing (writer thread) -------------------------------------------------------------
    def write(self, buffers: Sequence[Buffer], metas: Sequence[BatchMeta]) -> None:
        """Append whole batches at the write head (one gather write). On failure nothing moves:
        the write head stays put and a retry overwrites whatever part reached the file."""
        total = sum(m[2] for m in metas)
        self._ensure_allocated(self.size + total)
        self._file.pwrite(buffers, self.size)
        pos = self.size
        for base, last, size, max_ts in metas:
            self.index.add(base, last, pos, size, max_ts)
            pos += size
        self.size = pos
        if self.first_write_at is None:
            self.first_write_at = time.monotonic()

    def _ensure_allocated(self, end: int) -> None:
        # Pre-allocating ahead means a synced append never changes the file size or block map,
        # so fdatasync has no metadata to journal (ext4/XFS), the cheap path. The steps double
        # from `_FIRST_STEP` up to `preallocate_step`: a partition that got one record holds
        # 64 KiB, not a whole step (a fresh node with a few written partitions took 16 MiB
        # each), at the price of about eight more size-changing syncs per segment.
        if end <= self.allocated:
            return
        step = min(self.preallocate_step, max(_FIRST_STEP, self.allocated))
        length = max(step, end - self.allocated)
        self._file.fallocate(self.allocated, length)
        self.allocated += length

    def sync(self) -> None:
        self._file.fdatasync()

    @property
    def file(self) -> FileHandle:
        """The segment's file (what a flush makes durable)."""
        return self._file

    def seal(self) -> None:
        """Make the segment read-only: sync, trim the pre-allocated tail, persist the index."""
        if self.sealed:
            return
        self._file.fdatasync()
        if self.allocated != self.size:
            self._file.truncate(self.size)
            self._file.fdatasync()
            self.allocated = self.size
        tmp = self.index_path + ".tmp"
        handle = self._files.open(tmp, create=True)
        try:
            handle.truncate(0)
            handle.pwrite([self.index.encode(self.size)], 0)
            handle.fdatasync()
        finally:
            handle.close()
        self._files.rename(tmp, self.index_path)
        self._files.fsync_dir(self.dir)
        self.sealed = True

    def truncate(self, offset: int) -> None:
        """Drop the batch containing `offset` and every batch after it."""
        pos = self.locate(offset, self.size)
        if pos is None:
            return
        self._files.remove(state_path(self.path))  # its end moves: the state is stale
        if self.sealed:
            self._files.remove(self.index_path)
            self._files.fsync_dir(self.dir)
            self.sealed = False
        self._file.truncate(pos)
        self._file.fdatasync()
        self.allocated = self.size = pos
        restart = self.index.truncate(pos)
        for p, h in BatchScanner(self._file, restart, pos, verify_crc=False):
            self.index.add(h.base_offset, h.last_offset, p, h.size, h.max_timestamp)

    def write_clean(self, batches: Sequence[Buffer]) -> tuple[SegmentIndex, int]:
        """Write `batches` (which must span exactly this segment's offsets) and their index to
        `*.clean.tmp` files, fdatasynced; returns what `swap_clean` needs. Touches nothing
        of this segment: may run while others read or flush it."""
        index = SegmentIndex(self.base_offset, self.index.interval)
        pos = 0
        for batch in batches:
            h = parse_header(batch)
            index.add(h.base_offset, h.last_offset, pos, h.size, h.max_timestamp)
            pos += h.size
        if index.next_offset != self.next_offset:
            raise ValueError(f"{self.path}: rewrite ends at {index.next_offset}, "
                             f"not {self.next_offset}")
        for path, blobs in ((self._clean_paths[0], batches),
                            (self._clean_paths[1], [index.encode(pos)])):
            handle = self._files.open(path, create=True)
            try:
                handle.truncate(0)
                handle.pwrite(blobs, 0)
                handle.fdatasync()
            finally:
                handle.close()
        return index, pos

    @property
    def _clean_paths(self) -> tuple[str, str]:
        return self.path + ".clean.tmp", self.index_path + ".clean.tmp"

    def discard_clean(self) -> None:
        """Remove what `write_clean` wrote (the segment went meanwhile)."""
        for path in self._clean_paths:
            self._files.remove(path)

    def swap_clean(self, index: SegmentIndex, size: int) -> Segment:
        """Swap the files `write_clean` wrote in; returns the new sealed segment. This one's
        handle stays open (readers may hold it: they read the old, unlinked file) until the
        caller closes it.

        Order: the old index goes (dir fsync); the new log is renamed over the old, then the
        new index into place (dir fsync). A crash at any step leaves either the old or the new
        log, each whole and valid: recovery removes `*.tmp` files and rescans a log without a
        matching index, and both logs span the same offsets, so the segments around it still
        follow on."""
        tmp_log, tmp_index = self._clean_paths
        self._files.remove(self.index_path)
        self._files.fsync_dir(self.dir)
        self._files.rename(tmp_log, self.path)
        self._files.rename(tmp_index, self.index_path)
        self._files.fsync_dir(self.dir)
        seg = Segment(self._files, self.dir, self._files.open(self.path), self.base_offset,
                      self.term, index, size, size, self.preallocate_step)
        seg.sealed = True
        return seg

    def close(self) -> None:
        self._file.close()

    def delete(self) -> None:
        """Close and remove its files (the caller fsyncs the directory)."""
        self._file.close()
        self._files.remove(self.path)
        self._files.remove(self.index_path)
        self._files.remove(state_path(self.path))

    # -- reading (any thread, below a snapshotted limit) -------------------------------------
    def locate(self, offset: int, limit: int) -> int | None:
        """File position of the batch containing `offset` (or the first one after it), None if
        no batch below `limit` ends at or after `offset`."""
        _, pos = self.index.lookup(offset)
        buf = b""
        buf_pos = pos
        # Below the write head every batch was validated when written: step over them reading
        # only base offset, length and last offset delta (a full header parse costs 5x more).
        while pos < limit:
            off = pos - buf_pos
            if off + HEADER_SIZE > len(buf):
                buf, buf_pos, off = self._file.pread(min(_LOCATE_CHUNK, limit - pos), pos), pos, 0
                if len(buf) < HEADER_SIZE:
                    return None
            base, length = _BASE_LENGTH.unpack_from(buf, off)
            if length < HEADER_SIZE - 12:
                raise StorageError(f"{self.path}: corrupt batch length at {pos}")
            if base + _DELTA.unpack_from(buf, off + 23)[0] >= offset:
                return pos
            pos += length + 12
        return None

    def locate_timestamp(self, timestamp: int, limit: int) -> int | None:
        """Base offset of the first batch below `limit` whose max timestamp is >= `timestamp`."""
        _, pos = self.index.lookup_timestamp(timestamp)
        for _p, h in BatchScanner(self._file, pos, limit, verify_crc=False):
            if h.max_timestamp >= timestamp:
                return h.base_offset
        return None

    def read_from(
        self, offset: int, max_bytes: int, limit: int, max_offset: int | None = None
    ) -> tuple[bytes | memoryview, int]:
        """Whole batches from the one containing `offset`, up to `max_bytes` (at least one
        batch), never past `limit` nor past a batch ending after `max_offset`; with the offset
        that follows the last batch returned."""
        pos = self.locate(offset, limit)
        if pos is None:
            return b"", offset
        data = self._file.pread(min(max(max_bytes, HEADER_SIZE), limit - pos), pos)
        end = 0
        next_offset = offset
        try:
            while end + HEADER_SIZE <= len(data):
                header = parse_header(data, end)
                if end + header.size > len(data) or (
                    max_offset is not None and header.last_offset > max_offset
                ):
                    break
                end += header.size
                next_offset = header.last_offset + 1
            if end == 0:
                # The first batch alone is larger than max_bytes: return it whole anyway.
                header = parse_header(self._file.pread(HEADER_SIZE, pos))
                if max_offset is not None and header.last_offset > max_offset:
                    return b"", offset
                return self._file.pread(header.size, pos), header.last_offset + 1
        except CorruptBatchError as exc:
            raise StorageError(f"{self.path}: corrupt batch below the write head: {exc}") from exc
        return (memoryview(data)[:end] if end < len(data) else data), next_offset
