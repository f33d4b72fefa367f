"""Startup recovery of a core's partitions, told in the broker's log (issue 15).

Concern: which partition directories this core found on disk when it started, and how far the
opens (log recovery, Raft kvstore load, producer scan: the disk writer's `OpenPartition`) of
those directories have come. Lines, at INFO, on the core's logger:

- `recovery_started` partitions=M (only when M > 0);
- `recovery_progress` recovered=N of=M mb=X, at most every `PROGRESS_EVERY_S` seconds or
  at each tenth of M, whichever comes first;
- `recovery_done` partitions=M mb=X open_s (seconds spent opening) seconds (since start).

Which core owns a directory: a single-node partition `<topic>-<p>` lives on
`assign_cores(topic, ...)[p]`; a replica directory (cluster mode, `<topic>-<p>-<16 hex>`)
is placed by the controller backend, so each core counts only the ones it opens. A single
node opens its partitions at their first request, so `recovery_done` comes once every one found
has been asked for. Must not know: Kafka requests, Raft, the log's format (it reads sizes).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable

import structlog

from redshank.cluster.kafka.topic_table import assign_cores

__all__ = ["PROGRESS_EVERY_S", "StartupRecovery", "owned_partition_dirs"]

PROGRESS_EVERY_S = 2.0
MIB = 1024 * 1024
_REPLICA_DIR = re.compile(r"-\d+-[0-9a-f]{16}$")


def owned_partition_dirs(kafka_dir: str, core: int, ncores: int) -> set[str]:
    """The single-node partition directories under `kafka_dir` that `core` of `ncores` owns."""
    try:
        names = os.listdir(kafka_dir)
    except OSError:  # no partitions yet (a new data dir), or none readable: nothing to count
        return set()
    out: set[str] = set()
    for name in names:
        topic, sep, part = name.rpartition("-")
        if not sep or not topic or not part.isdigit() or _REPLICA_DIR.search(name):
            continue
        p = int(part)
        if assign_cores(topic, p + 1, ncores)[p] == core \
                and os.path.isdir(os.path.join(kafka_dir, name)):
            out.add(os.path.join(kafka_dir, name))
    return out


class StartupRecovery:
    """Owned by a core's partition manager (its loop thread only); created with the manager,
    fed by each open of a partition, finished when the last directory found at start opened."""

    def __init__(self, log: structlog.typing.FilteringBoundLogger, pending: Iterable[str],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.log = log
        self.clock = clock
        self.pending = set(pending)
        self.total = len(self.pending)
        self.recovered = 0
        self.bytes = 0
        self.open_s = 0.0
        self.started = clock()
        self._last_line = self.started
        self._next_step = 1  # the next tenth of `total` that earns a progress line

    def start(self) -> None:
        if self.total:
            self.log.info("recovery_started", partitions=self.total)

    def opened(self, directory: str, size: int, seconds: float) -> None:
        """A partition's open finished (`size`: its log's bytes; `seconds`: the open's)."""
        if directory not in self.pending:
            return  # created since start, or opened again after a failure
        self.pending.discard(directory)
        self.recovered += 1
        self.bytes += size
        self.open_s += seconds
        now = self.clock()
        if not self.pending:
            self.log.info("recovery_done", partitions=self.total, mb=self._mb(),
                          open_s=round(self.open_s, 3), seconds=round(now - self.started, 3))
            return
        step = self.recovered * 10 // self.total
        if now - self._last_line >= PROGRESS_EVERY_S or step >= self._next_step:
            self._last_line = now
            self._next_step = step + 1
            self.log.info("recovery_progress", recovered=self.recovered, of=self.total,
                          mb=self._mb())

    def _mb(self) -> float:
        return round(self.bytes / MIB, 1)
