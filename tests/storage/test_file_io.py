"""The real file layer: gather writes, positional reads, pre-allocation, typed errors."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from redshank.storage import OsFiles, StorageIOError


def test_gather_write_read_fallocate_truncate(tmp_path: Path) -> None:
    files = OsFiles()
    path = str(tmp_path / "f")
    f = files.open(path, create=True)
    try:
        f.fallocate(0, 1 << 20)
        assert f.size() == 1 << 20
        parts = [bytes([i % 256]) * 1000 for i in range(2000)]  # more buffers than IOV_MAX
        f.pwrite([memoryview(p) for p in parts[:1500]] + parts[1500:], 10)
        assert f.pread(2_000_000, 10) == b"".join(parts)
        assert f.pread(10, 0) == bytes(10)
        f.fdatasync()
        f.truncate(50)
        assert f.size() == 50
        assert f.pread(100, 100) == b""
    finally:
        f.close()
    files.fsync_dir(str(tmp_path))
    files.rename(path, path + "2")
    assert files.listdir(str(tmp_path)) == ["f2"]
    files.remove(path + "2")
    files.remove(path + "2")  # removing what is gone is not an error


def test_errors_are_typed_with_errno(tmp_path: Path) -> None:
    files = OsFiles()
    with pytest.raises(StorageIOError) as info:
        files.open(str(tmp_path / "missing"))
    assert info.value.errno == errno.ENOENT
    with pytest.raises(StorageIOError):
        files.fsync_dir(str(tmp_path / "nope"))
    f = files.open(str(tmp_path / "f"), create=True)
    f.close()
    with pytest.raises(StorageIOError) as info:
        f.fdatasync()
    assert info.value.errno == errno.EBADF
