"""The loop-thread / writer-thread hand-off under real concurrency: one thread appends and
reads from memory while another flushes (through the FlushCoordinator) and reads from disk;
every offset is readable the moment append returns, flushed offsets only grow, and the reopened
log holds every batch byte for byte."""

from __future__ import annotations

import random
import threading
from pathlib import Path

from storage_batches import batch_for_offset

from redshank.protocol.record_batch import iter_batches
from redshank.storage import BatchCache, FlushCoordinator, FlushHandle, Log, LogConfig

CFG = LogConfig(segment_bytes=64 * 1024, index_interval=4096, preallocate_step=32 * 1024)


def test_appends_race_flushes_and_reads(tmp_path: Path) -> None:
    log = Log.open(str(tmp_path), CFG, cache=BatchCache(256 * 1024))
    coord = FlushCoordinator()
    stop = threading.Event()
    errors: list[BaseException] = []
    flushed_seen: list[int] = []
    stored: list[bytes] = []
    bases: list[int] = []
    rng = random.Random(5)

    def writer() -> None:
        try:
            while not stop.is_set():
                if coord.wait_for_requests(0.01):
                    coord.run_round()
                    flushed_seen.append(log.flushed_offset)
                    # Reads on the writer thread (disk, cache, memory) while appends continue
                    # agree byte for byte with what was appended.
                    known = len(stored)
                    if known:
                        i = rng.randrange(known)
                        data = bytes(log.read(bases[i], 64 * 1024))
                        ref = b"".join(stored[i:known])
                        assert data[: len(ref)] == ref[: len(data)]
                        assert len(list(iter_batches(data))) >= 1
        except BaseException as exc:  # reported to the main thread below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    handles: list[FlushHandle] = []
    try:
        for i in range(1500):
            buf = batch_for_offset(log.dirty_offset + 1)
            res = log.append(buf, 1 + i // 500)
            bases.append(res.base_offset)  # before `stored`: the writer reads bases[i]
            stored.append(bytes(buf))
            # Readable at once, without the disk, whatever the writer is doing.
            got = log.read_cached(res.base_offset, 1)
            assert got is not None and bytes(got) == stored[-1]
            if i % 5 == 0:
                handles.append(coord.request(log, res.last_offset))
        handles.append(coord.request(log, log.dirty_offset))
        assert all(h.wait(60) for h in handles)
        assert all(h.error is None for h in handles)
    finally:
        stop.set()
        coord.wake()
        thread.join(30)
    assert not errors, errors
    assert flushed_seen == sorted(flushed_seen)
    assert log.flushed_offset == log.dirty_offset
    assert len(log.segments()) > 3
    log.close()
    reopened = Log.open(str(tmp_path), CFG)
    try:
        assert bytes(reopened.read(0, 1 << 30)) == b"".join(stored)
    finally:
        reopened.close()
