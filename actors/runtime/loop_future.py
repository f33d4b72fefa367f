"""Futures completed on a core's event loop: the `pykka.Future` that loop actors hand out.

Concern: a value set once (on the owning loop, or from another thread, which hands it over with
`call_soon_threadsafe`) and read by `await` on a loop or by a blocking `get()` from a thread that
runs no loop. A blocking `get()` of a pending future on a loop thread would deadlock the core, so it
raises `LoopBlockingError` instead. Must not know about actors, rings or cores.
"""

from __future__ import annotations

import asyncio
import functools
import queue
import sys
import threading
from collections.abc import Callable, Generator, Iterable
from types import TracebackType
from typing import Any, TypeAlias, TypeVar, cast

import pykka
from pykka._future import _Unset

__all__ = [
    "LoopBlockingError",
    "LoopFuture",
    "bind_loop",
    "current_loop",
    "done_future",
    "failed_future",
]

T = TypeVar("T")
J = TypeVar("J")
M = TypeVar("M")
R = TypeVar("R")

ExcInfo: TypeAlias = tuple[type[BaseException], BaseException, TracebackType | None]
OptExcInfo: TypeAlias = tuple[
    type[BaseException] | None, BaseException | None, TracebackType | None
]

_UNSET: Any = _Unset()  # pykka's "no get-hook result yet" marker, shared (never mutated)
_thread_state = threading.local()
# Only guards lazy creation of a future's threading.Event (the rare cross-thread get()).
_event_lock = threading.Lock()


class LoopBlockingError(RuntimeError):
    """`get()` of a pending future on an event-loop thread: it would block the core forever."""


def bind_loop(loop: asyncio.AbstractEventLoop | None) -> None:
    """Make `loop` the loop that actors and futures created on this thread belong to."""
    _thread_state.loop = loop


def current_loop() -> asyncio.AbstractEventLoop | None:
    """The running loop, else the loop bound to this thread with `bind_loop`, else None."""
    loop = asyncio._get_running_loop()
    if loop is not None:
        return loop
    bound: asyncio.AbstractEventLoop | None = getattr(_thread_state, "loop", None)
    return bound


