"""Segment state files (`<segment>.txnindex`): written for sealed segments only, read back
after a restart, refused when damaged, removed with their segment by retention and
DeleteRecords, removed when truncation moves their segment's end, and orphans cleaned at
open."""

from __future__ import annotations

import os
from pathlib import Path

from redshank.protocol.records import BatchBuilder
from redshank.storage import Log, LogConfig
from redshank.storage.segment_state import STATE_SUFFIX

CONFIG = LogConfig(segment_bytes=300)


def fill(log: Log, batches: int) -> None:
    for i in range(batches):
        b = BatchBuilder()
        b.append(b"x" * 150, timestamp=1000 + i)
        log.append(bytearray(b.build()), 1)
        log.flush()


def states(path: Path) -> list[str]:
    return sorted(n for n in os.listdir(path) if n.endswith(STATE_SUFFIX))


def test_written_for_sealed_segments_and_read_after_restart(tmp_path: Path) -> None:
    log = Log.open(str(tmp_path), CONFIG)
    fill(log, 6)
    sealed = log.sealed_since(0)
    assert len(sealed) >= 3 and sealed[0][0] == 0
    for base, end in sealed:
        assert log.write_segment_state(base, b"state-%d-%d" % (base, end))
    active = log.segments()[-1][0]
    assert not log.write_segment_state(active, b"no")  # the active segment has none
    assert log.sealed_since(sealed[-1][0]) == sealed[-1:]
    log.close()
    log = Log.open(str(tmp_path), CONFIG)
    got = log.segment_states()
    assert [(b, e, p) for b, e, p in got[:-1]] == [
        (b, e, b"state-%d-%d" % (b, e)) for b, e in sealed]
    assert got[-1][2] is None
    log.close()


def test_a_damaged_file_reads_as_none(tmp_path: Path) -> None:
    log = Log.open(str(tmp_path), CONFIG)
    fill(log, 4)
    base = log.sealed_since(0)[0][0]
    assert log.write_segment_state(base, b"payload")
    name = states(tmp_path)[0]
    with open(tmp_path / name, "r+b") as f:
        f.seek(9)
        f.write(b"X")
    assert log.segment_states()[0][2] is None
    log.close()


def test_removed_with_their_segments_by_retention_and_truncation(tmp_path: Path) -> None:
    log = Log.open(str(tmp_path), CONFIG)
    fill(log, 8)
    sealed = log.sealed_since(0)
    for base, _end in sealed:
        log.write_segment_state(base, b"s")
    assert len(states(tmp_path)) == len(sealed)
    log.truncate_prefix(sealed[1][0])  # DeleteRecords / retention: the first segment goes
    assert len(states(tmp_path)) == len(sealed) - 1
    log.truncate(sealed[-1][0] + 1)  # into the last sealed one: it is active again
    assert len(states(tmp_path)) == len(sealed) - 2
    assert log.segment_states()[-1][2] is None
    log.close()


def test_orphans_are_removed_at_open(tmp_path: Path) -> None:
    log = Log.open(str(tmp_path), CONFIG)
    fill(log, 2)
    log.close()
    (tmp_path / f"{10**9:020d}-1{STATE_SUFFIX}").write_bytes(b"orphan")
    Log.open(str(tmp_path), CONFIG).close()
    assert states(tmp_path) == []
