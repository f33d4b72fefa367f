"""Crash tests with real processes: a child appends and flushes in a loop and reports every
flushed offset; it is SIGKILLed at a random point; on reopen every reported-flushed batch is
present and byte-identical, no partial batch is visible, and the next child continues from
there. Rounds are bounded (STORAGE_CRASH_ROUNDS, default 8)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from storage_batches import batch_for_offset

from redshank.protocol.record_batch import iter_batches
from redshank.storage import Log

CHILD = Path(__file__).resolve().parent / "crash_child.py"
ROUNDS = int(os.environ.get("STORAGE_CRASH_ROUNDS", "8"))


def _run_child(directory: Path, term: int, seed: int, reports: int, delay: float
               ) -> tuple[int, int]:
    """Start a child, let it report `reports` flushes, wait `delay`, SIGKILL it. Returns the
    offset it started from and the last offset it reported flushed."""
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(directory), str(term), str(seed)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=dict(os.environ), text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().split()
        assert first and first[0] == "start", first
        start = int(first[1])
        flushed = start
        for _ in range(reports):
            line = proc.stdout.readline().split()
            assert line and line[0] == "flushed", line
            flushed = int(line[1])
        # A random extra moment so the kill lands anywhere: mid-append, mid-write, mid-sync.
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        # Reports already sent before the kill still count: drain them.
        for rest in proc.stdout:
            parts = rest.split()
            if len(parts) == 2 and parts[0] == "flushed":
                flushed = int(parts[1])
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return start, flushed


def _check(directory: Path, reported: int) -> tuple[int, set[int]]:
    """Verify the recovered log; returns its dirty offset and the terms seen."""
    log = Log.open(str(directory))
    try:
        assert log.dirty_offset >= reported
        data = bytes(log.read(0, 1 << 30)) if log.dirty_offset >= 0 else b""
        expect = 0
        terms = set()
        for pos, h in iter_batches(data):  # raises on any partial or corrupt batch
            assert h.base_offset == expect
            want = bytes(batch_for_offset(expect))
            got = data[pos : pos + h.size]
            # Byte-identical apart from the partitionLeaderEpoch the log stamped (the term).
            assert got[:12] + got[16:] == want[:12] + want[16:]
            assert h.partition_leader_epoch == log.term_at(h.base_offset)
            terms.add(h.partition_leader_epoch)
            expect = h.last_offset + 1
        assert expect - 1 == log.dirty_offset
        return log.dirty_offset, terms
    finally:
        log.close()


def test_sigkill_never_loses_a_reported_flush(tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("STORAGE_CRASH_SEED", "7")))
    directory = tmp_path / "log"
    dirty = -1
    reported = -1
    for round_no in range(ROUNDS):
        term = round_no + 1
        start, flushed = _run_child(directory, term, rng.randrange(1 << 30),
                                    rng.randrange(1, 30), rng.random() * 0.004)
        # Appends continue from the recovered end of the previous round.
        assert start == dirty
        reported = max(reported, flushed)
        dirty, terms = _check(directory, reported)
        assert terms <= set(range(1, term + 1))
    assert reported > 0
