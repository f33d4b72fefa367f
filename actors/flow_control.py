"""Flow control of one core: bytes of produce requests in flight, bytes of undecoded requests.

Concern: two counters with waiters, shared by the sessions of a core. `ByteSemaphore` bounds the
produce bytes routed and not yet acknowledged (the replicate-batcher memory of ARCHITECTURE.md
section 4, per core); `RequestMemory` bounds the bytes the core's connections hold of requests
not yet decoded (Kafka's queued.max.request.bytes). Must not know: connections, partitions,
Kafka requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["SMALL_REQUEST", "ByteSemaphore", "RequestMemory"]

# A request this small is always read, whatever the core's request memory: small requests of
# well-behaved clients keep flowing while large frames wait.
SMALL_REQUEST = 64 * 1024


class ByteSemaphore:
    """Bytes of produce requests in flight on a core (routed, not yet acknowledged): above
    `limit`, new produce requests wait, their session stops reading its connection, and the
    backpressure reaches the producer. One request larger than the limit still passes alone."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._waiters: list[asyncio.Future[None]] = []

    async def acquire(self, n: int) -> None:
        while self.used and self.used + n > self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter
        self.used += n

    def release(self, n: int) -> None:
        self.used -= n
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


class RequestMemory:
    """Bytes the core's connections hold of requests not yet decoded (Kafka's
    queued.max.request.bytes, per core). Above `limit` a session holding more than a small
    request's worth stops reading until memory is freed; a session never waits on its own bytes
    alone, so one request larger than the limit still completes. Sessions that cannot progress
    meet the frame deadline, which frees their memory."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._waiting: dict[int, Callable[[], None]] = {}

    def adjust(self, delta: int) -> None:
        self.used += delta
        if delta < 0 and self._waiting and self.used < self.limit:
            waiting, self._waiting = self._waiting, {}
            for wake in waiting.values():
                wake()

    def must_wait(self, holds: int) -> bool:
        """Whether a session holding `holds` bytes (counted in `used`) should stop reading."""
        return holds > SMALL_REQUEST and self.used > self.limit and self.used > holds

    def wait(self, key: int, wake: Callable[[], None]) -> None:
        self._waiting[key] = wake

    def forget(self, key: int) -> None:
        self._waiting.pop(key, None)
