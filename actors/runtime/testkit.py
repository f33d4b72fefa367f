"""Small actors and core scenarios that exercise the runtime across real core processes.

Concern: the setups the runtime's own tests and `redshank bench mailbox` run inside cores (a spawned
core imports them by name, so they live in the package). A scenario runs on core 0 once every core
is ready, and writes its findings as JSON to `<node_dir>/result-<name>.json`; a test reads the file.
Must not know about any other project code.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from .core_process import CoreContext
from .loop_actor import LoopActor
from .loop_future import LoopFuture
from .router import CoreDiedError, Staged

__all__ = ["Blackhole", "Echo", "Sink", "TwoPhaseOwner", "scenario_setup", "size_for", "write_json"]


class Echo(LoopActor):
    def on_receive(self, message: Any) -> Any:
        return message


class Blackhole(LoopActor):
    """Answers every ask with a future nobody completes (an owner that never replies)."""

    def on_receive(self, message: Any) -> Any:
        return LoopFuture(self.actor_loop)


def size_for(seed: int, seq: int, max_size: int) -> int:
    return random.Random(seed * 1_000_003 + seq).randrange(0, max_size)


def make_frame(seed: int, seq: int, max_size: int) -> bytes:
    n = size_for(seed, seq, max_size)
    return seq.to_bytes(8, "little") + bytes((seq & 0xFF,)) * n


class Sink(LoopActor):
    """Checks that tells arrive in order, once each, intact (see `make_frame`)."""

    def __init__(self, seed: int, max_size: int) -> None:
        super().__init__()
        self.seed = seed
        self.max_size = max_size
        self.next = 0
        self.errors: list[str] = []
        self.bytes = 0

    def on_receive(self, message: Any) -> Any:
        if message == "summary":
            return {"received": self.next, "errors": self.errors[:10], "bytes": self.bytes}
        seq = int.from_bytes(message[:8], "little")
        body = message[8:]
        if seq != self.next:
            self.errors.append(f"expected {self.next} got {seq}")
        elif len(body) != size_for(self.seed, seq, self.max_size) or body.count(seq & 0xFF) != len(
            body
        ):
            self.errors.append(f"frame {seq} corrupt")
        self.next = seq + 1
        self.bytes += len(message)
        return None


class TwoPhaseOwner(LoopActor):
    """Sequences requests in arrival order at once; acknowledges each after a random delay."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.rng = random.Random(seed)
        self.sequence = 0

    def on_receive(self, message: Any) -> Any:
        self.sequence += 1
        acked: LoopFuture[Any] = LoopFuture(self.actor_loop)
        value = (message, self.sequence)
        self.actor_loop.call_later(self.rng.random() * 0.002, acked.set, value)
        return Staged(value, acked)


def write_json(ctx: CoreContext, name: str, value: Any) -> None:
    path = Path(ctx.node_dir) / f"{name}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)


async def _wait_file(ctx: CoreContext, name: str, timeout: float = 60.0) -> None:
    path = Path(ctx.node_dir) / name
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(name)
        await asyncio.sleep(0.005)


