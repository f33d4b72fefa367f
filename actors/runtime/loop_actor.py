"""Pykka actors hosted on an event loop (ARCHITECTURE.md section 2), and a thread-backed actor.

Concern: pykka's runtime seam (`_create_actor_inbox`, `_create_future`, `_start_actor_loop`) for an
actor that costs no thread: a deque inbox drained by `loop.call_soon`, futures owned by the loop.
`ThreadActor` is pykka's thread runtime with loop futures, for blocking work (the disk writer): its
replies complete the caller's loop future thread-safely. Both count messages and time in handler.

The drain mirrors `pykka.Actor._actor_loop_running` (4.5.0), one envelope at a time, a bounded
batch per loop turn so one busy actor cannot starve the others. `tests/actors/test_pykka_seam.py`
fails if pykka's seam changes. Must not know about rings, cores or any project code.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Self

import pykka
from pykka import ActorRegistry

from .loop_future import LoopFuture, bind_loop, current_loop
from .sched import set_thread_slice

if TYPE_CHECKING:
    from pykka._envelope import Envelope

__all__ = ["ActorProbe", "LoopActor", "LoopInbox", "ThreadActor", "use_loop"]

_thread_ids = itertools.count(1)

# Envelopes handled per actor per loop turn before yielding to other callbacks.
DRAIN_BATCH = 64


class ActorProbe:
    """Counters of one actor: messages handled, time in handler (ns), failures."""

    __slots__ = ("failures", "handler_ns", "messages")

    def __init__(self) -> None:
        self.messages = 0
        self.handler_ns = 0
        self.failures = 0


class LoopInbox:
    """A deque inbox; a put schedules one drain of the owning actor on its loop."""

    __slots__ = ("_actor", "_dead", "_loop", "_queue", "_scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: deque[Envelope[Any]] = deque()
        self._actor: LoopActor | None = None
        # True while a drain is scheduled (or the actor is not started yet): puts need not
        # schedule another. Reset by the drain before it pops, so a racing put is never missed.
        self._scheduled = True
        self._dead = False

    def put(self, envelope: Envelope[Any], /) -> None:
        if self._dead:  # raced with the actor's stop (a put from another thread): answer now
            if envelope.reply_to is not None:
                envelope.reply_to.set_exception(
                    (pykka.ActorDeadError, pykka.ActorDeadError("actor stopped"), None)
                )
            return
        self._queue.append(envelope)
        if not self._scheduled:
            self._scheduled = True
            actor = self._actor
            assert actor is not None
            if asyncio._get_running_loop() is self._loop:
                self._loop.call_soon(actor._drain)
            else:
                self._loop.call_soon_threadsafe(actor._drain)

    def get(self) -> Envelope[Any]:
        return self._queue.popleft()

    def empty(self) -> bool:
        return not self._queue

    def __len__(self) -> int:
        return len(self._queue)


@contextlib.contextmanager
def use_loop(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """Start loop actors from a thread that does not run `loop` (tests, a supervisor)."""
    previous = current_loop() if asyncio._get_running_loop() is None else None
    bind_loop(loop)
    try:
        yield
    finally:
        bind_loop(previous)


class LoopActor(pykka.Actor):
    """A pykka actor that runs on the event loop current when it is created (no thread).

    Keep pykka's whole API; only a *blocking* `get()`/`ask()`/`stop()` on the loop thread raises
    `LoopBlockingError` (use `ask(..., block=False)` and `await`).
    """

    actor_probe: ActorProbe

    @staticmethod
    def _create_actor_inbox() -> LoopInbox:
        loop = current_loop()
        if loop is None:
            raise RuntimeError("LoopActor created outside an event loop (see use_loop)")
        return LoopInbox(loop)

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return LoopFuture()

    def _start_actor_loop(self) -> None:
        inbox = self.actor_inbox
        assert isinstance(inbox, LoopInbox)
        self.actor_probe = ActorProbe()
        inbox._actor = self
        inbox._scheduled = True  # on_start runs first, then the drain it schedules
        if asyncio._get_running_loop() is inbox._loop:
            inbox._loop.call_soon(self._run_start)
        else:
            inbox._loop.call_soon_threadsafe(self._run_start)

    @property
    def actor_loop(self) -> asyncio.AbstractEventLoop:
        inbox = self.actor_inbox
        assert isinstance(inbox, LoopInbox)
        return inbox._loop

    def _run_start(self) -> None:
        self._actor_loop_setup()
        self._drain()

    def _drain(self) -> None:
        inbox = self.actor_inbox
        assert isinstance(inbox, LoopInbox)
        inbox._scheduled = False
        queue = inbox._queue
        stopped = self.actor_stopped
        budget = DRAIN_BATCH
        while queue and budget and not stopped.is_set():
            budget -= 1
            self._handle_envelope(queue.popleft())
        if stopped.is_set():
            inbox._scheduled = True  # never drain again
            inbox._dead = True  # puts from now on are answered with ActorDeadError at once
            self._actor_loop_teardown()
            return
        if queue and not inbox._scheduled:
            inbox._scheduled = True
            inbox._loop.call_soon(self._drain)

    def _handle_envelope(self, envelope: Envelope[Any]) -> None:
        # Mirrors pykka.Actor._actor_loop_running's body (pykka 4.5.0).
        probe = self.actor_probe
        started = time.perf_counter_ns()
        try:
            response = self._handle_receive(envelope.message)
            if envelope.reply_to is not None:
                envelope.reply_to.set(response)
        except Exception:
            probe.failures += 1
            if envelope.reply_to is not None:
                envelope.reply_to.set_exception()
            else:
                self._handle_failure(*sys.exc_info())
                try:
                    self.on_failure(*sys.exc_info())
                except Exception:
                    self._handle_failure(*sys.exc_info())
        except BaseException:
            self._stop()
            ActorRegistry.stop_all(block=False)
            raise
        finally:
            probe.messages += 1
            probe.handler_ns += time.perf_counter_ns() - started

    def can_handle_inline(self) -> bool:
        """True if a message handled right now would be in order: started, idle, alive."""
        inbox = self.actor_inbox
        assert isinstance(inbox, LoopInbox)
        return not inbox._scheduled and not inbox._queue and not self.actor_stopped.is_set()

    def handle_inline(self, message: Any) -> Any:
        """Handle an ask now, on the loop (see `can_handle_inline`); exceptions go to the caller,
        as an ask's would."""
        probe = self.actor_probe
        started = time.perf_counter_ns()
        try:
            return self._handle_receive(message)
        except Exception:
            probe.failures += 1
            raise
        except BaseException:
            self._stop()
            ActorRegistry.stop_all(block=False)
            raise
        finally:
            probe.messages += 1
            probe.handler_ns += time.perf_counter_ns() - started

    @classmethod
    def start_on(
        cls, loop: asyncio.AbstractEventLoop, *args: Any, **kwargs: Any
    ) -> pykka.ActorRef[Self]:
        """`start()` from a thread that does not run `loop`."""
        with use_loop(loop):
            return cls.start(*args, **kwargs)


class ThreadActor(pykka.ThreadingActor):
    """pykka's thread-per-actor runtime for blocking work; its replies are loop futures, completed
    on the caller's loop with `call_soon_threadsafe` (see `LoopFuture.set`)."""

    use_daemon_thread: ClassVar[bool] = True
    actor_probe: ActorProbe

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return LoopFuture()

    def _start_actor_loop(self) -> None:
        # pykka's ThreadingActor start, with the thread's scheduler slice reset first.
        self.actor_probe = ActorProbe()
        thread = threading.Thread(target=self._run_thread,
                                  name=f"{type(self).__name__}-{next(_thread_ids)}",
                                  daemon=self.use_daemon_thread)
        thread.start()

    def _run_thread(self) -> None:
        # Blocking work (fdatasync): its wake-ups must not preempt the core's loop, whose
        # thread may have asked for short slices (sched.py) that new threads inherit.
        set_thread_slice(0)
        self._actor_loop()

    def _handle_receive(self, message: Any) -> Any:
        probe = self.actor_probe
        started = time.perf_counter_ns()
        try:
            return super()._handle_receive(message)
        except Exception:
            probe.failures += 1
            raise
        finally:
            probe.messages += 1
            probe.handler_ns += time.perf_counter_ns() - started
