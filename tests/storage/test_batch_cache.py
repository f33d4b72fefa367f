"""The batch cache: bounded in bytes, least-recently-used out, keys isolate logs."""

from __future__ import annotations

from redshank.storage import BatchCache


def test_lru_eviction_by_bytes() -> None:
    cache = BatchCache(300)
    key = cache.new_key()
    for i in range(3):
        cache.put(key, i, i, bytes(100))
    assert cache.get(key, 0) is not None  # touch 0: now 1 is the oldest
    cache.put(key, 3, 3, bytes(100))
    assert cache.get(key, 1) is None
    assert cache.get(key, 0) is not None and cache.get(key, 3) is not None
    stats = cache.stats()
    assert stats.bytes <= 300 and stats.entries == 3 and stats.evictions == 1
    assert stats.hits == 3 and stats.misses == 1


def test_oversized_entries_are_not_cached_and_keys_are_isolated() -> None:
    cache = BatchCache(100)
    a, b = cache.new_key(), cache.new_key()
    cache.put(a, 0, 5, bytes(101))
    assert cache.get(a, 0) is None
    cache.put(a, 0, 5, b"x" * 10)
    assert cache.get(b, 0) is None
    assert cache.get(a, 0) == (5, b"x" * 10)
    # A log's next generation (after truncation) does not see the old entries.
    assert cache.get((a[0], a[1] + 1), 0) is None
    cache.put(a, 0, 6, b"y" * 20)  # replacing keeps the byte count right
    assert cache.stats().bytes == 20
