"""The kvstore: puts and deletes survive reopen and power loss once flushed, snapshots rotate
the WAL atomically, a torn WAL tail is cut, and every crash point during a snapshot recovers
the same state."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from redshank.storage import KvStore, LogFailedError, PowerLossFiles, StorageError


def test_put_get_delete_survive_reopen(tmp_path: Path) -> None:
    kv = KvStore.open(str(tmp_path))
    assert kv.put(b"term", b"\x00\x05") == 1
    kv.put(b"vote", b"n1")
    kv.delete(b"vote")
    kv.put(b"a/1", b"x")
    assert kv.get(b"term") == b"\x00\x05" and kv.get(b"vote") is None
    assert kv.flushed_offset == 0 and kv.dirty_offset == 4
    assert kv.flush() == 4
    kv.close()
    kv = KvStore.open(str(tmp_path))
    try:
        assert kv.items() == [(b"a/1", b"x"), (b"term", b"\x00\x05")]
        assert kv.items(b"a/") == [(b"a/1", b"x")]
        assert kv.put(b"b", b"y") == 5
    finally:
        kv.close()
    with pytest.raises(ValueError):
        KvStore.open(str(tmp_path)).put(b"k" * 70_000, b"")


def test_snapshots_rotate_the_wal(tmp_path: Path) -> None:
    kv = KvStore.open(str(tmp_path), snapshot_bytes=2000)
    try:
        for i in range(300):
            kv.put(b"key%d" % (i % 10), b"value%d" % i)
            kv.flush()
        names = sorted(p.name for p in tmp_path.iterdir())
        assert "snapshot" in names and len([n for n in names if n.startswith("wal-")]) == 1
    finally:
        kv.close()
    kv = KvStore.open(str(tmp_path))
    try:
        assert kv.get(b"key9") == b"value299" and len(kv.items()) == 10
        assert kv.dirty_offset == 300
    finally:
        kv.close()


def _files_with_state(n: int) -> PowerLossFiles:
    files = PowerLossFiles()
    files.makedirs("/kv")
    kv = KvStore.open("/kv", files=files, snapshot_bytes=1 << 30)
    for i in range(n):
        kv.put(b"k%d" % i, b"v%d" % i)
    kv.flush()
    return files


def test_power_loss_keeps_flushed_and_drops_unflushed() -> None:
    files = PowerLossFiles()
    files.makedirs("/kv")
    kv = KvStore.open("/kv", files=files)
    kv.put(b"a", b"1")
    kv.flush()
    kv.put(b"b", b"2")  # never flushed
    back = KvStore.open("/kv", files=files.power_loss())
    assert back.items() == [(b"a", b"1")]


def test_torn_wal_tail_is_cut_and_appends_follow() -> None:
    files = PowerLossFiles()
    files.makedirs("/kv")
    kv = KvStore.open("/kv", files=files)
    kv.put(b"a", b"1")
    kv.flush()
    kv.put(b"b", b"2" * 500)
    files.inject("fdatasync", count=1)
    with pytest.raises(StorageError):
        kv.flush()
    with pytest.raises(LogFailedError):
        kv.put(b"c", b"3")
    for seed in range(10):
        back = KvStore.open("/kv", files=files.power_loss(torn=True, seed=seed))
        assert back.get(b"a") == b"1"
        assert back.get(b"b") in (None, b"2" * 500)
        back.put(b"c", b"3")
        back.flush()
        assert back.get(b"c") == b"3"


@pytest.mark.parametrize("fail_at", ["open", "rename", "remove"])
def test_crash_during_snapshot_recovers_the_same_state(fail_at: str) -> None:
    files = _files_with_state(50)
    kv = KvStore.open("/kv", files=files, snapshot_bytes=1)  # next flush snapshots
    kv.put(b"last", b"!")
    # "open" fails creating the next WAL, "rename" before the snapshot is in place, "remove"
    # after it is (the old WAL lingers). Then the power goes.
    files.inject(fail_at, errno.EIO, count=1)
    with pytest.raises(StorageError):
        kv.flush()
    rebooted = files.power_loss()
    back = KvStore.open("/kv", files=rebooted)
    want = {b"k%d" % i: b"v%d" % i for i in range(50)} | {b"last": b"!"}
    assert dict(back.items()) == want
    # The recovered store keeps working, snapshots included, across another power cut.
    back.put(b"after", b"x")
    back.flush()
    again = KvStore.open("/kv", files=rebooted.power_loss())
    assert dict(again.items()) == want | {b"after": b"x"}
