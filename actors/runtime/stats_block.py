"""A core's read-only-from-outside stats block: a JSON snapshot in shared memory under a seqlock.

Concern: publishing one small document per core that another process (`redshank actors`) can read
without stopping or asking the core. Layout: u64 sequence (odd while writing), u64 length, then the
JSON bytes. The reader retries until it sees the same even sequence before and after its copy. Must
not know what the document says.
"""

from __future__ import annotations

import json
import mmap
from typing import Any

import posix_ipc

__all__ = ["StatsReader", "StatsWriter"]

STATS_SIZE = 1 << 18
_HEADER = 16


class StatsWriter:
    def __init__(self, name: str, size: int = STATS_SIZE) -> None:
        shm = posix_ipc.SharedMemory(name, posix_ipc.O_CREAT, size=size)
        try:
            self._mm = mmap.mmap(shm.fd, shm.size)
        finally:
            shm.close_fd()
        self.name = name
        self._words = memoryview(self._mm)[:_HEADER].cast("Q")
        self._seq = int(self._words[0]) + (int(self._words[0]) & 1)

    def publish(self, document: dict[str, Any]) -> None:
        data = json.dumps(document, separators=(",", ":")).encode()
        if len(data) > len(self._mm) - _HEADER:
            data = json.dumps({"core": document.get("core"), "truncated": True}).encode()
        self._seq += 1
        self._words[0] = self._seq  # odd: writing
        self._mm[_HEADER : _HEADER + len(data)] = data
        self._words[1] = len(data)
        self._seq += 1
        self._words[0] = self._seq

    def close(self) -> None:
        self._words.release()
        self._mm.close()


class StatsReader:
    def __init__(self, name: str) -> None:
        shm = posix_ipc.SharedMemory(name, read_only=True)
        try:
            self._mm = mmap.mmap(shm.fd, shm.size, prot=mmap.PROT_READ)
        finally:
            shm.close_fd()
        self._words = memoryview(self._mm)[:_HEADER].cast("Q")

    def read(self, attempts: int = 1000) -> dict[str, Any] | None:
        for _ in range(attempts):
            before = int(self._words[0])
            if before & 1:
                continue
            length = int(self._words[1])
            data = self._mm[_HEADER : _HEADER + min(length, len(self._mm) - _HEADER)]
            if int(self._words[0]) == before:
                if before == 0:
                    return None
                doc: dict[str, Any] = json.loads(data)
                return doc
        return None

    def close(self) -> None:
        self._words.release()
        self._mm.close()
