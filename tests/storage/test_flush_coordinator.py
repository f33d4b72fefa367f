"""Flush coalescing: one round flushes each log once for all its waiters; requests made while a
round runs join the next one; waiters resolve by offset; already-durable requests resolve at
once; callbacks fire exactly once."""

from __future__ import annotations

import threading
from pathlib import Path

from storage_batches import batch_for_offset

from redshank.storage import FlushCoordinator, FlushHandle, KvStore, Log, StorageError


class _CountingLog:
    """A Flushable whose flush blocks until released, to control what overlaps a round."""

    def __init__(self) -> None:
        self.dirty = 0
        self.flushed_offset = 0
        self.flushes = 0
        self.entered = threading.Event()
        self.release = threading.Event()

    def flush(self) -> int:
        self.flushes += 1
        target = self.dirty
        self.entered.set()
        assert self.release.wait(10)
        self.flushed_offset = target
        return target


def test_one_round_covers_many_logs_and_waiters(tmp_path: Path) -> None:
    logs = [Log.open(str(tmp_path / f"p{i}")) for i in range(4)]
    try:
        coord = FlushCoordinator()
        handles = []
        for log in logs:
            for _ in range(3):
                log.append(batch_for_offset(log.dirty_offset + 1), 1)
                handles.append(coord.request(log, log.dirty_offset))
        assert coord.pending() == 12
        assert coord.run_round() == 4
        assert coord.rounds == 1 and coord.flushes == 4
        assert all(h.done and h.error is None for h in handles)
        assert all(log.flushed_offset == log.dirty_offset for log in logs)
        # Already durable: resolved at once, no round needed.
        h = coord.request(logs[0], logs[0].dirty_offset)
        assert h.done and h.result == logs[0].dirty_offset and coord.pending() == 0
    finally:
        for log in logs:
            log.close()


def test_request_during_a_round_joins_the_next_one() -> None:
    target = _CountingLog()
    coord = FlushCoordinator()
    target.dirty = 5
    first = coord.request(target, 5)
    writer = threading.Thread(target=coord.run_round)
    writer.start()
    try:
        assert target.entered.wait(10)
        target.dirty = 9
        late = [coord.request(target, 9) for _ in range(5)]
        assert coord.pending() == 5 and not any(h.done for h in late)
    finally:
        target.release.set()
        writer.join(10)
    assert first.result == 5 and not any(h.done for h in late)
    assert coord.run_round() == 1
    assert target.flushes == 2 and all(h.result == 9 for h in late)


def test_callbacks_fire_once_and_uncovered_offsets_fail() -> None:
    target = _CountingLog()
    target.release.set()
    coord = FlushCoordinator()
    seen: list[FlushHandle] = []
    target.dirty = 3
    ok = coord.request(target, 3, seen.append)
    too_far = coord.request(target, 10, seen.append)
    coord.run_round()
    assert seen == [ok, too_far]
    assert ok.result == 3 and isinstance(too_far.error, StorageError)
    late: list[FlushHandle] = []
    ok.add_done_callback(late.append)  # added after completion: runs at once
    assert late == [ok]


def test_serve_loop_with_concurrent_requesters_and_kvstore(tmp_path: Path) -> None:
    log = Log.open(str(tmp_path / "log"))
    kv = KvStore.open(str(tmp_path / "kv"))
    coord = FlushCoordinator()
    stop = threading.Event()
    writer = threading.Thread(target=coord.serve, args=(stop,))
    writer.start()
    try:
        handles = []
        for i in range(200):
            log.append(batch_for_offset(log.dirty_offset + 1), 1)
            handles.append(coord.request(log, log.dirty_offset))
            handles.append(coord.request(kv, kv.put(b"k%d" % (i % 7), b"v%d" % i)))
        assert all(h.wait(30) for h in handles)
        assert all(h.error is None and h.result is not None and h.result >= h.offset
                   for h in handles)
        # Coalescing happened: far fewer flushes than requests.
        assert coord.flushes < len(handles)
    finally:
        stop.set()
        coord.wake()
        writer.join(10)
        log.close()
        kv.close()


def test_claim_kick_once_per_round() -> None:
    coord = FlushCoordinator()
    a, b = _CountingLog(), _CountingLog()
    a.release.set()
    b.release.set()
    a.dirty = b.dirty = 5
    assert not coord.claim_kick()  # nothing queued
    coord.request(a, 5)
    assert coord.claim_kick()
    coord.request(b, 5)
    assert not coord.claim_kick()  # the round already asked for takes b too
    assert coord.run_round() == 2
    assert not coord.claim_kick()
    a.dirty = 6
    coord.request(a, 6)
    assert coord.claim_kick()  # a new round
