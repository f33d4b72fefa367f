"""A core's read-only-from-outside stats block: JSON snapshots under seqlocks, and counter words.

Concern: publishing what one core wants seen by another process (`redshank actors`, the admin
API) without stopping or asking the core. One shared-memory segment per core, three regions:

    [0, STATS_SIZE)                  the snapshot document (`publish`, every stats interval)
    [.., + COUNTER_WORDS * 8)        u64 counter words the layers above increment in place
    [.., + TABLES_SIZE)              a second document, of tables (`publish_tables`)

A document region is: u64 sequence (odd while writing), u64 length, then the JSON bytes; the
reader retries until it sees the same even sequence before and after its copy. Counter words
are plain aligned 8-byte stores by one thread each (x86: never torn), read without a lock: a
scrape may see one request counted and its histogram bucket not yet, never a torn number.
Must not know what the documents say or what the counter words mean (their layout belongs to
whoever increments them, e.g. `actors/kafka_probe.py`).
"""

from __future__ import annotations

import contextlib
import json
import mmap
from typing import Any

import posix_ipc

__all__ = ["COUNTER_WORDS", "StatsReader", "StatsWriter", "has_stats_block", "process_counters",
           "publish_tables"]

STATS_SIZE = 1 << 18
COUNTER_WORDS = 1 << 14
TABLES_SIZE = 1 << 20
_COUNTERS_AT = STATS_SIZE
_TABLES_AT = STATS_SIZE + COUNTER_WORDS * 8
SEGMENT_SIZE = _TABLES_AT + TABLES_SIZE  # pages are touched lazily: unused space costs nothing
_HEADER = 16

# The writer of this process (a core process has one): where `process_counters` points.
_process_writer: StatsWriter | None = None
_private_counters: memoryview | None = None


def process_counters() -> memoryview:
    """This process's counter words (u64, `COUNTER_WORDS` of them): its stats block's when a core
    runs here, else a private array nobody reads (tests, the simulator)."""
    global _private_counters
    if _process_writer is not None:
        return _process_writer.counters
    if _private_counters is None:
        _private_counters = memoryview(bytearray(COUNTER_WORDS * 8)).cast("Q")
    return _private_counters


def has_stats_block() -> bool:
    """True in a core process (its stats block exists); False in tests and the simulator."""
    return _process_writer is not None


def publish_tables(document: dict[str, Any]) -> bool:
    """Publish this process's tables document (False: no stats block here, or too big)."""
    writer = _process_writer
    return writer is not None and writer.publish_tables(document)


class _DocWriter:
    def __init__(self, region: memoryview) -> None:
        self._region = region
        self._words = region[:_HEADER].cast("Q")
        self._seq = int(self._words[0]) + (int(self._words[0]) & 1)

    def publish(self, document: dict[str, Any]) -> bool:
        data = json.dumps(document, separators=(",", ":")).encode()
        if len(data) > len(self._region) - _HEADER:
            return False
        self._seq += 1
        self._words[0] = self._seq  # odd: writing
        self._region[_HEADER : _HEADER + len(data)] = data
        self._words[1] = len(data)
        self._seq += 1
        self._words[0] = self._seq
        return True

    def release(self) -> None:
        self._words.release()
        self._region.release()


def _read_doc(region: memoryview, attempts: int) -> dict[str, Any] | None:
    words = region[:_HEADER].cast("Q")
    try:
        for _ in range(attempts):
            before = int(words[0])
            if before & 1:
                continue
            length = int(words[1])
            data = bytes(region[_HEADER : _HEADER + min(length, len(region) - _HEADER)])
            if int(words[0]) == before:
                if before == 0:
                    return None
                doc: dict[str, Any] = json.loads(data)
                return doc
        return None
    finally:
        words.release()


class StatsWriter:
    def __init__(self, name: str, size: int = SEGMENT_SIZE) -> None:
        global _process_writer
        shm = posix_ipc.SharedMemory(name, posix_ipc.O_CREAT, size=max(size, SEGMENT_SIZE))
        try:
            self._mm = mmap.mmap(shm.fd, shm.size)
        finally:
            shm.close_fd()
        self.name = name
        whole = memoryview(self._mm)
        self._doc = _DocWriter(whole[:STATS_SIZE])
        self._tables = _DocWriter(whole[_TABLES_AT : _TABLES_AT + TABLES_SIZE])
        self.counters = whole[_COUNTERS_AT:_TABLES_AT].cast("Q")
        whole.release()
        _process_writer = self

    def publish(self, document: dict[str, Any]) -> None:
        if not self._doc.publish(document):
            self._doc.publish({"core": document.get("core"), "truncated": True})

    def publish_tables(self, document: dict[str, Any]) -> bool:
        """The tables document (e.g. this core's partitions); False if it does not fit."""
        return self._tables.publish(document)

    def close(self) -> None:
        global _process_writer
        if _process_writer is self:
            _process_writer = None
        self._doc.release()
        self._tables.release()
        self.counters.release()
        with contextlib.suppress(BufferError):  # a view still held elsewhere: unmapped at exit
            self._mm.close()


class StatsReader:
    def __init__(self, name: str) -> None:
        shm = posix_ipc.SharedMemory(name, read_only=True)
        try:
            self._mm = mmap.mmap(shm.fd, shm.size, prot=mmap.PROT_READ)
        finally:
            shm.close_fd()
        self._view = memoryview(self._mm)

    def read(self, attempts: int = 1000) -> dict[str, Any] | None:
        return _read_doc(self._view[:STATS_SIZE], attempts)

    def read_tables(self, attempts: int = 1000) -> dict[str, Any] | None:
        if len(self._view) < SEGMENT_SIZE:
            return None
        return _read_doc(self._view[_TABLES_AT : _TABLES_AT + TABLES_SIZE], attempts)

    def counters(self) -> list[int]:
        """A copy of the counter words (each one whole; not one instant across words)."""
        if len(self._view) < SEGMENT_SIZE:
            return [0] * COUNTER_WORDS
        words = self._view[_COUNTERS_AT:_TABLES_AT].cast("Q")
        try:
            return words.tolist()
        finally:
            words.release()

    def close(self) -> None:
        self._view.release()
        self._mm.close()
