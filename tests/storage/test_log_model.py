"""Stateful property test: the log against a list-of-batches model through appends, flushes,
suffix and prefix truncation, term changes, clean reopens, power cuts (clean and torn), disk
full and failed fdatasyncs (in-memory file layer that keeps only synced bytes). Checks reads,
offsets and terms after every step. STORAGE_MODEL_EXAMPLES raises the example count."""

from __future__ import annotations

import errno
import os

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from storage_batches import batch_for_offset

from redshank.protocol.record_batch import parse_header
from redshank.storage import (
    BatchCache,
    Log,
    LogConfig,
    LogFailedError,
    OffsetOutOfRangeError,
    PowerLossFiles,
    StorageIOError,
)

DIR = "/m/log"
CFG = LogConfig(segment_bytes=3000, index_interval=700, preallocate_step=2048)


class LogModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.files = PowerLossFiles()
        self.files.makedirs(DIR)
        self.cache_bytes = 4096
        self.log = Log.open(DIR, CFG, files=self.files, cache=BatchCache(self.cache_bytes))
        # The model: (base, last, term, bytes) per batch, the log start, the flushed offset.
        self.batches: list[tuple[int, int, int, bytes]] = []
        self.start = 0
        self.flushed = -1
        self.term = 1
        # A flush failed since the last good one: synced bytes may exceed `flushed`.
        self.failed_flush = False

    @property
    def dirty(self) -> int:
        return self.batches[-1][1] if self.batches else self.start - 1

    @rule(n=st.integers(1, 4), bump=st.booleans())
    def append(self, n: int, bump: bool) -> None:
        if bump:
            self.term += 1
        for _ in range(n):
            buf = batch_for_offset(self.dirty + 1, record_size=120)
            res = self.log.append(buf, self.term)
            assert res.base_offset == self.dirty + 1
            self.batches.append((res.base_offset, res.last_offset, self.term, bytes(buf)))

    @rule()
    def flush(self) -> None:
        assert self.log.flush() == self.dirty
        self.flushed = self.dirty
        self.failed_flush = False

    @precondition(lambda self: self.batches)
    @rule(data=st.data())
    def truncate(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(self.start, self.dirty))
        holder = next(b for b in self.batches if b[1] >= offset)
        if holder[0] < self.start:
            # The batch holding `offset` straddles the start: refused, nothing changes.
            with pytest.raises(OffsetOutOfRangeError):
                self.log.truncate(offset)
            return
        self.batches = [b for b in self.batches if b[1] < offset]
        assert self.log.truncate(offset) == self.dirty
        self.flushed = min(self.flushed, self.dirty)

    @precondition(lambda self: self.batches and self.flushed >= self.start)
    @rule(data=st.data())
    def truncate_prefix(self, data: st.DataObject) -> None:
        # Like DeleteRecords, never past what is flushed (the high watermark is below it).
        offset = data.draw(st.integers(self.start, self.flushed + 1))
        assert self.log.truncate_prefix(offset) == offset
        self.start = offset
        self.batches = [b for b in self.batches if b[1] >= offset]

    @rule()
    def reopen(self) -> None:
        self.log.close()
        self.log = Log.open(DIR, CFG, files=self.files, cache=BatchCache(self.cache_bytes))
        self.flushed = self.dirty  # close() flushed everything
        self.failed_flush = False

    @rule()
    def power_cut(self) -> None:
        self.files = self.files.power_loss()
        self.log = Log.open(DIR, CFG, files=self.files, cache=BatchCache(self.cache_bytes))
        self._recovered_prefix(exact=not self.failed_flush)

    def _recovered_prefix(self, *, exact: bool) -> None:
        """After a cut the log holds a prefix of the model's batches covering everything
        flushed; exactly the flushed ones unless a failed flush left synced bytes behind (a
        roll syncs the old segment before the flush as a whole fails)."""
        dirty = self.log.dirty_offset
        assert self.flushed <= dirty <= self.dirty
        assert dirty in {b[1] for b in self.batches} | {self.start - 1}
        if exact:
            assert dirty == self.flushed
        self.batches = [b for b in self.batches if b[1] <= dirty]
        self.flushed = dirty
        self.failed_flush = False

    @precondition(lambda self: self.batches and self.flushed < self.dirty)
    @rule(op=st.sampled_from(["fallocate", "pwrite", "open"]))
    def disk_full(self, op: str) -> None:
        self.files.inject(op, errno.ENOSPC, count=1)
        try:
            self.log.flush()
        except StorageIOError:
            self.failed_flush = True
        else:  # not every flush reaches `op` (no roll, no new pre-allocation)
            self.flushed = self.dirty
            self.failed_flush = False
        self.files.clear_faults()
        assert not self.log.failed

    @precondition(lambda self: self.batches and self.flushed < self.dirty)
    @rule(cut=st.sampled_from(["none", "clean", "torn"]), seed=st.integers(0, 99))
    def sync_fails(self, cut: str, seed: int) -> None:
        """An fdatasync fails mid-flush: the log refuses work; the owner reopens it, maybe
        after a power cut (torn or not). What comes back is a prefix of what was appended
        that holds at least everything flushed before."""
        self.files.inject("fdatasync", errno.EIO, count=1)
        with pytest.raises(StorageIOError):
            self.log.flush()
        assert self.log.failed
        with pytest.raises(LogFailedError):
            self.log.flush()
        self.log.close()
        if cut != "none":
            self.files = self.files.power_loss(torn=cut == "torn", seed=seed)
        self.log = Log.open(DIR, CFG, files=self.files, cache=BatchCache(self.cache_bytes))
        self._recovered_prefix(exact=False)

    @invariant()
    def offsets_agree(self) -> None:
        assert self.log.start_offset == self.start
        assert self.log.dirty_offset == self.dirty
        assert self.log.flushed_offset >= self.flushed

    @precondition(lambda self: self.batches)
    @rule(data=st.data())
    def read(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(self.start, self.dirty))
        max_bytes = data.draw(st.integers(1, 5000))
        want: list[bytes] = []
        total = 0
        for _base, last, _term, raw in self.batches:
            if last < offset:
                continue
            if want and total + len(raw) > max_bytes:
                break
            want.append(raw)
            total += len(raw)
        assert bytes(self.log.read(offset, max_bytes)) == b"".join(want)
        first = next(b for b in self.batches if b[1] >= offset)
        assert self.log.term_at(offset) == first[2]
        assert parse_header(want[0]).partition_leader_epoch == first[2]

    def teardown(self) -> None:
        self.log.close()


TestLogModel = LogModel.TestCase
TestLogModel.settings = settings(
    max_examples=int(os.environ.get("STORAGE_MODEL_EXAMPLES", "150")), stateful_step_count=50,
    deadline=None,
)
