"""Crash tests with real processes: a child appends and flushes in a loop and reports every
flushed offset; it is SIGKILLed at a random point (sometimes before or during its own recovery
of the previous crash); on reopen every reported-flushed batch is present and byte-identical,
no partial batch is visible, and the next child continues from there. Rounds are bounded
(STORAGE_CRASH_ROUNDS, default 8; STORAGE_CRASH_SEED picks the kill points)."""

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


def _run_child(directory: Path, term: int, seed: int, reports: int | None, delay: float
               ) -> tuple[int | None, int]:
    """Start a child, let it report `reports` flushes (None: do not even wait for it to open
    the log, so the kill may land inside its recovery), wait `delay`, SIGKILL it. Returns the
    offset it started from (if it said) and the last offset it reported flushed (-1: none)."""
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(directory), str(term), str(seed)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=dict(os.environ), text=True,
    )
    start: int | None = None
    flushed = -1
    try:
        assert proc.stdout is not None
        if reports is not None:
            first = proc.stdout.readline().split()
            assert first and first[0] == "start", first
            start = int(first[1])
            for _ in range(reports):
                line = proc.stdout.readline().split()
                assert line and line[0] == "flushed", line
                flushed = int(line[1])
        # A random extra moment so the kill lands anywhere: mid-append, mid-write, mid-sync,
        # mid-recovery (this randomises the kill point; nothing waits on it for correctness).
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        # Reports already sent before the kill still count: drain them.
        for rest in proc.stdout:
            parts = rest.split()
            if len(parts) == 2 and parts[0] == "flushed":
                flushed = int(parts[1])
            elif len(parts) == 2 and parts[0] == "start":
                start = int(parts[1])
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
    verified: int | None = -1  # the recovered end the parent checked, if it did
    reported = -1
    for round_no in range(ROUNDS):
        term = round_no + 1
        # Mostly normal rounds; sometimes the kill lands before or during the child's own
        # recovery, and sometimes the parent leaves the crashed log to the next child.
        kind = rng.choice(["normal", "normal", "early_kill", "no_check"])
        reports = None if kind == "early_kill" else rng.randrange(1, 30)
        delay = rng.random() * (0.3 if kind == "early_kill" else 0.004)
        start, flushed = _run_child(directory, term, rng.randrange(1 << 30), reports, delay)
        if start is not None:
            # Appends continue from the recovered end, never below anything reported.
            assert start >= reported
            if verified is not None:
                assert start == verified
        reported = max(reported, flushed)
        if kind == "no_check" and round_no != ROUNDS - 1:
            verified = None
            continue
        verified, terms = _check(directory, reported)
        assert terms <= set(range(1, term + 1))
    assert reported > 0
