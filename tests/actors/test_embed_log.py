"""`embed.Log` and `embed.OffsetStore`: the broker's storage as a library, durability included."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from redshank.actors import embed
from redshank.storage import OffsetOutOfRangeError

pytestmark = pytest.mark.timeout(60)


def test_append_read_flush_and_reopen(tmp_path: Path) -> None:
    with embed.Log.open(tmp_path / "log") as log:
        assert (log.start_offset, log.end_offset, log.flushed_offset) == (0, 0, -1)
        assert log.append(b"one", key=b"k", headers=[("h", b"v")], timestamp_ms=5) == 0
        assert log.append_batch([b"two", (b"k3", b"three"), (None, None)]) == 3
        assert log.read(0)[0] == embed.Record(0, 5, b"k", b"one", (("h", b"v"),))
        assert [r.value for r in log.read(1)] == [b"two", b"three", None]  # before any flush
        assert [r.offset for r in log.read(2, max_records=1)] == [2]
        assert log.read(4) == []
        assert log.flush() == 3 and log.flushed_offset == 3
        with pytest.raises(ValueError):
            log.append_batch([])
    with embed.Log.open(tmp_path / "log") as log:
        assert log.end_offset == 4
        assert [r.value for r in log.read(0)] == [b"one", b"two", b"three", None]
        assert log.append(b"five") == 4


def test_reads_span_segments_and_refuse_offsets_below_the_start(tmp_path: Path) -> None:
    with embed.Log.open(tmp_path / "log", segment_bytes=4096) as log:
        for i in range(200):
            log.append(b"x" * 100 + str(i).encode())
        log.flush()
        got = []
        offset = 0
        while batch := log.read(offset, max_records=7):
            got += [r.offset for r in batch]
            offset = batch[-1].offset + 1
        assert got == list(range(200))
        with pytest.raises(OffsetOutOfRangeError):
            log.read(-1)


def test_one_open_log_per_directory(tmp_path: Path) -> None:
    with embed.Log.open(tmp_path / "log"), pytest.raises(embed.LogBusyError):
        embed.Log.open(tmp_path / "log")
    embed.Log.open(tmp_path / "log").close()  # released on close


def test_flushed_records_survive_a_killed_process(tmp_path: Path) -> None:
    """SIGKILL right after flush (+ more unflushed appends): every flushed record is there."""
    program = textwrap.dedent(f"""
        import os, signal
        from redshank.actors import embed
        log = embed.Log.open({str(tmp_path / "log")!r})
        for i in range(100):
            log.append(str(i).encode())
        log.flush()
        for i in range(100, 150):
            log.append(str(i).encode())
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", program], env={**os.environ}, timeout=30,
                          capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    with embed.Log.open(tmp_path / "log") as log:
        values = [int(r.value or b"") for r in log.read(0, max_records=1000)]
        assert values[:100] == list(range(100))
        assert values == list(range(len(values)))  # a prefix: nothing out of order or torn


def test_offset_store_commits_durably(tmp_path: Path) -> None:
    with embed.OffsetStore.open(tmp_path / "offsets") as store:
        assert store.get("g") is None and store.get("g", 0) == 0
        store.commit("g", 7)
        store.commit("h", 1)
        store.commit("g", 9)
        with pytest.raises(embed.LogBusyError):
            embed.OffsetStore.open(tmp_path / "offsets")
    with embed.OffsetStore.open(tmp_path / "offsets") as store:
        assert (store.get("g"), store.get("h")) == (9, 1)
