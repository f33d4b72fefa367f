"""Deterministic mode: every actor of several "cores" on one loop with a virtual clock.

Concern: running the same routers and actors as a real node, reproducibly by seed, for simulations
of higher layers. The loop never sleeps: when nothing is ready it jumps its clock to the next timer
(`call_later`, `asyncio.sleep` and timeouts all run on virtual time). Mailboxes are in-process
queues: a frame is delivered after a seeded random latency, FIFO per (source, destination) pair as
a ring is, through the same envelope codec and `CoreRouter` as the shared-memory transport. A core
can be "killed": its queued frames are dropped and its peers' requests fail with `CoreDiedError`.
Must not know what the actors do; reads no real clock.
"""

from __future__ import annotations

import asyncio
import random
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

from .loop_future import LoopFuture
from .router import CoreDiedError, CoreRouter

__all__ = ["QueueTransport", "SimCores", "SimulationStalledError", "VirtualClockLoop"]

T = TypeVar("T")


class SimulationStalledError(RuntimeError):
    """Nothing is ready and no timer is pending: the simulation can never make progress."""


class _VirtualSelector(selectors.DefaultSelector):
    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualClockLoop | None = None

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        loop = self.loop
        assert loop is not None
        if timeout is None:
            raise SimulationStalledError("no ready callback and no timer")
        if timeout > 0:
            loop._now += timeout  # jump straight to the next timer
        return super().select(0)


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose `time()` is virtual and only moves to the next timer."""

    def __init__(self) -> None:
        selector = _VirtualSelector()
        super().__init__(selector)
        selector.loop = self
        self._now = 0.0

    def time(self) -> float:
        return self._now


class QueueTransport:
    """The `Transport` of one simulated core (see router.Transport)."""

    def __init__(self, cores: SimCores, core: int) -> None:
        self.cores = cores
        self.core = core

    def send(
        self, dst: int, first: bytes, second: bytes | bytearray | memoryview
    ) -> LoopFuture[None] | None:
        self.cores._deliver(self.core, dst, bytes(first) + bytes(second))
        return None

    def generation(self, core: int) -> int:
        return self.cores.generations[core]


class SimCores:
    """`ncores` routers on one virtual-clock loop; the seed fixes every latency."""

    def __init__(
        self, ncores: int, seed: int, *, latency_s: tuple[float, float] = (0.00001, 0.0001)
    ) -> None:
        self.loop = VirtualClockLoop()
        self.rng = random.Random(seed)
        self.latency_s = latency_s
        self.ncores = ncores
        self.generations = [1] * ncores
        self.alive = [True] * ncores
        self.routers = [
            CoreRouter(c, ncores, self.loop, QueueTransport(self, c)) for c in range(ncores)
        ]
        self._last_arrival: dict[tuple[int, int], float] = {}
        self._outbox: dict[tuple[int, int], list[bytes]] = {}
        self.frames = 0

    def _deliver(self, src: int, dst: int, frame: bytes) -> None:
        if not self.alive[dst]:
            raise CoreDiedError(dst, "killed in simulation")
        # Like a ring: frames sent in one loop turn are published together and read together.
        batch = self._outbox.get((src, dst))
        if batch is None:
            self._outbox[(src, dst)] = [frame]
            self.loop.call_soon(self._ship, src, dst)
        else:
            batch.append(frame)

    def _ship(self, src: int, dst: int) -> None:
        frames = self._outbox.pop((src, dst))
        low, high = self.latency_s
        at = self.loop.time() + self.rng.uniform(low, high)
        last = self._last_arrival.get((src, dst), 0.0)
        at = max(at, last + 1e-9)  # FIFO per pair, and strictly later: the timer heap is unstable
        self._last_arrival[(src, dst)] = at
        self.loop.call_at(at, self._arrive, src, dst, self.generations[dst], frames)

    def _arrive(self, src: int, dst: int, generation: int, frames: list[bytes]) -> None:
        if generation != self.generations[dst] or not self.alive[dst] or not self.alive[src]:
            return  # sent to (or by) an incarnation that is gone
        router = self.routers[dst]
        for frame in frames:
            self.frames += 1
            router.on_frame(src, memoryview(frame))

    def kill(self, core: int) -> None:
        """The core dies: its frames in flight vanish, its peers' requests to it fail."""
        self.alive[core] = False
        self.generations[core] += 1
        for router in self.routers:
            if router.core != core:
                router.peer_down(core, "killed in simulation")
        self.routers[core].fail_all("killed in simulation")

    def restart(self, core: int) -> CoreRouter:
        """A fresh router for `core` (its actors must be registered again)."""
        self.alive[core] = True
        self.routers[core] = CoreRouter(core, self.ncores, self.loop, QueueTransport(self, core))
        return self.routers[core]

    def run(self, main: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(main)

    def close(self) -> None:
        self.loop.close()
