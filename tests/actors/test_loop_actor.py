"""Loop actors keep pykka's API on an event loop; loop futures; the thread-backed actor."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pykka
import pytest

from redshank.actors.runtime.loop_actor import DRAIN_BATCH, LoopActor, ThreadActor, use_loop
from redshank.actors.runtime.loop_future import LoopBlockingError, LoopFuture


def run(main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(main(), 30))


class Counter(LoopActor):
    def __init__(self, log: list[str] | None = None) -> None:
        super().__init__()
        self.count = 0
        self.log = log if log is not None else []

    def on_start(self) -> None:
        self.log.append("start")

    def on_stop(self) -> None:
        self.log.append("stop")

    def on_receive(self, message: Any) -> Any:
        if message == "boom":
            raise ValueError("boom")
        self.count += 1
        return self.count

    def add(self, n: int) -> int:
        self.count += n
        return self.count

    def items(self) -> list[int]:
        return [1, 2, 3, 4]


def test_tell_ask_proxy_and_lifecycle() -> None:
    log: list[str] = []

    async def main() -> None:
        ref = Counter.start(log)
        for _ in range(1000):
            ref.tell("x")
        assert await ref.ask("x", block=False) == 1001
        proxy = ref.proxy()
        assert await proxy.add(9) == 1010
        assert await proxy.count == 1010
        assert ref in pykka.ActorRegistry.get_by_class(Counter)
        assert await ref.stop(block=False) is True
        assert not ref.is_alive()
        with pytest.raises(pykka.ActorDeadError):
            ref.tell("x")

    run(main)
    assert log == ["start", "stop"]


def test_messages_before_start_wait_for_on_start_and_keep_order() -> None:
    class Recorder(LoopActor):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[Any] = []

        def on_start(self) -> None:
            self.seen.append("on_start")

        def on_receive(self, message: Any) -> Any:
            self.seen.append(message)
            return list(self.seen)

    async def main() -> None:
        ref = Recorder.start()
        for i in range(3 * DRAIN_BATCH):
            ref.tell(i)
        seen = await ref.ask("end", block=False)
        assert seen == ["on_start", *range(3 * DRAIN_BATCH), "end"]
        await ref.stop(block=False)

    run(main)


def test_ask_failure_goes_to_caller_tell_failure_to_on_failure() -> None:
    failures: list[str] = []

    class Fragile(Counter):
        def on_failure(self, exc_type: Any, exc: Any, tb: Any) -> None:
            failures.append(repr(exc))

    async def main() -> None:
        ref = Fragile.start()
        with pytest.raises(ValueError, match="boom"):
            await ref.ask("boom", block=False)
        assert ref.is_alive()
        ref.tell("boom")
        late = ref.ask("x", block=False)  # queued behind the failing tell: the actor dies first
        with pytest.raises(pykka.ActorDeadError):
            await late
        assert not ref.is_alive()

    run(main)
    assert failures == ["ValueError('boom')"]


def test_blocking_get_on_the_loop_raises_instead_of_deadlocking() -> None:
    async def main() -> None:
        ref = Counter.start()
        fut = ref.ask("x", block=False)
        with pytest.raises(LoopBlockingError):
            fut.get()
        with pytest.raises(LoopBlockingError):
            ref.ask("x")  # block=True on the loop thread
        assert await fut == 1
        assert fut.get() == 1  # a done future reads fine
        await ref.stop(block=False)

    run(main)


def test_future_combinators_are_awaitable() -> None:
    async def main() -> None:
        ref = Counter.start()
        proxy = ref.proxy()
        assert await proxy.add(1).map(lambda v: v * 10) == 10
        assert await proxy.items().filter(lambda v: v % 2 == 0) == [2, 4]
        assert await proxy.items().reduce(lambda a, b: a + b) == 10
        assert await proxy.add(1).join(proxy.add(1), proxy.count) == [2, 3, 3]
        with pytest.raises(ValueError):
            await ref.ask("boom", block=False).map(lambda v: v)
        await ref.stop(block=False)

    run(main)


def test_get_from_another_thread_and_timeout() -> None:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        ref = Counter.start_on(loop)
        assert ref.ask("x", timeout=5) == 1  # blocking ask from a thread without a loop
        assert ref.proxy().add(2).get(timeout=5) == 3
        never: LoopFuture[int] = LoopFuture(loop)
        with pytest.raises(pykka.Timeout):
            never.get(timeout=0.01)
        assert ref.stop(timeout=5) is True
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_creating_a_loop_actor_without_a_loop_fails_clearly() -> None:
    with pytest.raises(RuntimeError, match="outside an event loop"):
        Counter.start()


class Disk(ThreadActor):
    def write(self, n: int) -> tuple[int, bool]:
        time.sleep(0.001)  # blocking work belongs here, not on the loop
        return n, threading.current_thread() is threading.main_thread()


def test_thread_actor_replies_complete_loop_futures_on_the_loop() -> None:
    async def main() -> None:
        disk = Disk.start()
        loop_thread = threading.get_ident()
        done_on: list[int] = []
        futures = [disk.proxy().write(i) for i in range(20)]
        for fut in futures:
            assert isinstance(fut, LoopFuture)
            fut.add_done_callback(lambda _f: done_on.append(threading.get_ident()))
        results = [await fut for fut in futures]
        assert results == [(i, False) for i in range(20)]
        assert set(done_on) == {loop_thread}  # callbacks ran on the loop, not the disk thread
        await disk.stop(block=False)

    run(main)


def test_actors_count_messages_and_handler_time() -> None:
    async def main() -> None:
        ref = Counter.start()
        for _ in range(10):
            ref.tell("x")
        await ref.ask("x", block=False)
        actor = ref._actor_weakref()
        assert actor is not None
        assert actor.actor_probe.messages == 11
        assert actor.actor_probe.handler_ns > 0
        await ref.stop(block=False)

    run(main)


def test_use_loop_restores_the_previous_binding() -> None:
    loop = asyncio.new_event_loop()
    try:
        with use_loop(loop):
            ref = Counter.start()
        with pytest.raises(RuntimeError):
            Counter.start()
        loop.run_until_complete(_stop(ref))
    finally:
        loop.close()


async def _stop(ref: pykka.ActorRef[Any]) -> None:
    await ref.stop(block=False)