async def _wait_peers(ctx: CoreContext, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not ctx.peers_ready():
        if time.monotonic() > deadline:
            raise TimeoutError("peers not ready")
        await asyncio.sleep(0.002)


# -- scenarios (run on core 0) -------------------------------------------------------------------


async def _stream(ctx: CoreContext, p: dict[str, Any], dst: int) -> dict[str, Any]:
    ref = ctx.router.ref(dst, "sink")
    pending: list[LoopFuture[None]] = []
    waited = 0
    for seq in range(p["count"]):
        sent = ref.tell(make_frame(p["seed"], seq, p["max_size"]))
        if not sent.done():
            waited += 1
            pending.append(sent)
            if len(pending) > 64:
                await pending[0]
                pending = [f for f in pending if not f.done()]
    for fut in pending:
        await fut
    summary: dict[str, Any] = await ref.ask("summary", block=False)
    return {"waited_for_room": waited, **summary}


async def _backpressure(ctx: CoreContext, p: dict[str, Any]) -> dict[str, Any]:
    await _wait_file(ctx, "go")
    ref = ctx.router.ref(1, "sink")
    sent = [ref.tell(make_frame(p["seed"], seq, p["max_size"])) for seq in range(p["count"])]
    pending_while_stopped = sum(1 for f in sent if not f.done())
    write_json(ctx, "phase1", {"pending": pending_while_stopped})
    for fut in sent:
        await fut
    summary: dict[str, Any] = await ref.ask("summary", block=False)
    return {"pending_while_stopped": pending_while_stopped, "count": p["count"], **summary}


async def _pingpong(ctx: CoreContext, p: dict[str, Any]) -> dict[str, Any]:
    ref = ctx.router.ref(1, "echo")
    answered = 0
    for i in range(p["count"]):
        value = await asyncio.wait_for(_await(ref.ask(i, block=False)), 10.0)
        answered += value == i
        await asyncio.sleep(p["gap_s"])  # let the peer go to sleep before the next ask
    await asyncio.sleep(0.2)  # past the idle checks on both cores
    mine = await ctx.router.ref(0, "stats").ask(None, block=False)
    peer = await ctx.router.ref(1, "stats").ask(None, block=False)
    return {"answered": answered, "stats": [mine, peer]}


async def _kill(ctx: CoreContext, p: dict[str, Any]) -> dict[str, Any]:
    ref = ctx.router.ref(1, "blackhole")
    futures = [ref.ask(i, block=False) for i in range(p["count"])]
    first_gen = ctx.router.transport.generation(1)
    write_json(ctx, "phase1", {"pending": ctx.router.pending})
    errors: list[str] = []
    for fut in futures:
        try:
            await asyncio.wait_for(_await(fut), 30.0)
            errors.append("answered")
        except CoreDiedError as exc:
            errors.append(f"CoreDiedError core={exc.core}")
        except Exception as exc:
            errors.append(type(exc).__name__)
    deadline = time.monotonic() + 30.0
    while True:  # the restarted core answers again
        try:
            echo = ctx.router.ref(1, "echo")
            after = await asyncio.wait_for(_await(echo.ask("hi", block=False)), 5)
            break
        except (CoreDiedError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.01)
    return {
        "errors": errors,
        "first_gen": first_gen,
        "second_gen": ctx.router.transport.generation(1),
        "after_restart": after,
    }


async def _two_phase(ctx: CoreContext, p: dict[str, Any]) -> dict[str, Any]:
    keys = p["keys"]
    refs = [ctx.router.ref(1, f"tp{k}") for k in range(keys)]
    sequenced_order: dict[int, list[int]] = {k: [] for k in range(keys)}
    acked_before_sequenced = 0
    seq_futs: list[Any] = []
    rng = random.Random(p["seed"])
    for i in range(p["count"]):
        key = rng.randrange(keys)
        seq, ack = refs[key].ask_two_phase((key, i))

        def on_seq(f: LoopFuture[Any], key: int = key) -> None:
            sequenced_order[key].append(f.result()[0][1])

        def on_ack(f: LoopFuture[Any], seq: LoopFuture[Any] = seq) -> None:
            nonlocal acked_before_sequenced
            acked_before_sequenced += not seq.done()

        seq.add_done_callback(on_seq)
        ack.add_done_callback(on_ack)
        seq_futs.append((seq, ack))
    for seq, ack in seq_futs:
        s_val = await seq
        a_val = await ack
        assert s_val == a_val
    in_order = all(v == sorted(v) for v in sequenced_order.values())
    return {
        "in_order": in_order,
        "acked_before_sequenced": acked_before_sequenced,
        "total": sum(len(v) for v in sequenced_order.values()),
    }


async def _await(fut: Any) -> Any:
    return await fut


async def _gc(ctx: CoreContext, p: dict[str, Any]) -> dict[str, Any]:
    """What the core left to the cyclic collector once set up (`freeze_startup_objects`)."""
    return {"frozen": gc.get_freeze_count(), "tracked": len(gc.get_objects())}


SCENARIOS: dict[str, Callable[[CoreContext, dict[str, Any]], Awaitable[dict[str, Any]]]] = {
    "backpressure": _backpressure,
    "gc": _gc,
    "pingpong": _pingpong,
    "kill": _kill,
    "two_phase": _two_phase,
}


class Stats(LoopActor):
    """Answers with this core's mailbox counters (so a scenario can read its peers')."""

    def __init__(self, ctx: CoreContext) -> None:
        super().__init__()
        self.ctx = ctx

    def on_receive(self, message: Any) -> Any:
        stats: dict[str, Any] = self.ctx.router.transport.stats()  # type: ignore[attr-defined]
        return stats


def basic_setup(ctx: CoreContext) -> None:
    """Echo and stats actors on every core (the supervisor process tests, `redshank actors`)."""
    ctx.router.register("echo", Echo.start())
    ctx.router.register("stats", Stats.start(ctx))


def scenario_setup(ctx: CoreContext, name: str, params: dict[str, Any]) -> None:
    """The core setup for every scenario: install the actors, then (core 0) run `name`."""
    router = ctx.router
    basic_setup(ctx)
    router.register("blackhole", Blackhole.start())
    router.register("sink", Sink.start(params.get("seed", 0), params.get("max_size", 1)))
    for k in range(params.get("keys", 0)):
        router.register(f"tp{k}", TwoPhaseOwner.start(params.get("seed", 0) + k))
    if params.get("no_doorbell"):
        _disable_doorbell(ctx)

    async def run() -> None:
        await _wait_peers(ctx)
        if name == "order":
            # every core streams to the next one, all at once
            result = await _stream(ctx, params, (ctx.core + 1) % ctx.ncores)
            write_json(ctx, f"result-{name}-{ctx.core}", result)
            return
        if ctx.core != 0:
            return
        try:
            result = await SCENARIOS[name](ctx, params)
        except Exception as exc:  # report, do not hang the test
            result = {"failed": repr(exc)}
        write_json(ctx, f"result-{name}", result)

    if ctx.generation == 1:
        ctx.loop.create_task(run())


def _disable_doorbell(ctx: CoreContext) -> None:
    """Negative control for the lost-wake-up test: publish without ever ringing the peer."""
    transport = ctx.router.transport
    transport._ring = lambda peer: None  # type: ignore[attr-defined]
