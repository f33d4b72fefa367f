"""Small bridges between coroutines and loop futures for the broker's actors.

Concern: running a coroutine as an actor's reply (`spawn`) and awaiting a reply that may itself
be a future (a local ask to a handler that answers later). Must not know: Kafka.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pykka

from redshank.actors.runtime import LoopFuture

__all__ = ["resolve", "spawn"]

T = TypeVar("T")
_tasks: set[asyncio.Task[Any]] = set()


def spawn(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> LoopFuture[T]:
    out: LoopFuture[T] = LoopFuture(loop)
    task = loop.create_task(coro)
    _tasks.add(task)

    def done(t: asyncio.Task[T]) -> None:
        _tasks.discard(t)
        if t.cancelled():
            out.fail(asyncio.CancelledError())
        elif (exc := t.exception()) is not None:
            out.fail(exc)
        else:
            out.set(t.result())

    task.add_done_callback(done)
    return out


async def resolve(fut: Any) -> Any:
    """Await `fut`, then any future it resolved to (a local ask's reply can be one)."""
    value = await fut
    while isinstance(value, pykka.Future):
        value = await value
    return value
