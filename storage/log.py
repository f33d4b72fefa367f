"""The partition log: an ordered run of segments in one directory, stored as Kafka batch bytes.

Two threads share a log (ARCHITECTURE.md section 2: one event loop plus one disk-writer thread
per core):

    loop thread                                 writer thread
    -----------                                 -------------
    append(buf, term) -- validate, restamp,     flush(): swap `_pending` out under the lock,
      queue in `_pending`, cache, dirty++  ---->  gather-write it (rolling segments as needed),
    read_cached(offset, n) -- memory only        fdatasync, advance `flushed_offset`
    offsets, term_at, last_term                 read(offset, n) (may hit the disk)
                                                truncate, truncate_prefix, apply_retention,
                                                timestamp_to_offset, close
                                                (a cleaner thread: compact, which locks only
                                                 to swap one cleaned segment in)

`append` never does I/O: the bytes are readable at once from `_pending`/`_inflight` and the
batch cache, and the writer picks them up at its next flush. One short lock (`_lock`) guards the
hand-off and every field both threads see; `_flush_lock` serialises the writer-side operations,
so a flush called while another runs waits and then covers everything appended meanwhile.

A failed write (ENOSPC, EIO) keeps the batches queued for the next flush; a failed fdatasync
marks the log failed (`LogFailedError` from then on): the page cache can no longer be trusted,
so the owner must close and reopen it, which recovers what the disk really holds.

Knows nothing of Raft or Kafka sessions: a term is just a number stored per batch.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from bisect import bisect_right
from collections.abc import Iterator

import structlog

from redshank.protocol.errors import CorruptBatchError, DecodeError
from redshank.protocol.fast_dataclass import dataclass
from redshank.protocol.record_batch import (
    HEADER_SIZE,
    BatchHeader,
    iter_batches,
    parse_header,
    set_base_offset,
    set_leader_epoch,
    validate_batch,
)
from redshank.protocol.records import record_timestamps
from redshank.storage.batch_cache import BatchCache
from redshank.storage.compaction import KeyMap, clean_batch, latest_offsets
from redshank.storage.errors import LogFailedError, OffsetOutOfRangeError, StorageError
from redshank.storage.file_io import FileLayer, FlushStep, OsFiles
from redshank.storage.log_config import AppendResult, LogConfig
from redshank.storage.log_dir import open_segments, read_start_offset, write_start_offset
from redshank.storage.retention import SegmentInfo, retention_start
from redshank.storage.segment import BatchMeta, Segment
from redshank.storage.segment_state import read_state, state_path, write_state
from redshank.storage.types import Offset, Term

__all__ = ["AppendResult", "CompactResult", "Log", "LogConfig"]

_log = structlog.get_logger("redshank.storage")


# One appended batch waiting to be written: (base, last, term, max timestamp, bytes).
_Entry = tuple[int, int, int, int, memoryview]


def _entry_base(e: _Entry) -> int:
    return e[0]


_NO_TOMBSTONE = (1 << 63) - 1
_COMPACT_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class CompactResult:
    """One compaction pass: segments rewritten, bytes of the cleanable segments read (the pass's
    cost), and their size before and after."""

    rewritten: int = 0
    bytes_read: int = 0
    bytes_before: int = 0
    bytes_after: int = 0


class Log:
    """Use `Log.open`. Thread roles as in the module docstring."""

    def __init__(
        self,
        directory: str,
        config: LogConfig,
        files: FileLayer,
        cache: BatchCache,
        segments: list[Segment],
        start_offset: int,
    ) -> None:
        self.dir = directory
        self.config = config
        self._files = files
        self._cache = cache
        self._cache_key = cache.new_key()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._segments = segments
        self._start = start_offset
        end = segments[-1].next_offset - 1 if segments else start_offset - 1
        self._dirty = end
        self._written = end
        self._flushed = end
        self._pending: list[_Entry] = []
        self._inflight: list[_Entry] = []
        # (first offset, term) at every term change, for term_at; rebuilt from segment names.
        self._terms: list[tuple[int, int]] = []
        for seg in segments:
            if not seg.is_empty() and (not self._terms or self._terms[-1][1] != seg.term):
                self._terms.append((seg.base_offset, seg.term))
        self._last_term = segments[-1].term if segments else 0
        self._failed: BaseException | None = None
        self._closed = False
        # Compaction: segments swapped out, closed at the next pass or at close (a reader may
        # still hold one it snapshotted); (end offset, oldest tombstone kept) of the last pass.
        self._retired: list[Segment] = []
        self._cleaned: tuple[int, int] | None = None
        self._compact_lock = threading.Lock()  # one pass at a time
        self._logger = _log.bind(log=directory)

    @classmethod
    def open(
        cls,
        directory: str,
        config: LogConfig | None = None,
        *,
        files: FileLayer | None = None,
        cache: BatchCache | None = None,
        distrust_cache: bool = False,
    ) -> Log:
        """Open (creating if needed) and recover the log in `directory` (writer thread).

        `distrust_cache`: reopening after a failed fdatasync. The segment files' pages are
        dropped from the page cache first, so recovery reads what the disk holds rather than
        pages the kernel kept after failing to write them (fsyncgate)."""
        files = files or OsFiles()
        config = config or LogConfig()
        if distrust_cache and files.exists(directory):
            for name in files.listdir(directory):
                if name.endswith(".log"):
                    files.drop_cache(os.path.join(directory, name))
        segments = open_segments(files, directory, config.index_interval,
                                 config.preallocate_step)
        start = read_start_offset(files, directory)
        first = segments[0].base_offset if segments else 0
        end = segments[-1].next_offset if segments else start
        start = min(max(start, first), end)
        if segments:
            # Recovery may have found bytes a killed process wrote but never synced: they are
            # in the page cache, so make them durable before counting them as flushed.
            try:
                segments[-1].sync()
            except StorageError:
                for seg in segments:
                    seg.close()
                raise
        # Brokers pass the core's shared cache; a private one is for tools and tests.
        return cls(directory, config, files, cache or BatchCache(8 * 1024 * 1024), segments,
                   start)

    # -- offsets (any thread) ------------------------------------------------------------------
    @property
    def start_offset(self) -> Offset:
        return Offset(self._start)

    @property
    def dirty_offset(self) -> Offset:
        """Last offset appended (readable at once); start_offset - 1 when the log is empty."""
        return Offset(self._dirty)

    @property
    def flushed_offset(self) -> Offset:
        """Last offset made durable by fdatasync."""
        return Offset(self._flushed)

    @property
    def last_term(self) -> Term:
        return Term(self._last_term)

    @property
    def failed(self) -> bool:
        return self._failed is not None

    @property
    def closed(self) -> bool:
        return self._closed

    def term_at(self, offset: int) -> Term | None:
        """Term of the batch holding `offset`, None outside [start, dirty]."""
        with self._lock:
            if offset < self._start or offset > self._dirty:
                return None
            i = bisect_right(self._terms, (offset, 1 << 62)) - 1
            return Term(self._terms[i][1]) if i >= 0 else None

    # -- append (loop thread) ------------------------------------------------------------------
    def append(self, buf: bytearray | memoryview, term: int, *, crc_checked: bool = False
               ) -> AppendResult:
        """Append the whole batches in `buf`, assigning offsets from dirty+1 and stamping `term`
        as each batch's partitionLeaderEpoch, both in place. No I/O: the log keeps a view of
        `buf`, which the caller must not change afterwards. All or nothing: a corrupt batch
        raises `CorruptBatchError` before anything is appended."""
        view = memoryview(buf)
        if view.readonly:
            raise ValueError("append needs a writable buffer (offsets are rewritten in place)")
        view = view.cast("B")
        headers = self._parse(view, crc_checked)
        with self._lock:
            self._check_usable()
            if term < self._last_term:
                raise ValueError(f"term {term} below the log's last term {self._last_term}")
            base = nxt = self._dirty + 1
            for pos, h in headers:
                last = nxt + h.last_offset_delta
                set_base_offset(view, pos, nxt)
                set_leader_epoch(view, pos, term)
                batch = view[pos : pos + h.size]
                self._pending.append((nxt, last, term, h.max_timestamp, batch))
                self._cache.put(self._cache_key, nxt, last, batch)
                nxt = last + 1
            # Compare with the last recorded term start, not `_last_term`: after a truncation
            # the last segment may be an empty one of a newer term.
            if not self._terms or self._terms[-1][1] != term:
                self._terms.append((base, term))
            self._last_term = term
            self._dirty = nxt - 1
        return AppendResult(Offset(base), Offset(nxt - 1), len(headers), len(view))

    @staticmethod
    def _parse(view: memoryview, crc_checked: bool) -> list[tuple[int, BatchHeader]]:
        if not len(view):
            raise ValueError("append of zero bytes")
        headers: list[tuple[int, BatchHeader]] = []
        pos = 0
        while pos < len(view):
            if crc_checked:
                h = parse_header(view, pos)
                if pos + h.size > len(view):
                    raise CorruptBatchError(f"record batch at {pos} truncated")
            else:
                h = validate_batch(view, pos)
            if h.last_offset_delta < 0:  # offsets come from it: a negative one would rewind
                raise CorruptBatchError(f"record batch at {pos} has lastOffsetDelta "
                                        f"{h.last_offset_delta}")
            headers.append((pos, h))
            pos += h.size
        return headers

    def _check_usable(self) -> None:
        if self._closed:
            raise StorageError(f"log {self.dir} is closed")
        if self._failed is not None:
            raise LogFailedError(f"log {self.dir} failed earlier: {self._failed}")

    # -- flush (writer thread) -----------------------------------------------------------------
    def flush(self) -> Offset:
        """Write everything appended so far and fdatasync it; returns the flushed offset.
        Raises StorageIOError (nothing new is durable; a later flush retries the write) or
        LogFailedError (an fdatasync failed, now or earlier)."""
        return Offset(self.begin_flush().sync_and_end())

    # Synced after the kvstores of a `FlushCoordinator` round (see `KvStore.flush_stage`).
    flush_stage = 1

    def begin_flush(self) -> FlushStep:
        """`flush` in two halves, so one sync can cover many logs (`FlushCoordinator`): write
        everything appended so far and hold the flush lock; the step's `handle` (None: nothing
        to sync) must then be made durable and `end` called with the outcome, which releases
        the lock and returns the flushed offset (or raises, failing the log on a sync error).
        Raises as `flush` when the write fails (no lock held then)."""
        self._flush_lock.acquire()
        try:
            with self._lock:
                self._check_usable()
                if self._pending:
                    self._inflight = self._inflight + self._pending
                    self._pending = []
                todo = self._inflight
                target = self._dirty
            if todo:
                self._write(todo)
            handle = (self._segments[-1].file
                      if self._segments and self._flushed < self._written else None)
        except BaseException:
            self._flush_lock.release()
            raise
        return FlushStep(handle, functools.partial(self._end_flush, target))

    def _end_flush(self, target: int, error: StorageError | None) -> int:
        try:
            if error is not None:
                self._fail(error)
                raise error
            with self._lock:
                self._flushed = max(self._flushed, min(self._written, target))
                return self._flushed
        finally:
            self._flush_lock.release()

    def _sync(self, seg: Segment) -> None:
        """fdatasync; on failure the log is failed for good (see the module docstring)."""
        try:
            seg.sync()
        except StorageError as exc:
            self._fail(exc)
            raise

    def _fail(self, exc: StorageError) -> None:
        self._failed = exc
        self._logger.error("log_failed", error=str(exc))

    def _write(self, entries: list[_Entry]) -> None:
        """Write entries in runs that share a segment, rolling between runs."""
        i = 0
        while i < len(entries):
            seg = self._segment_for(entries[i])
            room = self.config.segment_bytes - seg.size
            j = i
            views: list[memoryview] = []
            metas: list[BatchMeta] = []
            while j < len(entries):
                base, last, term, max_ts, batch = entries[j]
                if term != seg.term or (views and len(batch) > room):
                    break
                views.append(batch)
                metas.append((base, last, len(batch), max_ts))
                room -= len(batch)
                j += 1
            seg.write(views, metas)
            with self._lock:
                # Now readable from the file: drop from the in-memory tail.
                self._inflight = self._inflight[j - i :]
                self._written = metas[-1][1]
            i = j

    def _segment_for(self, entry: _Entry) -> Segment:
        """The segment the entry goes into, rolling first when the term changes, the active
        segment is full or old, or it was sealed (a reopened log never appends to a sealed
        segment)."""
        base, _last, term, _ts, batch = entry
        active = self._segments[-1] if self._segments else None
        if active is not None and not self._must_roll(active, term, len(batch)):
            return active
        return self._roll(base, term)

    def _must_roll(self, seg: Segment, term: int, size: int) -> bool:
        if seg.is_empty():
            return term != seg.term
        if seg.sealed or term != seg.term or seg.size + size > self.config.segment_bytes:
            return True
        ms = self.config.segment_ms
        return (ms is not None and seg.first_write_at is not None
                and (time.monotonic() - seg.first_write_at) * 1000 >= ms)

    def _roll(self, base: int, term: int) -> Segment:
        old = self._segments[-1] if self._segments else None
        if old is not None:
            if old.is_empty():
                old.delete()
                with self._lock:
                    self._segments.pop()
            else:
                self._sync(old)
                # Trimming and writing the index can fail without harm (ENOSPC): the segment
                # stays active and the next flush retries the roll.
                old.seal()
        # Never reserve past what the segment may hold (small segment.bytes): a batch larger
        # than that still gets the room it needs.
        seg = Segment.create(self._files, self.dir, base, term,
                             index_interval=self.config.index_interval,
                             preallocate_step=min(self.config.preallocate_step,
                                                  self.config.segment_bytes))
        with self._lock:
            self._segments.append(seg)
        if old is not None:
            self._logger.info("segment_rolled", base_offset=base, term=term,
                              previous_base=old.base_offset, previous_bytes=old.size)
        return seg

    # -- reads ---------------------------------------------------------------------------------
    def read(self, offset: int, max_bytes: int, max_offset: int | None = None
             ) -> bytes | memoryview:
        """Whole batches from the one containing `offset`, about `max_bytes` (at least one
        batch when any exists at or after `offset`), none ending after `max_offset` (e.g. the
        high watermark); b"" past the end. May read the disk: writer thread (or any thread that
        may block)."""
        got = self._read(offset, max_bytes, max_offset, allow_disk=True)
        assert got is not None
        return got

    def scan(self, start: int, chunk: int = 1 << 20) -> Iterator[BatchHeader]:
        """The header of every batch from the one holding `start` (at least the log start) to
        the end, read in chunks of about `chunk` bytes, headers only (no CRC checks: recovery
        already checked them). May read the disk: writer thread."""
        offset = max(start, self.start_offset)
        end = self.dirty_offset
        while offset <= end:
            data = self.read(offset, chunk)
            if not data:
                return
            last = offset - 1
            for _pos, h in iter_batches(data, verify_crc=False):
                last = h.last_offset
                if last >= offset:
                    yield h
            if last < offset:
                return
            offset = last + 1

    def read_cached(self, offset: int, max_bytes: int, max_offset: int | None = None
                    ) -> bytes | memoryview | None:
        """As `read` but never touches the disk (loop thread): None when it would have to."""
        return self._read(offset, max_bytes, max_offset, allow_disk=False)

    def _read(self, offset: int, max_bytes: int, max_offset: int | None, *, allow_disk: bool
              ) -> bytes | memoryview | None:
        with self._lock:
            if offset < self._start:
                raise OffsetOutOfRangeError(f"offset {offset} below log start {self._start}")
            end = self._dirty if max_offset is None else min(self._dirty, max_offset)
            # No copies: both lists are only ever appended to or replaced, never edited.
            memory = (self._inflight, self._pending)
            segments = list(self._segments)
            limit = segments[-1].size if segments else 0
            key = self._cache_key
        first = memory[0] or memory[1]
        mem_start = first[0][0] if first else end + 1
        parts: list[bytes | memoryview] = []
        total = 0
        nxt = offset
        while nxt <= end and (not parts or total < max_bytes):
            hit = self._cache.get(key, nxt)
            if hit is not None:
                chunk, after = hit[1], hit[0] + 1
            elif nxt >= mem_start:
                chunk, after = self._from_memory(memory, nxt)
            elif not allow_disk:
                return None
            else:
                chunk, after = self._from_disk(segments, limit, nxt, max_bytes - total, end)
            if not chunk or after - 1 > end or (parts and total + len(chunk) > max_bytes):
                break
            parts.append(chunk)
            total += len(chunk)
            nxt = after
        if len(parts) == 1:
            return parts[0]
        return b"".join(parts)

    @staticmethod
    def _from_memory(memory: tuple[list[_Entry], list[_Entry]], offset: int
                     ) -> tuple[memoryview, int]:
        inflight, pending = memory
        entries = pending if not inflight or inflight[-1][1] < offset else inflight
        i = max(bisect_right(entries, offset, key=_entry_base) - 1, 0)
        return entries[i][4], entries[i][1] + 1

    @staticmethod
    def _from_disk(segments: list[Segment], limit: int, offset: int, max_bytes: int,
                   max_offset: int) -> tuple[bytes | memoryview, int]:
        i = max(bisect_right(segments, offset, key=lambda s: s.base_offset) - 1, 0)
        while i < len(segments):
            seg = segments[i]
            seg_limit = limit if i == len(segments) - 1 else seg.size
            data, after = seg.read_from(offset, max_bytes, seg_limit, max_offset)
            if data:
                return data, after
            i += 1
        return b"", offset

    def timestamp_to_offset(self, timestamp: int) -> Offset | None:
        """Base offset of the first batch whose max timestamp is >= `timestamp` (Kafka's
        ListOffsets by time, at batch granularity), None if there is none. Writer thread."""
        with self._lock:
            segments = list(self._segments)
            limit = segments[-1].size if segments else 0
            memory = self._inflight + self._pending
            start = self._start
        for i, seg in enumerate(segments):
            if seg.index.max_timestamp < timestamp:
                continue
            found = seg.locate_timestamp(timestamp, limit if i == len(segments) - 1 else seg.size)
            if found is not None:
                return Offset(max(found, start))
        for base, _last, _term, max_ts, _b in memory:
            if max_ts >= timestamp:
                return Offset(max(base, start))
        return None

    def record_in_batch(self, offset: int, timestamp: int) -> tuple[Offset, int] | None:
        """In the batch holding `offset`: the first record at or after the log start whose
        timestamp is >= `timestamp`, as (its offset, its timestamp); None if none there (or the
        batch cannot be decoded). Reads that one batch's record timestamps, not its records:
        ListOffsets answers per record from the batch the time index names. Writer thread."""
        start = self.start_offset
        data = self.read(max(offset, start), 1)
        if not data:
            return None
        try:
            for at, ts in record_timestamps(data):
                if at >= start and ts >= timestamp:
                    return Offset(at), ts
        except DecodeError:
            _log.warning("record_timestamps_unreadable", offset=offset)
        return None

    def timestamp_to_record(self, timestamp: int) -> tuple[Offset, int] | None:
        """Kafka's ListOffsets by time: the first record whose timestamp is >= `timestamp`, as
        (offset, timestamp); None if there is none. The time index finds the batch, its record
        timestamps the record (a batch whose records cannot be read: its base offset and
        `timestamp`, the batch-granular answer). Writer thread."""
        found = self.timestamp_to_offset(timestamp)
        if found is None:
            return None
        return self.record_in_batch(found, timestamp) or (found, timestamp)

    def max_timestamp_record(self) -> tuple[Offset, int] | None:
        """ListOffsets MAX_TIMESTAMP from the log itself (a leader that has not tracked it since
        it started): the first record carrying the largest timestamp of any batch (the segments'
        time indexes and the batches in memory give it, the time lookup finds its record); None
        for a log without a timestamped record. Writer thread."""
        with self._lock:
            tops = [s.index.max_timestamp for s in self._segments]
            tops += [max_ts for _b, _l, _t, max_ts, _x in self._inflight + self._pending]
        top = max(tops, default=-1)
        return None if top < 0 else self.timestamp_to_record(top)

    # -- truncation, retention, close (writer thread) ------------------------------------------
    def truncate(self, offset: int) -> Offset:
        """Remove the batch containing `offset` and all later ones (Raft log conflicts).
        Returns the new dirty offset. The caller must not append concurrently. Raises
        OffsetOutOfRangeError if that batch begins below the log start."""
        with self._flush_lock:
            with self._lock:
                if offset > self._dirty:
                    return Offset(self._dirty)
                if offset < self._start:
                    raise OffsetOutOfRangeError(f"truncate to {offset} below start {self._start}")
            # The batch holding `offset` goes whole: it must not begin below the log start.
            first = parse_header(self.read(offset, 1)).base_offset
            if first < self._start:
                raise OffsetOutOfRangeError(
                    f"truncate to {offset} would drop batch {first} below start {self._start}")
            with self._lock:
                self._pending = [e for e in self._pending if e[1] < offset]
                self._inflight = [e for e in self._inflight if e[1] < offset]
                # Cached batches at or after `offset` must never be served again.
                self._cache_key = (self._cache_key[0], self._cache_key[1] + 1)
            try:
                # Later segments go first, so a crash midway leaves a longer log, never a gap.
                while len(self._segments) > 1 and self._segments[-1].base_offset >= offset:
                    with self._lock:
                        seg = self._segments.pop()
                    seg.delete()
                    self._files.fsync_dir(self.dir)
                if self._segments:
                    self._segments[-1].truncate(offset)
                    # It is the active segment again: its state (as of its old end) goes.
                    self._files.remove(state_path(self._segments[-1].path))
            except StorageError as exc:
                # Memory and disk may now disagree: only a reopen (recovery) can tell.
                self._fail(exc)
                raise
            with self._lock:
                memory = self._inflight + self._pending
                on_disk = self._segments[-1].next_offset - 1 if self._segments else self._start - 1
                self._written = min(self._written, on_disk)
                self._flushed = min(self._flushed, on_disk)
                self._dirty = memory[-1][1] if memory else on_disk
                self._terms = [t for t in self._terms if t[0] <= self._dirty]
                if self._segments:
                    last_seg_term = self._segments[-1].term
                    self._last_term = self._terms[-1][1] if self._terms else last_seg_term
            self._logger.info("log_truncated", offset=offset, dirty_offset=self._dirty)
            return Offset(self._dirty)

    def truncate_prefix(self, offset: int) -> Offset:
        """Make `offset` the new log start (DeleteRecords, retention): offsets below it are no
        longer readable and whole segments below it are deleted. Returns the new start (at
        most dirty + 1). Meant for flushed offsets (Kafka allows it up to the high watermark):
        a start past what a crash leaves on disk is clamped to the recovered end."""
        with self._flush_lock:
            with self._lock:
                offset = min(offset, self._dirty + 1)
                if offset <= self._start:
                    return Offset(self._start)
            # The checkpoint is durable before any file goes, so a crash never resurrects data.
            write_start_offset(self._files, self.dir, offset)
            with self._lock:
                self._start = offset
            removed = 0
            while len(self._segments) > 1 and self._segments[0].next_offset <= offset:
                with self._lock:
                    seg = self._segments.pop(0)
                seg.delete()
                removed += 1
            if removed:
                self._files.fsync_dir(self.dir)
                self._logger.info("segments_deleted", count=removed, start_offset=offset)
            return Offset(offset)

    def apply_retention(self, now_ms: int | None = None) -> int:
        """Delete whole closed segments beyond `retention_bytes` or older than `retention_ms`
        (by their max timestamp). Never the active segment. Returns segments removed."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        with self._lock:
            closed = [SegmentInfo(s.size, s.index.max_timestamp, s.next_offset)
                      for s in self._segments[:-1]]
            total = sum(s.size for s in self._segments)
        start = retention_start(closed, total, now_ms, self.config.retention_bytes,
                                self.config.retention_ms)
        if start is None:
            return 0
        before = len(self._segments)
        self.truncate_prefix(start)
        return before - len(self._segments)

    def compact(self, now_ms: int | None = None, max_offset: int | None = None
                ) -> CompactResult:
        """Compact the closed segments (`compaction` has the rules) that end at or below
        `max_offset` (the high watermark: never an uncommitted entry) and the flushed offset,
        and whose newest timestamp is older than `min_compaction_lag_ms`. Never the active
        segment. A no-op unless `config.compact`, and when nothing changed since the last pass
        and no kept tombstone has expired.

        Any thread that may block (a cleaner thread: a pass reads every cleanable segment
        twice). It reads sealed segments through handles of its own and writes their cleaned
        copies without a lock; only each swap holds `_flush_lock` (so a flush of this log waits
        for one swap, never for a pass), and a segment deleted meanwhile is not swapped."""
        if not self.config.compact:
            return CompactResult()
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        with self._compact_lock:
            with self._lock:
                self._check_usable()
                closed = self._segments[:-1]
                limit = self._flushed if max_offset is None else min(self._flushed, max_offset)
                retired, self._retired = self._retired, []
            for old in retired:  # swapped out a pass ago: no read still holds them
                old.close()
            lag_horizon = now_ms - self.config.min_compaction_lag_ms
            cleanable: list[Segment] = []
            for seg in closed:
                if seg.last_offset > limit or seg.index.max_timestamp > lag_horizon:
                    break
                cleanable.append(seg)
            tombstone_horizon = now_ms - self.config.delete_retention_ms
            if not cleanable or (self._cleaned is not None
                                 and self._cleaned[0] == cleanable[-1].next_offset
                                 and self._cleaned[1] >= tombstone_horizon):
                return CompactResult()
            latest: KeyMap = {}
            for seg in cleanable:
                latest_offsets(self._batches_of(seg), latest)
            rewritten, before, after = 0, 0, 0
            oldest_tombstone = _NO_TOMBSTONE
            for seg in cleanable:
                batches: list[bytes | memoryview] = []
                changed = False
                was = seg.size
                for batch in self._batches_of(seg):
                    out, oldest = clean_batch(batch, latest, tombstone_horizon)
                    if out is not batch:
                        changed = True
                        out = bytes(out)  # the chunk it came from is a segment's worth
                    batches.append(out)
                    oldest_tombstone = min(oldest_tombstone, oldest)
                if changed and self._swap(seg, batches, was):
                    rewritten, before = rewritten + 1, before + seg.size
                    after += sum(len(b) for b in batches)
            self._cleaned = (cleanable[-1].next_offset, oldest_tombstone)
        if rewritten:
            self._logger.info("log_compacted", segments=rewritten, bytes_before=before,
                              bytes_after=after, keys=len(latest))
        return CompactResult(rewritten, sum(s.size for s in cleanable), before, after)

    def _swap(self, seg: Segment, batches: list[bytes | memoryview], was: int) -> bool:
        """Put the cleaned copy of `seg` (read when it held `was` bytes) in its place; False
        if `seg` went or changed meanwhile."""
        index, size = seg.write_clean(batches)
        with self._flush_lock:
            with self._lock:
                present = not self._closed and any(s is seg for s in self._segments)
            if not present or seg.size != was:
                # Deleted by retention or DeleteRecords, truncated, or the log closed.
                seg.discard_clean()
                return False
            new = seg.swap_clean(index, size)
            with self._lock:
                self._segments[self._segments.index(seg)] = new
                self._retired.append(seg)
                key = self._cache_key
        # Readers of the cache see the cleaned batches from now on, as disk readers do.
        for out in batches:
            self._cache.replace(key, parse_header(out).base_offset, out)
        return True

    def _batches_of(self, seg: Segment) -> Iterator[memoryview]:
        """Every batch of a sealed segment, read in chunks through a handle of its own: were
        the segment deleted meanwhile, its file stays readable (or it is not found and yields
        nothing), never a closed or reused descriptor."""
        try:
            handle = self._files.open(seg.path)
        except StorageError:
            with self._lock:
                if any(s is seg for s in self._segments):
                    raise
            return  # deleted by retention or DeleteRecords meanwhile: nothing to clean there
        try:
            pos = 0
            while pos < seg.size:
                data = memoryview(handle.pread(min(_COMPACT_CHUNK, seg.size - pos), pos))
                used = 0
                while used + HEADER_SIZE <= len(data):
                    h = parse_header(data, used)
                    if used + h.size > len(data):
                        break
                    yield data[used : used + h.size]
                    used += h.size
                if used == 0:  # one batch larger than the chunk
                    h = parse_header(data)
                    yield memoryview(handle.pread(h.size, pos))
                    used = h.size
                pos += used
        finally:
            handle.close()

    # -- segment state files (writer thread) ----------------------------------------------------
    def write_segment_state(self, base_offset: int, payload: bytes) -> bool:
        """Store `payload` as the state of the sealed segment starting at `base_offset`
        (`segment_state`); False if there is no such segment, or it is the active one."""
        with self._flush_lock:  # no truncation or compaction swap meanwhile
            with self._lock:
                found = [s for s in self._segments[:-1] if s.base_offset == base_offset]
            if not found:
                return False
            write_state(self._files, found[0].path, payload)
            return True

    def sealed_since(self, base_offset: int) -> list[tuple[int, int]]:
        """(base offset, next offset) of the sealed segments starting at or after
        `base_offset`, oldest first (cheap: walks back from the active segment)."""
        out: list[tuple[int, int]] = []
        with self._lock:
            segments = self._segments
            for i in range(len(segments) - 2, -1, -1):  # no copy: called after every flush
                seg = segments[i]
                if seg.base_offset < base_offset:
                    break
                out.append((seg.base_offset, seg.next_offset))
        out.reverse()
        return out

    def segment_states(self) -> list[tuple[int, int, bytes | None]]:
        """(base offset, next offset, state payload or None) per segment, oldest first; the
        active segment never has one."""
        with self._flush_lock:
            with self._lock:
                segs = list(self._segments)
            return [(s.base_offset, s.next_offset,
                     read_state(self._files, s.path) if i < len(segs) - 1 else None)
                    for i, s in enumerate(segs)]

    def segments(self) -> list[tuple[int, int, int]]:
        """(base offset, term, bytes) per segment, oldest first (for tools and tests)."""
        with self._lock:
            return [(s.base_offset, s.term, s.size) for s in self._segments]

    def close(self, *, seal: bool = True) -> None:
        """Flush, seal the active segment (trimming pre-allocation) and close the files. A
        failed log closes without sealing: recovery will sort it out on reopen. `seal=False`
        leaves the active segment as a crash right after the flush would (tools, tests)."""
        with self._lock:
            if self._closed:
                return
        try:
            if self._failed is None:
                self.flush()
                if seal and self._segments and not self._segments[-1].is_empty():
                    self._segments[-1].seal()
        finally:
            with self._flush_lock, self._lock:  # a compaction swap in flight ends first
                self._closed = True
                gone = self._segments + self._retired
            for seg in gone:
                seg.close()

    def __repr__(self) -> str:
        return (f"Log({os.path.basename(self.dir)!r}, start={self._start}, "
                f"dirty={self._dirty}, flushed={self._flushed})")
