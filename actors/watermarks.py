"""The watermark watch of a core: the high watermarks of partitions this core's fetches wait on,
pushed by their leaders, so a long-polling fetch parks here instead of on every partition.

Concern: `WATERMARKS` on every core holds the last high watermark each subscribed partition
leader told it (`HighWatermark`, one tell per advance per subscribed core) and wakes the
fetches parked on it. It is a wake-up hint only: a fetch re-reads its partitions after every
wake-up or timeout, and each read refreshes both the value and the subscription (a restarted
leader starts with none). Must not know: Kafka requests, logs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redshank.actors.runtime import LoopActor

__all__ = ["WATERMARKS", "HighWatermark", "WatermarkWatch", "Watermarks"]

WATERMARKS = "watermarks"
Tp = tuple[str, int]


@dataclass(frozen=True, slots=True)
class HighWatermark:
    topic: str
    partition: int
    high_watermark: int


class WatermarkWatch(LoopActor):
    """The actor leaders tell; the core's sessions use its `Watermarks` directly (same loop)."""

    def __init__(self, board: Watermarks) -> None:
        super().__init__()
        self.board = board

    def on_receive(self, message: Any) -> Any:
        if not isinstance(message, HighWatermark):
            raise TypeError(f"watermark watch got {type(message).__name__}")
        self.board.advance((message.topic, message.partition), message.high_watermark)
        return None


class Watermarks:
    """The board: last known high watermark per partition, and the fetches parked on them."""

    def __init__(self) -> None:
        self.known: dict[Tp, int] = {}
        # Per partition: (offset, future) of the fetches waiting for the watermark to pass it.
        self._waiting: dict[Tp, list[tuple[int, asyncio.Future[None]]]] = {}

    def advance(self, tp: Tp, hw: int) -> None:
        """A leader's word: keep the highest seen, wake who waits below it."""
        if hw <= self.known.get(tp, -1):
            return
        self.known[tp] = hw
        waiting = self._waiting.get(tp)
        if not waiting:
            return
        still = []
        for offset, fut in waiting:
            if offset < hw:
                if not fut.done():
                    fut.set_result(None)
            else:
                still.append((offset, fut))
        self._waiting[tp] = still

    def read(self, tp: Tp, hw: int) -> None:
        """A read's answer is authoritative (a partition deleted and created again restarts
        lower than what its old leader told)."""
        self.known[tp] = hw

    async def wait_any(self, wanted: Sequence[tuple[Tp, int]], timeout: float) -> bool:
        """Until one partition's watermark passes its offset (True) or `timeout` (False)."""
        if any(self.known.get(tp, -1) > offset for tp, offset in wanted):
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for tp, offset in wanted:
            self._waiting.setdefault(tp, []).append((offset, fut))
        try:
            await asyncio.wait_for(fut, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            for tp, _offset in wanted:
                left = [w for w in self._waiting.get(tp, ()) if w[1] is not fut]
                if left:
                    self._waiting[tp] = left
                else:
                    self._waiting.pop(tp, None)
