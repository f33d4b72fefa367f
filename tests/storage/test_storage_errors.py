"""Disk full and EIO through the file-layer double: a typed StorageError, a consistent log,
nothing already flushed lost, and never a flush that reports success it did not achieve."""

from __future__ import annotations

import errno

import pytest
from storage_batches import batch_for_offset

from redshank.storage import (
    FlushCoordinator,
    Log,
    LogConfig,
    LogFailedError,
    PowerLossFiles,
    StorageError,
    StorageIOError,
)

DIR = "/d/log"
CFG = LogConfig(segment_bytes=8 * 1024, preallocate_step=4096)


def _open() -> tuple[PowerLossFiles, Log]:
    files = PowerLossFiles()
    files.makedirs(DIR)
    return files, Log.open(DIR, CFG, files=files)


def _append(log: Log, n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        buf = batch_for_offset(log.dirty_offset + 1)
        log.append(buf, 1)
        out.append(bytes(buf))
    return out


@pytest.mark.parametrize("op", ["fallocate", "pwrite"])
def test_disk_full_on_write_fails_the_flush_and_a_retry_succeeds(op: str) -> None:
    files, log = _open()
    try:
        first = _append(log, 3)
        durable = log.flush()
        later = _append(log, 8)  # crosses pre-allocation steps and a segment roll
        files.inject(op, errno.ENOSPC)
        with pytest.raises(StorageIOError) as info:
            log.flush()
        assert info.value.errno == errno.ENOSPC
        assert log.flushed_offset == durable  # never a success it did not achieve
        assert not log.failed
        # Still readable (from memory), and appends are still accepted.
        assert bytes(log.read(0, 1 << 20)) == b"".join(first + later)
        more = _append(log, 1)
        files.clear_faults()
        assert log.flush() == log.dirty_offset
        after = files.power_loss()
        reopened = Log.open(DIR, CFG, files=after)
        assert bytes(reopened.read(0, 1 << 20)) == b"".join(first + later + more)
        reopened.close()
    finally:
        log.close()


def test_eio_on_fdatasync_fails_the_log_and_keeps_what_was_flushed() -> None:
    files, log = _open()
    first = _append(log, 4)
    durable = log.flush()
    _append(log, 2)
    files.inject("fdatasync", errno.EIO, count=1)
    with pytest.raises(StorageIOError):
        log.flush()
    assert log.failed and log.flushed_offset == durable
    # The fault is gone, but a retried fsync could lie (fsyncgate): the log refuses.
    with pytest.raises(LogFailedError):
        log.flush()
    with pytest.raises(LogFailedError):
        _append(log, 1)
    log.close()
    reopened = Log.open(DIR, CFG, files=files.power_loss())
    try:
        assert reopened.dirty_offset >= durable
        assert bytes(reopened.read(0, 1 << 20))[: sum(map(len, first))] == b"".join(first)
        _append(reopened, 1)
        assert reopened.flush() == reopened.dirty_offset
    finally:
        reopened.close()


def test_flush_coordinator_reports_the_failure_to_every_waiter() -> None:
    files, log = _open()
    try:
        _append(log, 2)
        coord = FlushCoordinator()
        handles = [coord.request(log, log.dirty_offset) for _ in range(3)]
        files.inject("pwrite", errno.EIO, count=1)
        assert coord.run_round() == 1
        for h in handles:
            assert h.done and h.result is None and isinstance(h.error, StorageError)
        # A new request after the fault clears succeeds.
        h = coord.request(log, log.dirty_offset)
        coord.run_round()
        assert h.error is None and h.result == log.dirty_offset
    finally:
        log.close()


def test_failure_creating_a_segment_is_typed_and_retryable() -> None:
    files, log = _open()
    try:
        _append(log, 1)
        files.inject("open", errno.EMFILE, count=1)
        with pytest.raises(StorageIOError):
            log.flush()
        assert log.flushed_offset == -1 and not log.failed
        assert log.flush() == log.dirty_offset
    finally:
        log.close()


def test_reopen_after_failed_fdatasync_reads_the_disk_not_the_page_cache() -> None:
    """fsyncgate: the kernel keeps serving pages it failed to write. A reopen that distrusts
    the cache recovers only what the disk holds, and never counts more as flushed."""
    files, log = _open()
    _append(log, 3)
    durable = log.flush()
    _append(log, 2)
    files.inject("fdatasync", errno.EIO, count=1)
    with pytest.raises(StorageIOError):
        log.flush()
    log.close(seal=False)
    trusting = Log.open(DIR, CFG, files=files)  # reads the unsynced pages back
    assert trusting.dirty_offset > durable
    trusting.close(seal=False)

    files2, log2 = _open()
    kept = _append(log2, 3)
    durable = log2.flush()
    _append(log2, 2)
    files2.inject("fdatasync", errno.EIO, count=1)
    with pytest.raises(StorageIOError):
        log2.flush()
    log2.close(seal=False)
    reopened = Log.open(DIR, CFG, files=files2, distrust_cache=True)
    try:
        assert reopened.dirty_offset == reopened.flushed_offset == durable
        assert bytes(reopened.read(0, 1 << 20)) == b"".join(kept)
    finally:
        reopened.close()


def test_failed_recovery_sync_closes_what_it_opened() -> None:
    files, log = _open()
    _append(log, 2)
    end = log.flush()
    log.close(seal=False)
    files.inject("fdatasync", errno.EIO, count=1)
    with pytest.raises(StorageIOError):
        Log.open(DIR, CFG, files=files)
    reopened = Log.open(DIR, CFG, files=files)  # the fault is spent: the next try succeeds
    try:
        assert reopened.dirty_offset == end
    finally:
        reopened.close()
