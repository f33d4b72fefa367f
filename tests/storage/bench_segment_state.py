"""What rebuilding a partition's producer and transaction state costs when its log is opened:
replaying the whole log (`ProducerStateTable.replay` over every batch) against restoring the
segment snapshot below the last two segments (`<segment>.txnindex`) and replaying from there
(`actors.disk_writer.scan_producers`), on the same log of idempotent batches.

Not collected by pytest (a benchmark; figures only, never asserted). Run:

    PYTHONPATH=<worktree>/.typecheck python3 tests/storage/bench_segment_state.py [--mb 256]
        [--batch-kb 1] [--segment-mb 32]

Prints one JSON object. The page cache is warm (the log was just written); the machine is
shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time

import structlog

from redshank.actors.disk_writer import SCAN_CHUNK, scan_producers
from redshank.cluster.kafka.producer_state import ProducerStateTable
from redshank.protocol.records import BatchBuilder
from redshank.storage import Log, LogConfig
from redshank.storage.segment_state import STATE_SUFFIX


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=256)
    ap.add_argument("--batch-kb", type=int, default=1)
    ap.add_argument("--segment-mb", type=int, default=32)
    args = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    root = tempfile.mkdtemp(prefix="bench-segment-state-")
    try:
        print(json.dumps(run(root, args.mb, args.batch_kb, args.segment_mb)))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(root: str, mb: int, batch_kb: int, segment_mb: int) -> dict[str, object]:
    config = LogConfig(segment_bytes=segment_mb << 20)
    log = Log.open(root, config)
    b = BatchBuilder(producer_id=7, producer_epoch=0, base_sequence=0)
    for _ in range(batch_kb):
        b.append(b"x" * 1000, timestamp=1000)
    one = b.build()
    batches = (mb << 10) // batch_kb
    for i in range(batches):
        log.append(bytearray(one), 1)
        if i % 1024 == 1023:
            log.flush()
    log.flush()
    table, offset = ProducerStateTable(), 0  # the snapshots, as the partition leader writes
    for base, end in log.sealed_since(0):
        while offset < end:
            offset = table.replay(log.read(offset, SCAN_CHUNK, end - 1), offset)
        payload = table.segment_state(base, end)
        assert payload is not None
        log.write_segment_state(base, payload)
    log.close()
    log = Log.open(root, config)
    out: dict[str, object] = {"bench": "segment_state", "log_mb": mb, "batch_kb": batch_kb,
                              "batches": batches, "segments": len(log.segments())}
    for label in ("open_scan_ms_with_snapshots", "open_scan_ms_whole_log"):
        if label == "open_scan_ms_whole_log":
            for name in os.listdir(root):
                if name.endswith(STATE_SUFFIX):
                    os.remove(os.path.join(root, name))
        started = time.perf_counter()
        scan_producers(log)
        out[label] = round((time.perf_counter() - started) * 1000)
    log.close()
    return out


if __name__ == "__main__":
    main()
