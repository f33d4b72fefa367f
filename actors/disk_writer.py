"""The disk-writer actor of a core: the one thread that writes, fdatasyncs and reads the disk.

Concern: running the blocking storage calls of a core off its event loop (ARCHITECTURE.md
section 2): opening logs and the kvstore, reads that miss memory, timestamp lookups, and flush
rounds of the core's `FlushCoordinator` (every flush requested while a round runs joins the next
one, so fdatasyncs are coalesced across partitions), and reopening a log that failed. Its file
layer is the real one, or the fault-injecting one when $REDSHANK_DISK_FAULTS names a control
file (broker-level disk fault tests). Replies are loop futures. Must not know:
Kafka requests, sessions.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import structlog

from redshank.actors.kafka_probe import kafka_probe
from redshank.actors.runtime import ThreadActor
from redshank.cluster.kafka.producer_state import ProducerStateTable
from redshank.cluster.partition.raft_log import RecoveredRaft, recover
from redshank.protocol.fast_dataclass import dataclass
from redshank.storage import BatchCache, FlushCoordinator, KvStore, Log, LogConfig
from redshank.storage.errors import StorageError
from redshank.storage.fault_files import files_from_env

__all__ = ["Blocking", "DiskWriter", "FindTimestamp", "OpenKv", "OpenLog", "OpenPartition",
           "OpenedPartition", "ReadLog", "ReopenLog", "ReopenPartition", "RunRound",
           "ScanProducers", "scan_producers"]


@dataclass(frozen=True, slots=True)
class OpenLog:
    directory: str
    config: LogConfig
    # Reopening after a failed fdatasync: recover from the disk, not the page cache.
    distrust_cache: bool = False


@dataclass(frozen=True, slots=True)
class OpenKv:
    directory: str


@dataclass(frozen=True, slots=True)
class ReadLog:
    log: Log
    offset: int
    max_bytes: int
    max_offset: int


@dataclass(frozen=True, slots=True)
class FindTimestamp:
    log: Log
    timestamp: int


@dataclass(frozen=True, slots=True)
class ScanProducers:
    """The producer state a leader rebuilds when it opens the log (`scan_producers`)."""

    log: Log


@dataclass(frozen=True, slots=True)
class ReopenLog:
    """Close `log` (failed: an fdatasync error) and open its directory again by recovery from
    what the disk holds, its page cache dropped first (fsyncgate) -> (Log, producer records).
    Raises StorageError while the disk stays broken; the caller retries with the same log."""

    log: Log


@dataclass(frozen=True, slots=True)
class OpenPartition:
    """Open a partition: its log in `directory`, its kvstore (Raft's hard state and own
    entries) in `directory/raft`, Raft's index recovered over them, the producer state
    scanned -> `OpenedPartition`."""

    directory: str
    config: LogConfig
    # Reopening after a failed fdatasync: recover from the disk, not the page cache.
    distrust_cache: bool = False


@dataclass(frozen=True, slots=True)
class ReopenPartition:
    """As ReopenLog for a partition that failed (an fdatasync error on its log or kvstore):
    close both, open again from what the disk holds -> `OpenedPartition`. Raises
    StorageError while the disk stays broken; the caller retries with the same pair."""

    log: Log
    kv: KvStore


@dataclass(frozen=True, slots=True)
class OpenedPartition:
    log: Log
    kv: KvStore
    recovered: RecoveredRaft
    producers: ProducerStateTable


SCAN_CHUNK = 1 << 20


def scan_producers(log: Log) -> ProducerStateTable:
    """The producer state the log holds (transactions included): the snapshot stored with
    the newest sealed segment before the last two (`Log.segment_states`, written by the
    partition leader at each roll) when every older segment has one too, else nothing; then
    every batch after it replayed (at least the last two segments, which the idempotence
    windows need; the whole log when no snapshot applies)."""
    states = log.segment_states()
    table: ProducerStateTable | None = None
    offset = int(log.start_offset)
    usable = 0
    for _base, _end, payload in states[:-2]:
        if payload is None:
            break
        usable += 1
    if usable:  # (a payload that does not decode: the whole log is replayed)
        end = states[usable - 1][1]
        table = ProducerStateTable.restore([p for _b, _e, p in states[:usable]
                                            if p is not None], end)
        if table is not None:
            offset = max(offset, end)
    if table is None:
        table = ProducerStateTable()
    end = log.dirty_offset
    while offset <= end:
        chunk = log.read(offset, SCAN_CHUNK)
        if not chunk:
            break
        after = table.replay(chunk, offset)
        if after <= offset:
            break
        offset = after
    return table


@dataclass(frozen=True, slots=True)
class Blocking:
    """Run `fn()` on the writer thread (replays, scans): its result is the reply."""

    fn: Callable[[], Any]


@dataclass(frozen=True, slots=True)
class RunRound:
    """Flush every log with queued requests once (a no-op when an earlier round covered it)."""


_log = structlog.get_logger("redshank.disk_writer")


class DiskWriter(ThreadActor):
    """The core's one writer thread (started by `setup_core`, ends with its core). An exception
    from a *told* message (a flush round, a fire-and-forget job) would stop the thread, as pykka
    stops an actor whose tell fails, and with it every flush of the core: `on_fatal` then stops
    the core loudly, and the supervisor starts it again on recovered logs. An asked message's
    exception goes back to the asker and the writer goes on."""

    def __init__(self, coordinator: FlushCoordinator, cache: BatchCache,
                 on_fatal: Callable[[BaseException], None] | None = None) -> None:
        super().__init__()
        self.coordinator = coordinator
        self.cache = cache
        self.on_fatal = on_fatal
        self.files = files_from_env()
        # Everything opened here is sealed and closed here when the core stops.
        self._opened: list[Log | KvStore] = []
        self._probe = kafka_probe()  # flush latency into the core's stats block

    def on_failure(self, exception_type: type[BaseException] | None,
                   exception_value: BaseException | None, traceback: TracebackType | None
                   ) -> None:
        """A told message raised: pykka has stopped this actor (its thread ends)."""
        _log.error("disk_writer_failed", error=repr(exception_value))
        if self.on_fatal is not None:
            self.on_fatal(exception_value or RuntimeError("disk writer failed"))

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, RunRound):
            started = time.perf_counter_ns()
            result = self.coordinator.run_round()
            self._probe.flush(time.perf_counter_ns() - started)
            return result
        if isinstance(message, ReadLog):
            return bytes(message.log.read(message.offset, message.max_bytes, message.max_offset))
        if isinstance(message, FindTimestamp):
            return message.log.timestamp_to_record(message.timestamp)
        if isinstance(message, OpenLog):
            log = Log.open(message.directory, message.config, files=self.files,
                           cache=self.cache, distrust_cache=message.distrust_cache)
            self._opened.append(log)
            return log
        if isinstance(message, ReopenLog):
            return self._reopen(message.log)
        if isinstance(message, OpenPartition):
            return self._open_partition(message.directory, message.config,
                                        message.distrust_cache)
        if isinstance(message, ReopenPartition):
            for old in (message.log, message.kv):
                try:
                    old.close(seal=False) if isinstance(old, Log) else old.close()
                except StorageError as exc:  # a failed store closes its files anyway
                    _log.warning("close_failed_store", store=old.dir, error=str(exc))
                if old in self._opened:
                    self._opened.remove(old)
            return self._open_partition(message.log.dir, message.log.config, True)
        if isinstance(message, ScanProducers):
            return scan_producers(message.log)
        if isinstance(message, Blocking):
            return message.fn()
        if isinstance(message, OpenKv):
            kv = KvStore.open(message.directory, files=self.files)
            self._opened.append(kv)
            return kv
        raise TypeError(f"disk writer got {type(message).__name__}")

    def _open_partition(self, directory: str, config: LogConfig, distrust_cache: bool
                        ) -> OpenedPartition:
        log = Log.open(directory, config, files=self.files, cache=self.cache,
                       distrust_cache=distrust_cache)
        self._opened.append(log)
        kv = KvStore.open(os.path.join(directory, "raft"), files=self.files)
        self._opened.append(kv)
        recovered = recover(log, kv)
        return OpenedPartition(log, kv, recovered, scan_producers(log))

    def _reopen(self, old: Log) -> tuple[Log, ProducerStateTable]:
        try:
            old.close(seal=False)
        except StorageError as exc:  # a failed log closes its files whatever happens
            _log.warning("close_failed_log", log=old.dir, error=str(exc))
        if old in self._opened:
            self._opened.remove(old)
        log = Log.open(old.dir, old.config, files=self.files, cache=self.cache,
                       distrust_cache=True)
        self._opened.append(log)
        return log, scan_producers(log)

    def on_stop(self) -> None:
        # Whatever was appended and not yet durable gets its flush before the thread ends;
        # then each log is sealed (index written, pre-allocation trimmed): a clean restart
        # needs no recovery scan.
        self.coordinator.run_round()
        for opened in self._opened:
            try:
                opened.close()
            except Exception as exc:  # one bad log must not keep the others open
                _log.error("close_failed", error=repr(exc))
        self._opened = []
