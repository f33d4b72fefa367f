"""The watermark watch of a core: the high watermarks of partitions this core's fetches wait on,
pushed by their leaders, so a long-polling fetch parks here instead of on every partition.

Concern: `WATERMARKS` on every core holds the last high watermark each subscribed partition
leader told it (`HighWatermark`, one tell per advance per subscribed core) and wakes the
fetches parked on it. It is a wake-up hint only: a fetch re-reads its partitions after every
wake-up or timeout, and each read refreshes both the value and the subscription (a restarted
leader starts with none).

A remote read that found nothing new arms its leader (`Watermarks.arming_core`: the one rule,
applied by the leader that answers the read and by the frontend that asked it): the next
advance carries the newly durable batches from that offset (`Pushed`), so the woken fetch
answers from here instead of asking the owning core again. The board remembers the arming too
(`arm`): until that leader tells an advance, a fetch at the same offset need not ask it again,
for at most `ARM_TRUST_S` and only while the owning core is the incarnation that armed. With
both, a record costs a fetch one cross-core hop instead of three, and an idle consumer's
fetches cost none. Must not know: Kafka requests, logs.

    fetch core                                owning core (partition leader)
      Read(o) ------------------------------>  o >= hw: armed[fetch core] = o
      <------------------------------ empty    (board: arm(o))
      next fetch at o: no read, park
                                               append, fdatasync: hw' > o
      <----- HighWatermark(hw', Pushed(o..hw'))  (disarmed; board: disarm, keep batches)
      wake: take(o) answers the fetch
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

from redshank.actors.runtime import LoopActor
from redshank.cluster.kafka.topic_table import TopicPartition
from redshank.cluster.partition.api import Read, ReadResult
from redshank.protocol.fast_dataclass import dataclass

__all__ = ["ARM_TRUST_S", "PUSHED_MAX_BYTES", "WATERMARKS", "HighWatermark", "Pushed",
           "WatermarkWatch", "Watermarks"]

WATERMARKS = "watermarks"
# Bytes of pushed batches a core's board holds at most (one chunk per partition, each taken by
# the next read of that partition): above it a push keeps only its watermark.
PUSHED_MAX_BYTES = 32 * 1024 * 1024
# How long an arming read stands in for the reads after it. The owning core's incarnation is
# checked too; this bounds what the board cannot see (a leader stopped and opened again on a
# live core): such a partition's fetches wait at most this long before they ask again.
ARM_TRUST_S = 1.0


@dataclass(frozen=True, slots=True)
class _Armed:
    offset: int
    topic_id: uuid.UUID
    generation: int  # of the owning core
    log_start_offset: int
    until: float
    # The arming read's last stable offset was its high watermark (no undecided transaction):
    # read_committed fetches may wait here too (they see nothing new either).
    stable: bool = False


@dataclass(frozen=True, slots=True)
class Pushed:
    """Durable batches from `base_offset` up to `high_watermark`, as the leader stored them.

    `stable`: a read_committed read of them would get the same (KIP-98): no undecided
    transaction below the high watermark (the last stable offset is the high watermark) and no
    aborted one overlapping the range, so a read_committed fetch may take them too."""

    topic_id: uuid.UUID
    base_offset: int
    high_watermark: int
    log_start_offset: int
    records: bytes
    stable: bool = False


@dataclass(frozen=True, slots=True)
class HighWatermark:
    topic: str
    partition: int
    high_watermark: int
    pushed: Pushed | None = None  # for a core whose last read of it was armed


class WatermarkWatch(LoopActor):
    """The actor leaders tell; the core's sessions use its `Watermarks` directly (same loop)."""

    def __init__(self, board: Watermarks) -> None:
        super().__init__()
        self.board = board

    def on_receive(self, message: Any) -> Any:
        if not isinstance(message, HighWatermark):
            raise TypeError(f"watermark watch got {type(message).__name__}")
        self.board.advance(TopicPartition(message.topic, message.partition), message.high_watermark,
                           message.pushed)
        return None


