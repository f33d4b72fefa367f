"""`redshank bench storage`: the partition log against the raw disk, measured in the same run.

Prints one JSON object (the last line of output):
- append+flush MB/s for 1 KiB records in 16 KiB, 256 KiB and 1 MiB batches (one flush per
  batch, so every batch is fdatasync'ed), each next to raw `os.write` + `os.fdatasync` of the
  same buffers into a file pre-allocated before timing; raw and log alternate in blocks (16
  per size) so load drift hits both alike; ratio = log MB/s / raw MB/s over all blocks, plus
  the median and range of per-block ratios (the log's own pre-allocation steps, segment rolls
  and CRC checks are inside its timing);
- sequential read MB/s from the batch cache, from the files with the page cache warm, and
  after evicting the segments from the page cache (reads that reach the device);
- recovery scan MB/s (CRC-checking the unsealed tail segment): the first open after the
  "crash" (also cutting the pre-allocated tail), then rescans with the file in the page cache
  and after evicting it (posix_fadvise DONTNEED);
- sparse-index lookup time with 1M batches indexed (one entry per batch), and on a real log of
  1M tiny batches: the recovery scan that builds its index and random single-batch reads.
Files live in a temporary directory that is removed at the end. `--quick` shrinks everything
(used by the test of this command). The machine is shared and noisy: compare ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable

import structlog

from redshank.protocol.record_batch import iter_batches
from redshank.protocol.records import BatchBuilder
from redshank.storage import BatchCache, Log, LogConfig, SegmentIndex
from redshank.tools.bench._progress import Phases, phase

__all__ = ["main"]

KIB = 1024
MIB = 1024 * 1024


def make_batch(batch_bytes: int, record_bytes: int = 1000) -> bytearray:
    """A magic-2 batch of ~1 KiB records filling about `batch_bytes` (random values so the
    bytes are realistic)."""
    rng = random.Random(batch_bytes)
    count = max(1, batch_bytes // (record_bytes + 24))
    builder = BatchBuilder()
    for i in range(count):
        builder.append(rng.randbytes(record_bytes), timestamp=1_700_000_000_000 + i)
    return bytearray(builder.build())


def _append_flush(directory: str, batch_bytes: int, total: int, blocks: int
                  ) -> dict[str, float | list[float]]:
    """Raw and log write the same buffers, alternating in `blocks` blocks (which side goes
    first alternates too), so drift in the machine's load hits both sides alike."""
    template = make_batch(batch_bytes)
    # Distinct buffers, written by both sides: reusing one would let raw copy from a hot cache.
    batches = [bytearray(template) for _ in range(max(blocks, total // len(template)))]
    per_block = len(batches) // blocks
    batches = batches[: per_block * blocks]
    volume = sum(map(len, batches)) / MIB
    raw_path = os.path.join(directory, "raw.bin")
    fd = os.open(raw_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    os.posix_fallocate(fd, 0, sum(map(len, batches)))
    os.fsync(fd)
    log_path = os.path.join(directory, "log")
    log = Log.open(log_path, LogConfig(segment_bytes=1024 * MIB, preallocate_step=64 * MIB))
    raw_s: list[float] = []
    log_s: list[float] = []
    try:
        for i in range(blocks):
            block = batches[i * per_block : (i + 1) * per_block]
            for side in ("raw", "log") if i % 2 == 0 else ("log", "raw"):
                start = time.perf_counter()
                if side == "raw":
                    for b in block:
                        os.write(fd, b)
                        os.fdatasync(fd)
                    raw_s.append(time.perf_counter() - start)
                else:
                    # Offsets are rewritten in place in these buffers, as a broker does with
                    # the request buffer it received; raw already wrote them.
                    for b in block:
                        log.append(b, 1)
                        log.flush()
                    log_s.append(time.perf_counter() - start)
    finally:
        os.close(fd)
        os.remove(raw_path)
        log.close()
        shutil.rmtree(log_path)
    ratios = [r / lg for r, lg in zip(raw_s, log_s, strict=True)]
    return {"batch_bytes": len(template), "mb": round(volume, 1),
            "log_mb_s": round(volume / sum(log_s), 1),
            "raw_mb_s": round(volume / sum(raw_s), 1),
            "ratio": round(sum(raw_s) / sum(log_s), 3),
            "block_ratio_median": round(statistics.median(ratios), 3),
            "block_ratio_min_max": [round(min(ratios), 3), round(max(ratios), 3)]}


def _timed(fn: Callable[[], int]) -> tuple[float, int]:
    start = time.perf_counter()
    n = fn()
    return time.perf_counter() - start, n


def _read_all(log: Log) -> int:
    offset: int = log.start_offset
    total = 0
    while offset <= log.dirty_offset:
        data = log.read(offset, MIB)
        total += len(data)
        # The next offset follows the last batch returned: walk the headers, not the records.
        last = offset
        for _pos, header in iter_batches(data, verify_crc=False):
            last = header.last_offset
        offset = last + 1
    return total


def _reads(directory: str, total: int) -> dict[str, float | str]:
    path = os.path.join(directory, "reads")
    template = make_batch(256 * KIB)
    log = Log.open(path, LogConfig(), cache=BatchCache(2 * total + 64 * MIB))
    try:
        for _ in range(max(4, total // len(template))):
            log.append(bytearray(template), 1)
        log.flush()
        secs, n = _timed(lambda: _read_all(log))
        cached = n / MIB / secs
    finally:
        log.close()
    cold = Log.open(path, LogConfig(), cache=BatchCache(0))
    try:
        secs, n = _timed(lambda: _read_all(cold))
        disk = n / MIB / secs
        # The same after evicting the segments from the page cache: reads that reach the
        # device (the eviction's own time included).
        secs, n = _timed(lambda: _evict_then_read(path, cold))
        device = n / MIB / secs
    finally:
        cold.close()
        shutil.rmtree(path)
    return {"cache_mb_s": round(cached, 1), "disk_mb_s": round(disk, 1),
            "disk_note": "disk_mb_s: files in the page cache; evicted_mb_s: after "
                         "posix_fadvise(DONTNEED) of every segment (eviction time included)",
            "evicted_mb_s": round(device, 1), "batch_bytes": len(template)}


def _evict_then_read(path: str, log: Log) -> int:
    for name in os.listdir(path):
        if name.endswith(".log"):
            fd = os.open(os.path.join(path, name), os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
    return _read_all(log)


def _recovery(directory: str, batch_bytes: int, total: int) -> dict[str, float]:
    """Write an unsealed segment (as a crash leaves it), then time the opens that scan it:
    `after_crash` (scan with CRCs + cut the pre-allocated tail + fdatasync), then the scan
    alone with the file in the page cache, then after evicting it from the page cache."""
    path = os.path.join(directory, f"recovery-{batch_bytes}")
    template = make_batch(batch_bytes)
    log = Log.open(path, LogConfig(segment_bytes=4 * total, preallocate_step=total + MIB))
    for _ in range(max(4, total // len(template))):
        log.append(bytearray(template), 1)
    log.flush()
    size = log.segments()[-1][2]
    # Close without sealing: the segment keeps its pre-allocated tail and no index.
    log.close(seal=False)
    out: dict[str, float] = {"batch_bytes": len(template), "mb": round(size / MIB, 1)}
    for label in ("after_crash", "page_cache", "cold"):
        if label == "cold":
            name = next(n for n in os.listdir(path) if n.endswith(".log"))
            fd = os.open(os.path.join(path, name), os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)
        index = next((n for n in os.listdir(path) if n.endswith(".index")), None)
        if index:
            os.remove(os.path.join(path, index))
        start = time.perf_counter()
        again = Log.open(path, LogConfig(segment_bytes=4 * total))
        secs = time.perf_counter() - start
        assert again.dirty_offset == log.dirty_offset
        again.close(seal=False)  # unsealed again for the next measurement
        out[f"{label}_mb_s"] = round(size / MIB / secs, 1)
    shutil.rmtree(path)
    return out


def _index(entries: int, lookups: int) -> dict[str, float]:
    index = SegmentIndex(0, 1)  # one entry per batch: the worst case for a sparse index
    for i in range(entries):
        index.add(i, i, i * 1024, 1024, 1_700_000_000_000 + i)
    rng = random.Random(1)
    offsets = [rng.randrange(entries) for _ in range(lookups)]
    start = time.perf_counter()
    for off in offsets:
        index.lookup(off)
    per_offset = (time.perf_counter() - start) / lookups
    stamps = [1_700_000_000_000 + o for o in offsets]
    start = time.perf_counter()
    for ts in stamps:
        index.lookup_timestamp(ts)
    per_ts = (time.perf_counter() - start) / lookups
    return {"entries": entries, "offset_lookup_us": round(per_offset * 1e6, 2),
            "timestamp_lookup_us": round(per_ts * 1e6, 2),
            "memory_mb": round(len(index.encode(0)) / MIB, 1)}


def _log_at_scale(directory: str, batches: int, lookups: int) -> dict[str, float]:
    """A segment of `batches` one-record batches (~100 bytes: the worst case per byte) written
    as a crash leaves it, then: the recovery that scans it and builds the sparse index (32 KiB
    interval), and random `read(offset, 1)` calls (index bisect + header walk + pread)."""
    path = os.path.join(directory, "scale")
    os.makedirs(path)
    one = make_batch(60, record_bytes=30)
    blob = bytearray(bytes(one) * batches)
    for i in range(batches):
        struct.pack_into(">q", blob, i * len(one), i)
    with open(os.path.join(path, "00000000000000000000-1.log"), "wb") as f:
        f.write(blob)
    del blob
    start = time.perf_counter()
    log = Log.open(path, LogConfig(segment_bytes=4 * batches * len(one)), cache=BatchCache(0))
    recovery = time.perf_counter() - start
    try:
        assert log.dirty_offset == batches - 1
        rng = random.Random(2)
        offsets = [rng.randrange(batches) for _ in range(lookups)]
        start = time.perf_counter()
        for off in offsets:
            log.read(off, 1)
        per_read = (time.perf_counter() - start) / lookups
    finally:
        log.close()
        shutil.rmtree(path)
    return {"batches": batches, "batch_bytes": len(one),
            "recovery_s": round(recovery, 2),
            "recovery_mb_s": round(batches * len(one) / MIB / recovery, 1),
            "random_read_us": round(per_read * 1e6, 1)}


def _run(quick: bool, parent: str | None) -> dict[str, object]:
    directory = tempfile.mkdtemp(prefix="redshank-bench-storage-", dir=parent)
    try:
        sizes = {"16KiB": (16 * KIB, 2 * MIB if quick else 8 * MIB),
                 "256KiB": (256 * KIB, 4 * MIB if quick else 96 * MIB),
                 "1MiB": (MIB, 4 * MIB if quick else 128 * MIB)}
        blocks = 2 if quick else 16
        appends = {}
        for name, (b, total) in sizes.items():
            phase(f"append+flush, {name} batches")
            appends[name] = _append_flush(directory, b, total, blocks)
        phase("sequential reads")
        reads = _reads(directory, 8 * MIB if quick else 128 * MIB)
        phase("recovery scans")
        recovery = {"16KiB": _recovery(directory, 16 * KIB, 4 * MIB if quick else 128 * MIB),
                    "1MiB": _recovery(directory, MIB, 4 * MIB if quick else 128 * MIB)}
        phase("index lookups")
        index = _index(10_000 if quick else 1_000_000, 10_000 if quick else 200_000)
        phase("a log of 1M batches")
        scale = _log_at_scale(directory, 10_000 if quick else 1_000_000,
                              1_000 if quick else 5_000)
        phase("cleaning up")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return {"append_flush": appends, "read": reads, "recovery_scan": recovery,
            "index_lookup": index, "log_at_1m_batches": scale}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="redshank bench storage", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds, for tests)")
    parser.add_argument("--dir", default=None, help="parent of the temporary directory")
    args = parser.parse_args(argv)
    # Storage logs (segment_rolled...) go to stderr: stdout carries the JSON only.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    if args.dir is not None and not os.path.isdir(args.dir):
        parser.error(f"--dir {args.dir}: no such directory")
    started = time.perf_counter()
    with Phases("bench storage"):
        result = _run(args.quick, args.dir)
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["note"] = ("ratios matter: 2 shared cores and other work on the machine; raw = "
                      "os.write+os.fdatasync into a pre-allocated file, same bytes, same run")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
