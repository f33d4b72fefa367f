"""The replicate-batcher of one partition leader: many appends, one flush request per loop turn.

Concern: coalescing the flushes of a partition (every append of a loop turn is covered by one
request to the core's flush coordinator, run by the disk writer), completing acks=all waiters
once their offset is durable, and reporting the durable offset to the leader (which moves the
high watermark: with one replica, durable on the leader = committed on a majority). It counts
the bytes appended and not yet durable (`pending_bytes`). Must not know: Kafka requests,
sessions. Single replica: followers are added here when Raft arrives.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
from collections import deque
from collections.abc import Callable
from typing import Any

import pykka

from redshank.actors.disk_writer import RunRound
from redshank.actors.runtime import LoopFuture
from redshank.storage import FlushCoordinator, FlushHandle, Log

__all__ = ["ReplicateBatcher"]


class ReplicateBatcher:
    def __init__(
        self,
        log: Log,
        coordinator: FlushCoordinator,
        writer: pykka.ActorRef[Any],
        loop: asyncio.AbstractEventLoop,
        on_durable: Callable[[int], None],
        on_failed: Callable[[BaseException], None],
    ) -> None:
        self.log = log
        self.coordinator = coordinator
        self.writer = writer
        self.loop = loop
        self.on_durable = on_durable
        self.on_failed = on_failed
        # (last offset, future, value on success), ascending offsets.
        self._waiters: deque[tuple[int, LoopFuture[Any], Any]] = deque()
        self._scheduled = False
        self._requested = log.flushed_offset
        self._sizes: deque[tuple[int, int]] = deque()
        self.pending_bytes = 0
        self.rounds = 0

    def appended(self, last_offset: int, size: int, waiter: LoopFuture[Any] | None = None,
                 value: Any = None) -> None:
        """An append up to `last_offset` happened; `waiter` gets `value` once it is durable."""
        self._sizes.append((last_offset, size))
        self.pending_bytes += size
        if waiter is not None:
            self._waiters.append((last_offset, waiter, value))
        if not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self._request_flush)

    def wait(self, last_offset: int, waiter: LoopFuture[Any], value: Any) -> None:
        """`waiter` gets `value` once `last_offset` (appended earlier) is durable, or the
        flush's error result if a flush fails first: an idempotent retry of a batch not yet
        durable waits for its original here. Kept in offset order among the other waiters."""
        bisect.insort(self._waiters, (last_offset, waiter, value), key=_waiter_offset)
        if not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self._request_flush)

    def retry(self) -> None:
        """Ask again for everything appended to be flushed (after a failed flush)."""
        self._requested = self.log.flushed_offset
        self._request_flush()

    def reset(self, log: Log, failure: Any) -> None:
        """The leader reopened its log after a failure: start over on `log`. Waiters left are
        answered `failure`: their offsets may name other batches in the reopened log."""
        self.fail_waiters(failure)
        self.log = log
        self._requested = log.flushed_offset
        self._sizes.clear()
        self.pending_bytes = 0

    def _request_flush(self) -> None:
        self._scheduled = False
        target = self.log.dirty_offset
        if target <= self._requested:
            return
        self._requested = target
        self.rounds += 1
        self.coordinator.request(self.log, target,
                                 functools.partial(self._from_writer, self.log))
        if self.coordinator.claim_kick():  # else a round already asked for will take it
            self.writer.tell(RunRound())

    def _from_writer(self, log: Log, handle: FlushHandle) -> None:
        # Runs on the disk-writer thread: hop back to the loop.
        self.loop.call_soon_threadsafe(self._flushed, log, handle)

    def _flushed(self, log: Log, handle: FlushHandle) -> None:
        if log is not self.log:
            return  # a flush of the log this batcher had before a reopen
        if handle.error is not None or handle.result is None:
            self._requested = self.log.flushed_offset  # let the next append retry the flush
            self.on_failed(handle.error or RuntimeError("flush failed"))
            return
        durable = handle.result
        while self._sizes and self._sizes[0][0] <= durable:
            self.pending_bytes -= self._sizes.popleft()[1]
        while self._waiters and self._waiters[0][0] <= durable:
            _, fut, value = self._waiters.popleft()
            fut.set(value)
        self.on_durable(durable)

    def fail_waiters(self, value: Any) -> None:
        """Answer every acks=all waiter with `value` (an error result)."""
        while self._waiters:
            _, fut, _ = self._waiters.popleft()
            fut.set(value)


def _waiter_offset(waiter: tuple[int, LoopFuture[Any], Any]) -> int:
    return waiter[0]
