"""One sync for a whole flush round: `sync_all` covers many real files with one syncfs(2),
called on the file opened first, and fails them all when it fails; a `FlushCoordinator` round
writes every log first and syncs them together, kvstores before logs; a failed shared sync
fails every log it covered, and none of them claims an offset it did not make durable;
kernels whose syncfs cannot report writeback errors are not trusted with it; the fault layer
joins a shared sync only when told to fail or slow it ("syncfs"), and then fails the group."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from storage_batches import batch_for_offset

from redshank.storage import FlushCoordinator, KvStore, Log, LogFailedError, StorageError, file_io
from redshank.storage.fault_files import FaultFiles
from redshank.storage.file_io import Buffer, FileHandle, OsFiles, sync_all

pytestmark = pytest.mark.skipif(file_io._syncfs is None, reason="needs Linux 5.8 or later")


@pytest.fixture
def syncfs_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Every syncfs the storage layer makes (the real call still runs)."""
    real = file_io._syncfs
    assert real is not None
    calls: list[int] = []

    def counted(fd: int) -> int:
        calls.append(fd)
        return real(fd)

    monkeypatch.setattr(file_io, "_syncfs", counted)
    yield calls


def _failing_syncfs(err: int) -> Callable[[int], int]:
    def fail(_fd: int) -> int:
        ctypes.set_errno(err)
        return -1
    return fail


def test_many_files_one_syncfs_one_file_fdatasync(tmp_path: Path, syncfs_calls: list[int]
                                                  ) -> None:
    files = OsFiles()
    handles = [files.open(str(tmp_path / f"f{i}"), create=True) for i in range(3)]
    try:
        for h in handles:
            h.pwrite([b"x" * 100], 0)
        # Through the file opened first, whatever the order: errors since its opening are
        # reported, which covers everything the others hold.
        assert sync_all(handles[::-1]) == [None, None, None]
        assert syncfs_calls == [handles[0].fd]
        assert sync_all(handles[:1]) == [None]  # one file: its own fdatasync
        assert len(syncfs_calls) == 1
    finally:
        for h in handles:
            h.close()


def test_a_failed_syncfs_fails_every_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    monkeypatch.setattr(file_io, "_syncfs", _failing_syncfs(errno.EIO))
    files = OsFiles()
    handles = [files.open(str(tmp_path / f"f{i}"), create=True) for i in range(2)]
    try:
        outcomes = sync_all(handles)
        assert len(outcomes) == 2
        for out in outcomes:
            assert out is not None and out.errno == errno.EIO and "syncfs" in str(out)
    finally:
        for h in handles:
            h.close()


def test_syncfs_retried_after_eintr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = file_io._syncfs
    assert real is not None
    results = iter([_failing_syncfs(errno.EINTR), real])
    monkeypatch.setattr(file_io, "_syncfs", lambda fd: next(results)(fd))
    files = OsFiles()
    handles = [files.open(str(tmp_path / f"f{i}"), create=True) for i in range(2)]
    try:
        assert sync_all(handles) == [None, None]
    finally:
        for h in handles:
            h.close()


