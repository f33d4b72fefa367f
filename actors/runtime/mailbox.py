"""One core's shared-memory mailboxes: the rings to and from every peer, and its doorbell.

Concern: moving frames between this core's loop and its rings. Sends are staged at once and
published once per loop turn (one head store and at most one doorbell per peer, however many
messages the turn produced); small messages of a turn are merged into one batch frame
(`RingProducer.stage`), which the peer's `read` splits again. Receiving polls the inbound rings
while traffic is recent (a bounded spin that yields the CPU when the loop has nothing else to do,
so a co-located process or the peer core runs first), then sleeps on an eventfd doorbell:

    consumer (this core)                     producer (a peer)
    sleeping := 1 on every inbound ring      write frames; head := new head
    fence                                    fence
    any head != tail?  -> stay awake         sleeping?  -> write the consumer's eventfd
    else block in the loop (add_reader)

Either the consumer sees the new head, or the producer sees the flag: no lost wake-up. A timer
re-checks while asleep and counts a *lost wake-up* if it finds data nobody rang for (a test
asserts the counter stays 0). A full ring is backpressure: the frame waits, in order, in an overflow
queue, the sender's future pending; the producer sets `waiting` and the consumer rings back after
it frees space. Must not know about envelopes, actors or the supervisor.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .loop_future import LoopFuture
from .ring import SMALL_FRAME, RingConsumer, RingProducer, full_fence
from .router import CoreDiedError

__all__ = ["DEFAULT_SPIN_S", "MailboxProbe", "RingTransport", "ring_doorbell"]

READ_BATCH = 256  # frames handled per inbound ring per poll before the others get a turn
PUBLISH_EARLY_BYTES = 8192  # staged bytes that are published at once, without waiting for the turn
SPIN_GAP_S = 20e-6  # two empty polls closer than this: the loop is only spinning
SPIN_KEEP_S = 50e-6  # spin without yielding this long after the last frame (a round trip)
# Poll this long after the last traffic before sleeping on the doorbell. 0 by default: on a
# machine whose CPUs the cores share with other busy processes (this 2-core one, clients
# included), a pinned core that spins loses the scheduler's wake-up preference, and every
# cross-core round trip then waits behind another process's time slice. Measured with
# confluent-kafka at 1k msg/s over 8 partitions on 2 pinned cores: produce p50 ~4-8 ms with no
# spin, 500 ms-1 s and growing with a 200 us spin. Spinning pays on dedicated cores (idle
# cross-core ask p50 ~20 us instead of ~120 us): `redshank start --spin-us`.
DEFAULT_SPIN_S = 0.0


def ring_doorbell(fd: int) -> None:
    try:
        os.eventfd_write(fd, 1)
    except (BlockingIOError, OSError):
        pass  # the counter is saturated (a wake-up is pending anyway) or the fd is gone


class MailboxProbe:
    __slots__ = ("doorbells_rung", "lost_wakeups", "polls", "sleeps", "wakeups")

    def __init__(self) -> None:
        self.doorbells_rung = self.lost_wakeups = self.polls = self.sleeps = self.wakeups = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class _Peer:
    __slots__ = (
        "alive",
        "consumer",
        "core",
        "dirty",
        "doorbell",
        "generation",
        "overflow",
        "producer",
    )

    def __init__(self, core: int, doorbell: int) -> None:
        self.core = core
        self.doorbell = doorbell
        self.generation = 0
        self.alive = False
        self.producer: RingProducer | None = None
        self.consumer: RingConsumer | None = None
        self.dirty = False
        self.overflow: deque[tuple[bytes, bytes, LoopFuture[None]]] = deque()


class RingTransport:
    """The `Transport` of a core process (see router.Transport)."""

    def __init__(
        self,
        core: int,
        loop: asyncio.AbstractEventLoop,
        doorbells: list[int],
        on_frame: Callable[[int, memoryview], None],
        *,
        spin_s: float = DEFAULT_SPIN_S,
        idle_check_s: float = 0.05,
        yield_when_idle: bool = True,
        on_wake: Callable[[], None] | None = None,
        on_fatal: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.core = core
        self.loop = loop
        self.my_doorbell = doorbells[core]
        self.on_frame = on_frame
        self.spin_s = spin_s
        self.idle_check_s = idle_check_s
        self.yield_when_idle = yield_when_idle
        self.on_wake = on_wake
        self.on_fatal = on_fatal
        self.probe = MailboxProbe()
        self._peers = [_Peer(c, fd) for c, fd in enumerate(doorbells)]
        self._dirty: list[_Peer] = []
        self._flush_scheduled = False
        self._poll_scheduled = False
        self._sleeping = False
        self._last_traffic = 0.0
        self._last_empty_poll = 0.0
        self._last_frames_tick = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None
        self._suspect = False
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self.loop.add_reader(self.my_doorbell, self._on_doorbell)
        self._last_traffic = time.perf_counter()
        self._schedule_poll()

    def close(self) -> None:
        self._closed = True
        try:
            self.loop.remove_reader(self.my_doorbell)
        except (ValueError, OSError):
            pass
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        for peer in self._peers:
            if peer.alive:
                self.detach(peer.core, "stopping")

    def attach(
        self, core: int, generation: int, producer: RingProducer, consumer: RingConsumer
    ) -> None:
        peer = self._peers[core]
        if peer.alive:
            self.detach(core, "replaced")
        peer.generation = generation
        peer.producer = producer
        peer.consumer = consumer
        peer.alive = True
        consumer.set_sleeping(self._sleeping)
        self._wake()

    def detach(self, core: int, detail: str) -> None:
        """Forget the peer's rings; frames queued for it fail with CoreDiedError."""
        peer = self._peers[core]
        peer.alive = False
        while peer.overflow:
            peer.overflow.popleft()[2].fail(CoreDiedError(core, detail))
        if peer.dirty:
            peer.dirty = False
            self._dirty.remove(peer)
        for half in (peer.producer, peer.consumer):
            if half is not None:
                half.segment.close()
        peer.producer = peer.consumer = None

    def generation(self, core: int) -> int:
        return self._peers[core].generation

    def alive(self, core: int) -> bool:
        return self._peers[core].alive

    # -- sending -----------------------------------------------------------------------------

    def send(
        self, dst: int, first: bytes, second: bytes | bytearray | memoryview
    ) -> LoopFuture[None] | None:
        peer = self._peers[dst]
        producer = peer.producer
        if not peer.alive or producer is None:
            raise CoreDiedError(dst, "not running")
        if peer.overflow:
            return self._queue(peer, producer, first, second)
        if len(first) + len(second) <= SMALL_FRAME:
            staged = producer.stage(first, second)  # merged into this turn's batch frame
            if not staged:
                return self._queue(peer, producer, first, second)
        elif producer.try_write(first, second):
            staged = producer.staged_bytes
        else:
            return self._queue(peer, producer, first, second)
        if staged >= PUBLISH_EARLY_BYTES:
            # A long turn of sends: let the peer start on what we have (overlap, not a batch).
            if producer.publish():
                self._ring(peer)
        elif not peer.dirty:
            peer.dirty = True
            self._dirty.append(peer)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self.loop.call_soon(self._flush)
        # A send usually means a reply is coming: keep polling.
        self._last_traffic = time.perf_counter()
        if self._sleeping:
            self._wake()
        return None

    def _queue(
        self,
        peer: _Peer,
        producer: RingProducer,
        first: bytes,
        second: bytes | bytearray | memoryview,
    ) -> LoopFuture[None]:
        fut: LoopFuture[None] = LoopFuture(self.loop)
        peer.overflow.append((bytes(first), bytes(second), fut))
        if len(peer.overflow) == 1:
            if producer.unpublished and producer.publish():
                self._ring(peer)
            if producer.wait_for_room():
                self.loop.call_soon(self._retry_overflow, peer)
        return fut

    def _retry_overflow(self, peer: _Peer) -> None:
        producer = peer.producer
        if producer is None:
            return
        wrote = False
        while peer.overflow:
            first, second, fut = peer.overflow[0]
            if not producer.try_write(first, second):
                if producer.wait_for_room():
                    continue
                break
            peer.overflow.popleft()
            fut.set(None)
            wrote = True
        if wrote and producer.publish():
            self._ring(peer)

    def _flush(self) -> None:
        self._flush_scheduled = False
        for peer in self._dirty:
            peer.dirty = False
            if peer.producer is not None and peer.producer.publish():
                self._ring(peer)
        self._dirty.clear()

    def _ring(self, peer: _Peer) -> None:
        self.probe.doorbells_rung += 1
        ring_doorbell(peer.doorbell)

    # -- receiving ---------------------------------------------------------------------------

    def _schedule_poll(self) -> None:
        if not self._poll_scheduled and not self._closed:
            self._poll_scheduled = True
            self.loop.call_soon(self._poll)

    def _poll(self) -> None:
        self._poll_scheduled = False
        if self._closed:
            return
        self.probe.polls += 1
        now = time.perf_counter()  # loop.time() is ms-grained on uvloop: too coarse for a spin
        if self._drain_inbound():
            self._last_traffic = now
            if self.yield_when_idle:
                self._last_frames_tick = time.perf_counter()
        elif self.yield_when_idle:
            # A pure spin (this empty poll comes right after the previous one: the loop ran
            # nothing else in between) that has lasted longer than a typical round trip: hand
            # the CPU to whoever else is runnable on it (the peer core, when the two share a
            # CPU, or another process) instead of burning our time slice; on an idle CPU this
            # returns at once. Without it a spinning core on an oversubscribed machine holds its
            # CPU for a whole slice while the reply it waits for cannot run (measured: unpinned
            # ask p50 2 ms, pipelined asks 27k/s). The first SPIN_KEEP_S after the last frame
            # keep the CPU: yielding then would put a quick reply behind another process's
            # slice (measured: pinned ask p99 0.11 -> 1.8 ms under moderate load).
            tick = time.perf_counter()
            if (
                tick - self._last_empty_poll < SPIN_GAP_S
                and tick - self._last_frames_tick > SPIN_KEEP_S
            ):
                os.sched_yield()
            self._last_empty_poll = tick
        if now - self._last_traffic < self.spin_s:
            self._schedule_poll()
        else:
            self._sleep()

    def _drain_inbound(self) -> int:
        handled = 0
        for peer in self._peers:
            consumer = peer.consumer
            if consumer is None:
                continue
            frames = consumer.read(READ_BATCH)
            if not frames:
                continue
            core = peer.core
            try:
                for frame in frames:
                    self.on_frame(core, frame)
            except Exception as exc:  # a broken invariant: stop the core loudly
                if self.on_fatal is None:
                    raise
                self.on_fatal(exc)
                return handled
            handled += len(frames)
            del frames
            if consumer.release():
                self._ring(peer)
        return handled

    def _sleep(self) -> None:
        consumers = [p.consumer for p in self._peers if p.consumer is not None]
        for consumer in consumers:
            consumer.set_sleeping(True)
        full_fence()
        if any(consumer.has_data() for consumer in consumers):
            for consumer in consumers:
                consumer.set_sleeping(False)
            self._last_traffic = time.perf_counter()
            self._schedule_poll()
            return
        self.probe.sleeps += 1
        self._sleeping = True
        self._arm_idle_timer()

    def _wake(self) -> None:
        self._suspect = False
        if self._sleeping:
            self._sleeping = False
            self.probe.wakeups += 1
            for peer in self._peers:
                if peer.consumer is not None:
                    peer.consumer.set_sleeping(False)
        self._schedule_poll()

    def _on_doorbell(self) -> None:
        try:
            os.eventfd_read(self.my_doorbell)
        except BlockingIOError:
            pass
        self._after_wake()

    def _after_wake(self) -> None:
        if self.on_wake is not None:
            self.on_wake()
        for peer in self._peers:
            if peer.overflow:
                self._retry_overflow(peer)
        self._last_traffic = time.perf_counter()
        self._wake()

    def _arm_idle_timer(self) -> None:
        if self._idle_timer is None and not self._closed:
            self._idle_timer = self.loop.call_later(self.idle_check_s, self._idle_check)

    def _idle_check(self) -> None:
        self._idle_timer = None
        if self._closed:
            return
        if self.on_wake is not None:
            self.on_wake()  # notice dead peers even when nobody rings
        if not self._sleeping:
            self._suspect = False
            return
        if any(p.consumer is not None and p.consumer.has_data() for p in self._peers):
            try:
                os.eventfd_read(self.my_doorbell)  # a ring is pending: not lost, just not seen yet
            except BlockingIOError:
                if not self._suspect:
                    # The producer may be between its publish and its eventfd write: give it
                    # one more period before calling the wake-up lost.
                    self._suspect = True
                    self._arm_idle_timer()
                    return
                self.probe.lost_wakeups += 1
            self._suspect = False
            self._after_wake()
            return
        self._suspect = False
        self._arm_idle_timer()

    # -- inspection --------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        peers = []
        for peer in self._peers:
            if peer.core == self.core:
                continue
            row: dict[str, Any] = {
                "peer": peer.core,
                "alive": peer.alive,
                "generation": peer.generation,
                "overflow": len(peer.overflow),
            }
            if peer.producer is not None:
                row.update(
                    out_frames=peer.producer.frames,
                    out_bytes=peer.producer.bytes,
                    out_depth=peer.producer.segment.depth,
                )
            if peer.consumer is not None:
                row.update(
                    in_frames=peer.consumer.frames,
                    in_bytes=peer.consumer.bytes,
                    in_depth=peer.consumer.segment.depth,
                )
            peers.append(row)
        return {"mailboxes": peers, "sleeping": self._sleeping, **self.probe.as_dict()}