class Watermarks:
    """The board: last known high watermark per partition, and the fetches parked on them."""

    def __init__(self) -> None:
        self.known: dict[TopicPartition, int] = {}
        # Per partition: (offset, future) of the fetches waiting for the watermark to pass it.
        self._waiting: dict[TopicPartition, list[tuple[int, asyncio.Future[None]]]] = {}
        self._pushed: dict[TopicPartition, Pushed] = {}
        self.pushed_bytes = 0
        self._armed: dict[TopicPartition, _Armed] = {}

    def advance(self, tp: TopicPartition, hw: int, pushed: Pushed | None = None) -> None:
        """A leader's word: keep the highest seen, wake who waits below it. Any word of the
        leader disarms it for this core (it pops its arming before it tells)."""
        self._armed.pop(tp, None)
        if pushed is not None:
            self._drop_pushed(tp)
            if self.pushed_bytes + len(pushed.records) <= PUSHED_MAX_BYTES:
                self._pushed[tp] = pushed
                self.pushed_bytes += len(pushed.records)
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

    def read(self, tp: TopicPartition, hw: int) -> None:
        """A read's answer is authoritative (a partition deleted and created again restarts
        lower than what its old leader told); it also supersedes what was pushed before it."""
        self.known[tp] = hw
        self._drop_pushed(tp)
        self._armed.pop(tp, None)

    @staticmethod
    def arming_core(read: Read, result: ReadResult) -> int | None:
        """The one arming rule, for both ends (the leader that answers `read`, the frontend
        that asked it): a read from another core (`copy`, with a subscriber) that found nothing
        new (no error, at or past the high watermark) arms the leader for the subscriber core,
        returned; None: no arming. Once armed, the leader pushes its next advance's batches to
        that core, and until then the core's fetches at that offset need not ask."""
        if (read.copy and not result.error_code and read.offset >= result.high_watermark):
            return read.subscriber
        return None

    def arm(self, tp: TopicPartition, offset: int, topic_id: uuid.UUID, generation: int,
            log_start_offset: int, now: float, stable: bool = False) -> None:
        """A remote read at `offset` found nothing new: its leader armed (partition_leader).
        `stable`: no undecided transaction below its high watermark then."""
        self._armed[tp] = _Armed(offset, topic_id, generation, log_start_offset,
                                 now + ARM_TRUST_S, stable)

    def armed(self, tp: TopicPartition, offset: int, topic_id: uuid.UUID, generation: int,
              now: float, committed: bool = False) -> int | None:
        """The log start offset the arming read gave, if a read of `tp` at `offset` would
        find nothing new and only re-arm what is armed: no need to ask. Else None. A
        read_committed read (`committed`) only when the arming read was stable: its last
        stable offset, reported as the high watermark, is then right too (a transaction begun
        since comes with the next push, unstable: that read asks the leader)."""
        a = self._armed.get(tp)
        if a is None or (a.offset, a.topic_id, a.generation) != (offset, topic_id, generation):
            return None
        if committed and not a.stable:
            return None
        if now >= a.until:
            del self._armed[tp]
            return None
        return a.log_start_offset

    def take(self, tp: TopicPartition, offset: int, topic_id: uuid.UUID) -> Pushed | None:
        """The batches pushed for a read of `tp` at `offset` of topic `topic_id`, once; a push
        that does not start there (or is of a deleted incarnation of the topic) is dropped."""
        pushed = self._pushed.get(tp)
        if pushed is None:
            return None
        self._drop_pushed(tp)
        if pushed.base_offset != offset or pushed.topic_id != topic_id:
            return None
        return pushed

    def _drop_pushed(self, tp: TopicPartition) -> None:
        old = self._pushed.pop(tp, None)
        if old is not None:
            self.pushed_bytes -= len(old.records)

    async def wait_any(self, wanted: Sequence[tuple[TopicPartition, int]], timeout: float) -> bool:
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
