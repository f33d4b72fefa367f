"""The per-core batch cache: recently appended batches served to readers without a disk read.

Bounded in bytes, least-recently-used first out. Keyed by (log key, base offset): a consumer that
keeps up asks for exactly the next batch's base offset, so its reads are dict hits; an offset in
the middle of a batch misses and goes to disk once. A log invalidates its entries after a suffix
truncation by moving to a new key (old entries age out), so truncation is O(1) here.

Entries are views of the buffers appends received (no copy), counted at their own size: a
cached view keeps its whole request buffer alive, so a buffer holding many batches costs more
than its entries say until they are all evicted.

Shared by every log on a core and touched by the loop thread (append, read) and the writer thread
(reads it serves), hence the lock. Knows nothing of segments or files.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict

from redshank.protocol.fast_dataclass import dataclass

__all__ = ["BatchCache", "CacheStats"]

CacheKey = tuple[int, int]
_Cached = tuple[int, bytes | memoryview]  # (last offset, batch bytes)


@dataclass(frozen=True, slots=True)
class CacheStats:
    entries: int
    bytes: int
    max_bytes: int
    hits: int
    misses: int
    evictions: int


class BatchCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[int, int, int], _Cached] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._keys = itertools.count(1)
        self._hits = self._misses = self._evictions = 0

    def new_key(self) -> CacheKey:
        """A fresh key for a log (or for a log after a suffix truncation)."""
        return (next(self._keys), 0)

    def put(
        self, key: CacheKey, base_offset: int, last_offset: int, data: bytes | memoryview
    ) -> None:
        size = len(data)
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop((*key, base_offset), None)
            if old is not None:
                self._bytes -= len(old[1])
            self._entries[(*key, base_offset)] = (last_offset, data)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, evicted) = self._entries.popitem(last=False)
                self._bytes -= len(evicted)
                self._evictions += 1

    def replace(self, key: CacheKey, base_offset: int, data: bytes | memoryview) -> None:
        """Swap the bytes of a cached batch (compaction rewrote it; same offsets), leaving
        its place in the LRU order; nothing if it is not cached."""
        full = (*key, base_offset)
        with self._lock:
            old = self._entries.get(full)
            if old is not None:
                self._entries[full] = (old[0], data)
                self._bytes += len(data) - len(old[1])

    def get(self, key: CacheKey, base_offset: int) -> _Cached | None:
        """(last offset, bytes) of the cached batch starting at `base_offset`, if any."""
        full = (*key, base_offset)
        with self._lock:
            hit = self._entries.get(full)
            if hit is None:
                self._misses += 1
                return None
            self._entries.move_to_end(full)
            self._hits += 1
            return hit

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(len(self._entries), self._bytes, self.max_bytes, self._hits,
                              self._misses, self._evictions)