class LoopFuture(pykka.Future[T]):
    """A pykka future owned by an event loop; awaitable, and `map`/`join`/`filter`/`reduce` chain
    by callbacks so derived futures are awaitable too."""

    # One future is made per ask, so its fields start as class-level defaults and __init__ only
    # stores the loop (instead of pykka's Future.__init__, which builds an `_Unset()` per future):
    # a field is written on the instance the first time it changes. pykka 4.5.0's own fields
    # (`_get_hook`, `_get_hook_result`) are covered by tests/actors/test_pykka_seam.py.
    _get_hook: Callable[[float | None], T] | None = None
    _get_hook_result = _UNSET
    _claimed = False  # set() was called (the value may still be in flight to the loop)
    _done = False
    _value: Any = None
    _exc_info: OptExcInfo | None = None
    _callbacks: list[Callable[[LoopFuture[T]], None]] | None = None
    _event: threading.Event | None = None

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop if loop is not None else current_loop()

    def __repr__(self) -> str:
        state = "done" if self._done else "pending"
        return f"<LoopFuture {state}>"

    # -- completing --------------------------------------------------------------------------

    def set(self, value: Any | None = None) -> None:
        if self._claimed or self._get_hook is not None:
            raise queue.Full
        self._claimed = True
        self._complete(value, None)

    def _set_on_loop(self, value: Any) -> None:
        """`set(value)` from a callback of the owning loop (the router's replies): no thread hop
        check. Callers guarantee they run on `self._loop`."""
        if self._claimed or self._get_hook is not None:
            raise queue.Full
        self._claimed = True
        self._finish(value, None)

    def set_exception(self, exc_info: OptExcInfo | None = None) -> None:
        if exc_info is None:
            exc_info = sys.exc_info()
        if exc_info[0] is None:
            raise ValueError("set_exception() outside an except block needs exc_info")
        if self._claimed or self._get_hook is not None:
            raise queue.Full
        self._claimed = True
        self._complete(None, exc_info)

    def fail(self, exc: BaseException) -> None:
        """Complete with `exc` (no traceback needed)."""
        self.set_exception((type(exc), exc, exc.__traceback__))

    def set_get_hook(self, func: Callable[[float | None], T]) -> None:
        if self._claimed:
            raise queue.Full
        super().set_get_hook(func)

    def _complete(self, value: Any, exc_info: OptExcInfo | None) -> None:
        loop = self._loop
        if loop is not None and asyncio._get_running_loop() is not loop:
            # Completed from another thread (the disk writer): finish on the owning loop so its
            # awaiters and callbacks run there, never concurrently with it.
            try:
                loop.call_soon_threadsafe(self._finish, value, exc_info)
                return
            except RuntimeError:  # the loop is closed: nobody awaits there any more
                pass
        self._finish(value, exc_info)

    def _finish(self, value: Any, exc_info: OptExcInfo | None) -> None:
        self._value = value
        self._exc_info = exc_info
        self._done = True
        # A cross-thread getter creates the event, then re-reads _done: no lost wake-up.
        event = self._event
        if event is not None:
            event.set()
        callbacks = self._callbacks
        if callbacks:
            self._callbacks = None
            for callback in callbacks:
                _run_callback(callback, self)

    # -- reading -----------------------------------------------------------------------------

    def done(self) -> bool:
        return self._done

    def result(self) -> T:
        """The value of a done future (raises its exception); `LoopBlockingError` if pending."""
        if not self._done:
            raise LoopBlockingError("result() of a pending future")
        if self._exc_info is not None:
            _, exc, tb = self._exc_info
            assert exc is not None
            if exc.__traceback__ is not tb:
                raise exc.with_traceback(tb)
            raise exc
        return cast(T, self._value)

    def exception(self) -> BaseException | None:
        if not self._done:
            raise LoopBlockingError("exception() of a pending future")
        return None if self._exc_info is None else self._exc_info[1]

    def get(self, *, timeout: float | None = None) -> T:
        if self._get_hook is not None:
            return super().get(timeout=timeout)
        if not self._done:
            self._wait(timeout)
        return self.result()

    def _wait(self, timeout: float | None) -> None:
        if asyncio._get_running_loop() is not None:
            raise LoopBlockingError(
                "blocking get() of a pending future on an event-loop thread; await it instead"
            )
        with _event_lock:
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        if not self._done and not event.wait(timeout):
            raise pykka.Timeout(f"{timeout} seconds")

    def add_done_callback(self, callback: Callable[[LoopFuture[T]], None]) -> None:
        """Call `callback(self)` when done (at once if already done). Callbacks must not raise."""
        if self._done:
            _run_callback(callback, self)
            return
        if self._callbacks is None:
            self._callbacks = [callback]
        else:
            self._callbacks.append(callback)

    def __await__(self) -> Generator[Any, None, T]:
        if self._get_hook is not None:
            # pykka get hooks (ActorRef.stop(block=False)) have no completion signal: poll.
            while True:
                try:
                    return self.get(timeout=0)
                except (LoopBlockingError, pykka.Timeout):
                    yield from asyncio.sleep(0.0005).__await__()
        if not self._done:
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[None] = loop.create_future()
            self.add_done_callback(functools.partial(_wake, loop, waiter))
            yield from waiter.__await__()
        return self.result()

    __iter__ = __await__

    # -- combinators (callback-based, so the derived futures complete without a get()) --------

    def _derived(self, sources: Iterable[pykka.Future[Any]]) -> bool:
        return all(isinstance(f, LoopFuture) and f._get_hook is None for f in sources)

    def map(self, func: Callable[[T], M]) -> pykka.Future[M]:
        if not self._derived([self]):
            return super().map(func)
        out: LoopFuture[M] = LoopFuture(self._loop)

        def on_done(src: LoopFuture[T]) -> None:
            try:
                out.set(func(src.result()))
            except Exception:
                out.set_exception()

        self.add_done_callback(on_done)
        return out

    def filter(
        self: pykka.Future[Iterable[J]], func: Callable[[J], bool]
    ) -> pykka.Future[Iterable[J]]:
        assert isinstance(self, LoopFuture)
        return self.map(lambda items: list(filter(func, items)))

    def reduce(
        self: pykka.Future[Iterable[J]], func: Callable[[R, J], R], *args: R
    ) -> pykka.Future[R]:
        assert isinstance(self, LoopFuture)
        return self.map(lambda items: functools.reduce(func, items, *args))

    def join(self: pykka.Future[Any], *futures: pykka.Future[Any]) -> pykka.Future[Iterable[Any]]:
        assert isinstance(self, LoopFuture)
        sources = [self, *futures]
        if not self._derived(sources):
            return pykka.Future.join(self, *futures)
        out: LoopFuture[Iterable[Any]] = LoopFuture(self._loop)
        remaining = [len(sources)]

        def on_done(_src: LoopFuture[Any]) -> None:
            remaining[0] -= 1
            if remaining[0] or out._claimed:
                if not out._claimed and _src.exception() is not None:
                    out.fail(cast(BaseException, _src.exception()))
                return
            try:
                out.set([cast(LoopFuture[Any], f).result() for f in sources])
            except Exception:
                out.set_exception()

        for f in sources:
            cast(LoopFuture[Any], f).add_done_callback(on_done)
        return out


def _run_callback(callback: Callable[[LoopFuture[Any]], None], fut: LoopFuture[Any]) -> None:
    try:
        callback(fut)
    except Exception as exc:  # boundary: a broken callback must not break the completer
        loop = asyncio._get_running_loop()
        if loop is None:
            raise
        loop.call_exception_handler(
            {"message": "LoopFuture callback failed", "exception": exc, "future": fut}
        )


def _wake(loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[None], _f: Any) -> None:
    if asyncio._get_running_loop() is loop:
        if not waiter.done():
            waiter.set_result(None)
    else:
        loop.call_soon_threadsafe(_wake, loop, waiter, _f)


def done_future(value: T, loop: asyncio.AbstractEventLoop | None = None) -> LoopFuture[T]:
    fut: LoopFuture[T] = LoopFuture(loop)
    fut._claimed = True
    fut._finish(value, None)
    return fut


def failed_future(
    exc: BaseException, loop: asyncio.AbstractEventLoop | None = None
) -> LoopFuture[Any]:
    fut: LoopFuture[Any] = LoopFuture(loop)
    fut._claimed = True
    fut._finish(None, (type(exc), exc, exc.__traceback__))
    return fut
