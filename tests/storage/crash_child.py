"""Child process of the crash tests: append and flush in a loop, reporting each flushed offset.

    python crash_child.py DIR TERM SEED

Prints `start <dirty offset>` after opening (recovering) the log, then `flushed <offset>` after
every flush, until it is killed. Logs go to stderr so stdout carries only the reports.
"""

from __future__ import annotations

import random
import sys

import structlog
from storage_batches import batch_for_offset

from redshank.storage import Log, LogConfig

CONFIG = LogConfig(segment_bytes=64 * 1024, index_interval=4096, preallocate_step=32 * 1024)


def main(argv: list[str]) -> int:
    directory, term, seed = argv[0], int(argv[1]), int(argv[2])
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    rng = random.Random(seed)
    log = Log.open(directory, CONFIG)
    print(f"start {log.dirty_offset}", flush=True)
    while True:
        for _ in range(rng.randrange(1, 9)):
            log.append(batch_for_offset(log.dirty_offset + 1), term)
        print(f"flushed {log.flush()}", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
