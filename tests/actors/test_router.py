"""Remote references, replies by correlation id, two-phase requests, dead cores: on the
deterministic in-process transport (the same router and codec as the shared-memory one)."""

from __future__ import annotations

import asyncio
from typing import Any

import pykka
import pytest

from redshank.actors.runtime.loop_actor import LoopActor, use_loop
from redshank.actors.runtime.loop_future import LoopFuture
from redshank.actors.runtime.router import CoreDiedError, RemoteError, RemoteRef, Staged
from redshank.actors.runtime.sim_loop import SimCores


class Echo(LoopActor):
    def on_receive(self, message: Any) -> Any:
        if message == "fail":
            raise KeyError("missing")
        if message == "unpicklable":
            raise _Unpicklable()
        if message == "async":
            fut: LoopFuture[str] = LoopFuture()
            asyncio.get_running_loop().call_later(0.01, fut.set, "later")
            return fut
        return message


class _Unpicklable(Exception):
    def __reduce__(self) -> Any:
        raise TypeError("no pickling")


class Owner(LoopActor):
    """Sequences in arrival order; acknowledges in reverse order of arrival, after a delay."""

    def __init__(self) -> None:
        super().__init__()
        self.next = 0

    def on_receive(self, message: Any) -> Any:
        self.next += 1
        acked: LoopFuture[Any] = LoopFuture()
        asyncio.get_running_loop().call_later(1.0 / self.next, acked.set, ("acked", message))
        return Staged(("seq", self.next), acked)


class Silent(LoopActor):
    def on_receive(self, message: Any) -> Any:
        return LoopFuture()  # never answered


def cores(n: int = 3, seed: int = 1, latency_s: tuple[float, float] = (1e-5, 1e-4)) -> SimCores:
    sim = SimCores(n, seed, latency_s=latency_s)
    for router in sim.routers:
        with use_loop(sim.loop):
            router.register("echo", Echo.start())
            router.register("owner", Owner.start())
            router.register("silent", Silent.start())
    return sim


def test_remote_tell_and_ask_in_order() -> None:
    sim = cores()

    async def main() -> None:
        ref = sim.routers[0].ref(2, "echo")
        assert isinstance(ref, RemoteRef)
        answers = [ref.ask(i, block=False) for i in range(100)]
        assert [await a for a in answers] == list(range(100))
        assert await ref.ask(b"bytes", block=False) == b"bytes"
        assert await ref.ask({"k": (1, 2)}, block=False) == {"k": (1, 2)}
        local = sim.routers[0].ref(0, "echo")
        assert await local.ask("same core", block=False) == "same core"
        assert (await ref.tell("fire")).__class__ is type(None)
        assert await ref.ask("async", block=False) == "later"

    sim.run(main())
    sim.close()


def test_remote_errors_reach_the_caller() -> None:
    sim = cores()

    async def main() -> None:
        ref = sim.routers[1].ref(0, "echo")
        with pytest.raises(KeyError):
            await ref.ask("fail", block=False)
        with pytest.raises(RemoteError, match="_Unpicklable"):
            await ref.ask("unpicklable", block=False)
        with pytest.raises(pykka.ActorDeadError, match="no actor 'nobody'"):
            await sim.routers[1].ref(0, "nobody").ask(1, block=False)
        with pytest.raises(ValueError):
            sim.routers[1].ref(9, "echo")

    sim.run(main())
    sim.close()


def test_two_phase_sequenced_in_order_then_acked() -> None:
    sim = cores()

    async def main() -> None:
        owner = sim.routers[0].ref(1, "owner")
        events: list[tuple[str, int]] = []
        pairs = []
        for i in range(20):
            seq, ack = owner.ask_two_phase(i)
            seq.add_done_callback(lambda f, i=i: events.append(("seq", i)))
            ack.add_done_callback(lambda f, i=i: events.append(("ack", i)))
            pairs.append((seq, ack))
        results = [(await s, await a) for s, a in pairs]
        assert [r[0] for r in results] == [("seq", i + 1) for i in range(20)]
        assert [r[1] for r in results] == [("acked", i) for i in range(20)]
        seq_order = [i for kind, i in events if kind == "seq"]
        assert seq_order == list(range(20))  # sequenced replies arrive in request order
        for i in range(20):  # each acknowledgement after its own sequencing
            assert events.index(("seq", i)) < events.index(("ack", i))
        ack_order = [i for kind, i in events if kind == "ack"]
        assert ack_order != seq_order  # acks complete out of order, independently

        local_seq, local_ack = sim.routers[1].ref(1, "owner").ask_two_phase("x")
        assert (await local_seq)[0] == "seq"
        assert await local_ack == ("acked", "x")

    sim.run(main())
    sim.close()


def test_a_dead_core_fails_pending_requests_and_new_ones() -> None:
    sim = cores()

    async def main() -> None:
        silent = sim.routers[0].ref(2, "silent")
        pending = [silent.ask(i, block=False) for i in range(5)]
        seq, ack = sim.routers[0].ref(2, "owner").ask_two_phase("x")
        await asyncio.sleep(0.01)
        sim.kill(2)
        for fut in pending:
            with pytest.raises(CoreDiedError) as info:
                await fut
            assert info.value.core == 2
        with pytest.raises(CoreDiedError):
            await ack
        with pytest.raises(CoreDiedError):
            await silent.ask(1, block=False)
        with pytest.raises(CoreDiedError):
            silent.tell(1)
        assert sim.routers[0].pending == 0
        del seq

    sim.run(main())
    sim.close()


class Tally(LoopActor):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[int] = []

    def on_receive(self, message: Any) -> Any:
        if message == "seen":
            return list(self.seen)
        self.seen.append(message)
        return len(self.seen)


def test_an_ask_never_overtakes_earlier_tells_to_the_same_actor() -> None:
    # Asks to an idle actor are handled inline (no envelope); with tells queued they must not be.
    # Zero latency: frames land in the same loop turn, so tells are still queued when asks arrive.
    sim = cores(latency_s=(0.0, 0.0))
    with use_loop(sim.loop):
        sim.routers[1].register("tally", Tally.start())

    async def main() -> None:
        tally = sim.routers[0].ref(1, "tally")
        replies = []
        for i in range(300):
            tally.tell(i)
            if i % 7 == 0:
                replies.append((i, tally.ask(-i - 1, block=False)))
        seen = await tally.ask("seen", block=False)
        expected: list[int] = []
        for i in range(300):
            expected.append(i)
            if i % 7 == 0:
                expected.append(-i - 1)
        assert seen == expected
        for i, fut in replies:
            assert await fut == expected.index(-i - 1) + 1
        actor = sim.routers[1]._inline["tally"]
        assert actor.actor_probe.messages == len(expected) + 1

    sim.run(main())
    sim.close()
