"""The power-loss double itself: only fdatasync'ed contents and fsync'ed names survive."""

from __future__ import annotations

import errno

import pytest

from redshank.storage import PowerLossFiles, StorageIOError


def test_only_synced_bytes_and_names_survive() -> None:
    files = PowerLossFiles()
    files.makedirs("/d")
    f = files.open("/d/a", create=True)
    f.pwrite([b"hello ", memoryview(b"world")], 0)
    assert f.pread(11, 0) == b"hello world"
    assert not files.power_loss().exists("/d/a")  # name never fsynced
    files.fsync_dir("/d")
    assert files.power_loss().open("/d/a").size() == 0  # contents never synced
    f.fdatasync()
    f.pwrite([b"WORLD"], 6)
    after = files.power_loss()
    assert after.open("/d/a").pread(100, 0) == b"hello world"
    files.rename("/d/a", "/d/b")
    assert files.power_loss().exists("/d/a")  # rename not durable yet
    files.fsync_dir("/d")
    cut = files.power_loss()
    assert cut.exists("/d/b") and not cut.exists("/d/a")


def test_torn_write_keeps_a_prefix_of_the_first_unsynced_write() -> None:
    files = PowerLossFiles()
    files.makedirs("/d")
    f = files.open("/d/a", create=True)
    files.fsync_dir("/d")
    f.pwrite([b"A" * 100], 0)
    f.fdatasync()
    f.pwrite([b"B" * 100], 100)
    seen = set()
    for seed in range(20):
        data = files.power_loss(torn=True, seed=seed).open("/d/a").pread(1000, 0)
        assert data[:100] == b"A" * 100 and set(data[100:]) <= {ord("B")}
        seen.add(len(data))
    assert len(seen) > 1


def test_injected_faults_count_down() -> None:
    files = PowerLossFiles()
    files.makedirs("/d")
    f = files.open("/d/a", create=True)
    files.inject("fdatasync", errno.EIO, count=2)
    for _ in range(2):
        with pytest.raises(StorageIOError) as info:
            f.fdatasync()
        assert info.value.errno == errno.EIO
    f.fdatasync()
    with pytest.raises(StorageIOError):
        files.open("/d/missing")
