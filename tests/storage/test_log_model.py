"""Stateful property test: the log against a list-of-batches model through appends, flushes,
suffix and prefix truncation, term changes, clean reopens and power cuts (in-memory file layer
that keeps only synced bytes). Checks reads, offsets and terms after every step."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from storage_batches import batch_for_offset

from redshank.protocol.record_batch import parse_header
from redshank.storage import BatchCache, Log, LogConfig, OffsetOutOfRangeError, PowerLossFiles

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
        self.flushed = self.dirty

    @rule()
    def power_cut(self) -> None:
        self.files = self.files.power_loss()
        self.log = Log.open(DIR, CFG, files=self.files, cache=BatchCache(self.cache_bytes))
        self.batches = [b for b in self.batches if b[1] <= self.flushed]
        assert self.log.dirty_offset == self.dirty

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
