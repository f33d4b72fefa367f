"""Flush debouncing: many Readys, one fsync; acks and votes wait for the fsync that covers them.

The host writes each Ready at once and calls `add`; only when no flush is pending does it start
one. `begin` snapshots what the flush will cover (writes made after it starts wait for the next
one); `complete` hands back the messages that may now leave and the mark to pass to
`RaftCore.on_persisted`, and says whether another flush is needed. Must not know files or timers.
"""

from __future__ import annotations

from dataclasses import field

from redshank.cluster.raft.types import Message, PersistMark, Ready
from redshank.protocol.fast_dataclass import dataclass


@dataclass(slots=True)
class FlushBatch:
    messages: list[Message] = field(default_factory=list)
    mark: PersistMark | None = None
    readys: int = 0


class FlushDebouncer:
    def __init__(self) -> None:
        self._next = FlushBatch()
        self._in_flight: FlushBatch | None = None
        self.flushes = 0
        self.readys = 0

    def add(self, rd: Ready) -> bool:
        """Record a written Ready; True if the host should start a flush now."""
        if not (rd.entries or rd.hard_state is not None or rd.messages_after_persist):
            return False
        self._next.messages.extend(rd.messages_after_persist)
        self._next.mark = rd.mark
        self._next.readys += 1
        self.readys += 1
        return self._in_flight is None

    def begin(self) -> None:
        """The fsync starts now: it covers everything added so far."""
        assert self._in_flight is None, "one flush at a time"
        self._in_flight, self._next = self._next, FlushBatch()
        self.flushes += 1

    def complete(self) -> tuple[FlushBatch, bool]:
        """The fsync finished: send `batch.messages`, report `batch.mark`; the flag says whether
        writes arrived meanwhile and need another flush."""
        assert self._in_flight is not None
        batch, self._in_flight = self._in_flight, None
        return batch, self._next.readys > 0

    def abort(self) -> None:
        """The fsync failed: what it was to cover waits for the next one (nothing is durable
        that was not before, so no message leaves and no mark is reported)."""
        assert self._in_flight is not None
        failed, self._in_flight = self._in_flight, None
        failed.messages.extend(self._next.messages)
        if self._next.mark is not None:
            failed.mark = self._next.mark
        failed.readys += self._next.readys
        self._next = failed

    def pending(self) -> bool:
        return self._in_flight is not None or self._next.readys > 0

    def reset(self) -> None:
        """Crash: nothing pending survives."""
        self._next = FlushBatch()
        self._in_flight = None
