"""Deterministic mode: several cores on one virtual-clock loop, reproducible by seed."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest

from redshank.actors.runtime.loop_actor import LoopActor, use_loop
from redshank.actors.runtime.router import CoreRouter
from redshank.actors.runtime.sim_loop import SimCores, SimulationStalledError


class Relay(LoopActor):
    """Passes a token on to a seeded-random core after a seeded-random delay, recording a trace."""

    def __init__(self, router: CoreRouter, rng: random.Random, trace: list[Any]) -> None:
        super().__init__()
        self.router = router
        self.rng = rng
        self.trace = trace

    def on_receive(self, message: Any) -> Any:
        token, hops = message
        loop = asyncio.get_running_loop()
        self.trace.append((round(loop.time(), 9), self.router.core, token, hops))
        if hops == 0:
            return None
        dst = self.rng.randrange(self.router.ncores)
        delay = self.rng.expovariate(1.0)
        loop.call_later(delay, self.router.ref(dst, "relay").tell, (token, hops - 1))
        return None


def simulate(seed: int) -> tuple[list[Any], float]:
    sim = SimCores(4, seed)
    rng = random.Random(seed)
    trace: list[Any] = []
    with use_loop(sim.loop):
        for router in sim.routers:
            router.register("relay", Relay.start(router, rng, trace))

    async def main() -> None:
        for token in range(5):
            sim.routers[token % 4].ref((token + 1) % 4, "relay").tell((token, 50))
        await asyncio.sleep(1000.0)  # virtual: returns at once in real time
        answers = [sim.routers[0].ref(c, "relay").ask((99, 0), block=False) for c in range(4)]
        for a in answers:
            await a

    sim.run(main())
    end = sim.loop.time()
    sim.close()
    return trace, end


def test_same_seed_same_trace_other_seed_other_trace() -> None:
    started = time.monotonic()
    first, end = simulate(7)
    second, _ = simulate(7)
    third, _ = simulate(8)
    assert len(first) == 5 * 51 + 4
    assert first == second
    assert first != third
    assert end >= 1000.0  # a thousand virtual seconds...
    assert time.monotonic() - started < 30  # ...in far less real time


def test_a_stalled_simulation_raises_instead_of_hanging() -> None:
    sim = SimCores(2, 1)

    async def main() -> None:
        await asyncio.get_running_loop().create_future()  # nothing will ever complete it

    with pytest.raises(SimulationStalledError):
        sim.run(main())
    sim.close()
