"""A core hosted on a thread of the supervising process: how an embedding program joins its cores.

Concern: running one core's loop, rings and router (the same `_CoreHost` as a core process) on a
background thread of a process that also runs other code, so that code can `tell`/`ask` actors on
the cores with the broker's own refs. The supervisor starts it as one of its `external_cores`
(creates its doorbell and rings, marks it RUNNING with its own pid); the host marks it ready,
publishes its stats block (it shows up in `redshank actors`), and stops on `stop()`. Other threads
reach the loop only through `call`/`submit` (the router is not thread-safe): one FIFO queue of
callables, drained on the loop, so what one thread submits runs in its order, and a burst of
submissions costs one loop wake-up, not one each. Must not know what the cores run.

    user thread                 hosted loop thread              core process
    call(fn) --call_soon_threadsafe--> fn(): router.ask(...) --ring--> actor
    Future.result()  <--- set from the LoopFuture's callback <--ring-- reply
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from .core_process import CoreContext, CoreSpec, _CoreHost, new_event_loop
from .loop_future import LoopFuture, bind_loop
from .router import CoreRouter

__all__ = ["HostedCore"]

T = TypeVar("T")


class HostedCore:
    """Core `spec.core`, run on a daemon thread of this process. `spec.setup` runs on its loop
    as on any core; `spec.supervisor_pid` is this process. Lives from `start()` to `stop()`."""

    def __init__(self, spec: CoreSpec, doorbells: list[int], log: Any = None) -> None:
        self.spec = spec
        self.core = spec.core
        self._doorbells = doorbells
        self._log = log
        self._loop: asyncio.AbstractEventLoop | None = None
        self._host: _CoreHost | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"redshank-hosted-core-{spec.core}", daemon=True
        )
        self._queue: deque[Callable[[], None]] = deque()
        # True while a drain is scheduled: a submitter appends first, then reads the flag; the
        # drain clears it before popping, so an append is either drained or schedules a drain.
        self._drain_scheduled = False

    @property
    def router(self) -> CoreRouter:
        assert self._host is not None, "not started"
        return self._host.router

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "not started"
        return self._loop

    def start(self, timeout: float = 30.0) -> None:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"hosted core {self.core} not ready after {timeout} s")
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        loop = new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        bind_loop(loop)
        user_setup = self.spec.setup

        def setup(ctx: CoreContext) -> Any:
            result = user_setup(ctx) if user_setup is not None else None
            self._ready.set()
            return result

        try:
            host = _CoreHost(
                dataclasses.replace(self.spec, setup=setup),
                loop,
                self._doorbells,
                hosted=True,
            )
            if self._log is not None:
                host.log = self._log
            self._host = host
            loop.run_until_complete(host.run())
        except BaseException as exc:  # boundary: report to start(), never die silently
            self._error = exc
            self._ready.set()
        finally:
            loop.close()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def call(self, fn: Callable[[], T | LoopFuture[T]]) -> concurrent.futures.Future[T]:
        """Run `fn` on the hosted loop; the future completes with its value (a `LoopFuture` it
        returns is followed) or its exception. RuntimeError if the core is stopped."""
        out: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            if not out.set_running_or_notify_cancel():
                return
            try:
                value = fn()
            except BaseException as exc:
                out.set_exception(exc)
                return
            if isinstance(value, LoopFuture):
                value.add_done_callback(lambda f: _copy(f, out))
            else:
                out.set_result(value)

        self.submit(run)
        return out

    def submit(self, fn: Callable[[], None]) -> None:
        """Run `fn()` on the hosted loop, after everything submitted before it (it must not
        raise). RuntimeError if the core is stopped."""
        loop = self._loop
        if loop is None or loop.is_closed() or not self._thread.is_alive():
            raise RuntimeError(f"hosted core {self.core} is not running")
        self._queue.append(fn)
        if not self._drain_scheduled:
            self._drain_scheduled = True
            loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        self._drain_scheduled = False
        queue = self._queue
        while queue:
            fn = queue.popleft()
            try:
                fn()
            except Exception as exc:  # boundary: one bad callable must not strand the rest
                self.loop.call_exception_handler(
                    {"message": "hosted core callable failed", "exception": exc}
                )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop (pending requests fail with CoreDiedError) and wait for the thread."""
        host, loop = self._host, self._loop
        if host is not None and loop is not None and self._thread.is_alive():
            try:
                loop.call_soon_threadsafe(host.stop)
            except RuntimeError:
                pass  # the loop already closed
            self._thread.join(timeout)


def _copy(src: LoopFuture[Any], dst: concurrent.futures.Future[Any]) -> None:
    if dst.done():
        return
    exc = src.exception()
    if exc is not None:
        dst.set_exception(exc)
    else:
        dst.set_result(src.result())