def test_old_kernels_get_fdatasync(monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.uname()
    monkeypatch.setattr(os, "uname", lambda: os.uname_result(
        (real.sysname, real.nodename, "5.4.0-150-generic", real.version, real.machine)))
    assert file_io._syncfs_call() is None
    monkeypatch.setattr(os, "uname", lambda: os.uname_result(
        (real.sysname, real.nodename, "5.8.0", real.version, real.machine)))
    assert file_io._syncfs_call() is not None


def _logs(tmp_path: Path, n: int) -> list[Log]:
    return [Log.open(str(tmp_path / f"p{i}")) for i in range(n)]


def test_a_round_of_many_logs_takes_one_syncfs(tmp_path: Path, syncfs_calls: list[int]
                                              ) -> None:
    logs = _logs(tmp_path, 4)
    try:
        coord = FlushCoordinator()
        handles = []
        for log in logs:
            for _ in range(2):
                log.append(batch_for_offset(log.dirty_offset + 1), 1)
                handles.append(coord.request(log, log.dirty_offset))
        ends = [log.dirty_offset for log in logs]
        assert coord.run_round() == 4
        assert len(syncfs_calls) == 1 and coord.flushes == 4
        assert all(h.done and h.error is None for h in handles)
        assert [log.flushed_offset for log in logs] == ends
    finally:
        for log in logs:
            log.close()
    reopened = _logs(tmp_path, 4)
    try:
        assert [log.dirty_offset for log in reopened] == ends
    finally:
        for log in reopened:
            log.close()


def test_a_failed_round_sync_fails_every_log_it_covered(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    logs = _logs(tmp_path, 3)
    try:
        coord = FlushCoordinator()
        for log in logs:
            log.append(batch_for_offset(0), 1)
            coord.request(log, 0)
        assert coord.run_round() == 3  # durable: offset 0 everywhere
        for log in logs[:2]:
            log.append(batch_for_offset(1), 1)
        handles = [coord.request(log, 1) for log in logs[:2]]
        monkeypatch.setattr(file_io, "_syncfs", _failing_syncfs(errno.EIO))
        assert coord.run_round() == 2
        for h in handles:
            assert h.done and h.result is None and h.error is not None
        for log in logs[:2]:
            assert log.failed and log.flushed_offset == 0  # nothing claimed beyond the sync
            with pytest.raises(LogFailedError):
                log.flush()
        assert not logs[2].failed  # not in the failed round
    finally:
        for log in logs:
            log.close(seal=False)


class _Recorded:
    """A real file whose writes and syncs are recorded in order (not an OsFile: synced by its
    own fdatasync, which is what lets the order be seen)."""

    def __init__(self, inner: FileHandle, path: str, trace: list[tuple[str, str]]) -> None:
        self._inner, self.path, self._trace = inner, path, trace

    def pwrite(self, buffers: Sequence[Buffer], pos: int) -> None:
        self._trace.append(("pwrite", self.path))
        self._inner.pwrite(buffers, pos)

    def pread(self, size: int, pos: int) -> bytes:
        return self._inner.pread(size, pos)

    def fdatasync(self) -> None:
        self._trace.append(("fdatasync", self.path))
        self._inner.fdatasync()

    def fallocate(self, pos: int, length: int) -> None:
        self._inner.fallocate(pos, length)

    def truncate(self, size: int) -> None:
        self._inner.truncate(size)

    def size(self) -> int:
        return self._inner.size()

    def close(self) -> None:
        self._inner.close()


class _RecordingFiles(OsFiles):
    def __init__(self) -> None:
        self.trace: list[tuple[str, str]] = []

    def open(self, path: str, *, create: bool = False) -> _Recorded:  # type: ignore[override]
        return _Recorded(super().open(path, create=create), path, self.trace)


def test_kvstores_durable_before_any_log_of_the_round_is_written(tmp_path: Path) -> None:
    files = _RecordingFiles()
    log = Log.open(str(tmp_path / "p0"), files=files)
    kv = KvStore.open(str(tmp_path / "p0" / "raft"), files=files)
    try:
        coord = FlushCoordinator()
        log.append(batch_for_offset(0), 1)
        kv.put(b"k", b"v")
        files.trace.clear()
        hl = coord.request(log, 0)  # asked first, yet written after the kvstore's sync
        hk = coord.request(kv, kv.dirty_offset)
        assert coord.run_round() == 2
        assert hl.error is None and hk.error is None
        kinds = [(op, "raft" in path) for op, path in files.trace]
        assert kinds.index(("fdatasync", True)) < kinds.index(("pwrite", False))
    finally:
        kv.close()
        log.close()


def _fault_files(tmp_path: Path, spec: dict[str, object]) -> FaultFiles:
    control = tmp_path / "faults.json"
    control.write_text(json.dumps(spec))
    return FaultFiles(OsFiles(), str(control))


def test_the_fault_layer_joins_the_shared_sync_only_for_syncfs_faults(
        tmp_path: Path, syncfs_calls: list[int]) -> None:
    files = _fault_files(tmp_path, {"match": "/f", "fail": {"fdatasync": "EIO"}})
    handles = [files.open(str(tmp_path / f"f{i}"), create=True) for i in range(2)]
    other = files.open(str(tmp_path / "g"), create=True)
    try:
        # fdatasync faults: one file at a time, as before (no syncfs).
        outcomes = sync_all([*handles, other])
        assert [o is not None and o.errno == errno.EIO for o in outcomes] == [True, True, False]
        assert syncfs_calls == []
        # A syncfs fault: the matching files share one syncfs, and its failure fails them all;
        # a file the faults do not match keeps its own fdatasync.
        (tmp_path / "faults.json").write_text(json.dumps(
            {"match": "/f", "fail": {"syncfs": "EIO"}}))
        outcomes = sync_all([*handles, other])
        assert [o is not None and o.errno == errno.EIO for o in outcomes] == [True, True, False]
        assert syncfs_calls == []  # the injected failure came before the call
        (tmp_path / "faults.json").write_text(json.dumps(
            {"match": "/f", "delay_ms": {"syncfs": 1}}))
        assert sync_all([*handles, other]) == [None, None, None]
        assert len(syncfs_calls) == 1
    finally:
        for h in [*handles, other]:
            h.close()


def test_an_unexpected_error_in_a_sync_releases_the_flush_lock(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = Log.open(str(tmp_path / "p0"))
    try:
        log.append(batch_for_offset(0), 1)

        def broken(_handles: Sequence[FileHandle]) -> list[StorageError | None]:
            raise RuntimeError("a bug in the sync")

        monkeypatch.setattr(file_io, "sync_all", broken)
        with pytest.raises(RuntimeError):
            log.flush()
        # The lock was released (no hang) and the log counts as failed: nothing claimed.
        done = threading.Event()
        outcome: list[BaseException] = []

        def again() -> None:
            try:
                log.flush()
            except BaseException as exc:
                outcome.append(exc)
            done.set()

        threading.Thread(target=again, daemon=True).start()
        assert done.wait(10), "the flush lock stayed held"
        assert len(outcome) == 1 and isinstance(outcome[0], LogFailedError)
        assert log.flushed_offset == -1
    finally:
        log.close(seal=False)
