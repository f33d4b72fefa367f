"""Simulated power loss through the file-layer double: recovery keeps exactly the synced prefix
(plus, with a torn write, only whole valid batches that were written), never less."""

from __future__ import annotations

import random

import pytest
from storage_batches import batch_for_offset

from redshank.protocol.record_batch import iter_batches
from redshank.storage import Log, LogConfig, PowerLossFiles, StorageIOError

DIR = "/data/log"
CFG = LogConfig(segment_bytes=6 * 1024, index_interval=1024, preallocate_step=4096)


def _run_and_cut(seed: int, torn: bool) -> tuple[PowerLossFiles, list[bytes], int]:
    """Append and flush at random (rolling segments, truncating now and then), cut the power
    at a random point. Returns the file layer after the cut, every batch appended in order
    (after truncations), and the last offset a flush reported."""
    rng = random.Random(seed)
    files = PowerLossFiles()
    files.makedirs(DIR)
    log = Log.open(DIR, CFG, files=files)
    stored: list[bytes] = []
    flushed = -1
    term = 1
    for _ in range(rng.randrange(20, 80)):
        action = rng.random()
        if action < 0.6:
            buf = batch_for_offset(log.dirty_offset + 1)
            log.append(buf, term)
            stored.append(bytes(buf))
        elif action < 0.9:
            flushed = log.flush()
        elif action < 0.95 and stored:
            term += 1
        elif stored and len(stored) > 2:
            # A Raft conflict: drop a suffix (whole batches), possibly below the flushed point.
            keep = rng.randrange(len(stored))
            first_dropped = next(h.base_offset for _, h in iter_batches(stored[keep]))
            log.truncate(first_dropped)
            stored = stored[:keep]
            flushed = min(flushed, log.dirty_offset)
    if torn:
        # Cut the power between a flush's write and its fdatasync, so unsynced bytes exist.
        for _ in range(rng.randrange(1, 6)):
            buf = batch_for_offset(log.dirty_offset + 1)
            log.append(buf, term)
            stored.append(bytes(buf))
        files.inject("fdatasync", count=1)
        with pytest.raises(StorageIOError):
            log.flush()
    return files.power_loss(torn=torn, seed=seed), stored, flushed


@pytest.mark.parametrize("seed", range(40))
def test_power_loss_keeps_exactly_the_synced_prefix(seed: int) -> None:
    after, stored, flushed = _run_and_cut(seed, torn=False)
    log = Log.open(DIR, CFG, files=after)
    try:
        data = bytes(log.read(0, 1 << 30)) if log.dirty_offset >= 0 else b""
        batches = [bytes(data[p : p + h.size]) for p, h in iter_batches(data)]
        # Only synced bytes survive, and every synced batch does, byte for byte.
        assert log.dirty_offset == flushed
        assert batches == stored[: len(batches)]
        assert (batches[-1] if batches else None) == next(
            (s for s in stored if _last(s) == flushed), None)
        # Appends continue right after the recovered prefix.
        nxt = log.dirty_offset + 1
        assert log.append(batch_for_offset(nxt), log.last_term + 1).base_offset == nxt
        assert log.flush() == log.dirty_offset
    finally:
        log.close()


@pytest.mark.parametrize("seed", range(40))
def test_torn_write_recovers_a_valid_prefix_covering_every_flushed_batch(seed: int) -> None:
    after, stored, flushed = _run_and_cut(seed, torn=True)
    log = Log.open(DIR, CFG, files=after)
    try:
        data = bytes(log.read(0, 1 << 30)) if log.dirty_offset >= 0 else b""
        batches = [bytes(data[p : p + h.size]) for p, h in iter_batches(data)]  # CRCs checked
        assert log.dirty_offset >= flushed
        assert batches == stored[: len(batches)]
    finally:
        log.close()
    # Recovery converges: a second power cut right after recovery changes nothing.
    again = Log.open(DIR, CFG, files=after.power_loss())
    try:
        assert again.dirty_offset == log.dirty_offset
    finally:
        again.close()


def _last(batch: bytes) -> int:
    return next(h.last_offset for _, h in iter_batches(batch))


def test_torn_cuts_do_keep_some_whole_unsynced_batches() -> None:
    # Guards against a vacuous torn test: across the seeds, some cuts must leave whole,
    # valid, unsynced batches (kept) and some must leave a partial one (cut off).
    kept = 0
    for seed in range(40):
        after, _stored, flushed = _run_and_cut(seed, torn=True)
        log = Log.open(DIR, CFG, files=after)
        kept += log.dirty_offset > flushed
        log.close()
    assert 0 < kept < 40


@pytest.mark.parametrize("seed", range(10))
def test_recovery_interrupted_by_another_power_cut_converges(seed: int) -> None:
    after, stored, flushed = _run_and_cut(seed, torn=True)
    # Reference: recovery left alone.
    ref = Log.open(DIR, CFG, files=after.power_loss())
    want = bytes(ref.read(0, 1 << 30)) if ref.dirty_offset >= 0 else b""
    ref.close()
    assert stored and want == b"".join(stored)[: len(want)]
    # Recovery dies at its first truncate, or at its fdatasync, then the power goes again.
    for op in ("truncate", "fdatasync"):
        interrupted = after.power_loss()
        interrupted.inject(op, count=1)
        try:
            Log.open(DIR, CFG, files=interrupted).close()
        except StorageIOError:
            pass
        log = Log.open(DIR, CFG, files=interrupted.power_loss())
        try:
            got = bytes(log.read(0, 1 << 30)) if log.dirty_offset >= 0 else b""
            assert got == want and log.dirty_offset >= flushed
        finally:
            log.close()
