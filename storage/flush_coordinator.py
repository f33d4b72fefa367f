"""Core-level flush coalescing: many logs' flush requests covered by one round of fdatasyncs.

    loop thread(s)                       disk-writer thread
    --------------                       ------------------
    h = coord.request(log, offset, cb)   while running:
      (resolved at once if already          coord.wait_for_requests(timeout)
       durable, else queued for the         coord.run_round():
       next round)                            swap the queued requests out (under the lock)
                                              log.flush() once per log in the round
                                              resolve each handle whose offset is covered,
                                              fail the rest; callbacks run here

A request made while a round runs lands in the next round: it joins the next flush instead of
forcing its own. Callbacks run on the writer thread, so an event-loop owner passes one that
hands the result back with `loop.call_soon_threadsafe`. No asyncio here: the storage layer
must not know event loops. Works for anything `Flushable` (logs, the kvstore).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Protocol

from redshank.storage.errors import StorageError
from redshank.storage.file_io import FlushStep, sync_all

__all__ = ["FlushCoordinator", "FlushHandle", "Flushable", "SplitFlushable"]


class Flushable(Protocol):
    @property
    def flushed_offset(self) -> int: ...

    def flush(self) -> int:
        """Make everything written so far durable; return the durable offset."""


class SplitFlushable(Flushable, Protocol):
    """A target whose flush can be split around a shared sync (`Log`, `KvStore`)."""

    flush_stage: int

    def begin_flush(self) -> FlushStep: ...


class FlushHandle:
    """The outcome of one flush request: `offset` durable (`result`) or `error`."""

    __slots__ = ("_callbacks", "_done", "_event", "_lock", "error", "offset", "result")

    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.result: int | None = None
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._done = False
        # Made only for a blocking `wait` (rare: the broker uses callbacks); an Event is a
        # Condition and two locks, too dear to build for every request.
        self._event: threading.Event | None = None
        self._callbacks: list[Callable[[FlushHandle], None]] = []

    @property
    def done(self) -> bool:
        return self._done

    def add_done_callback(self, callback: Callable[[FlushHandle], None]) -> None:
        """Call `callback(handle)` once done (at once, on this thread, if it already is)."""
        with self._lock:
            if not self._done:
                self._callbacks.append(callback)
                return
        callback(self)

    def wait(self, timeout: float | None = None) -> bool:
        with self._lock:
            if self._done:
                return True
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        return event.wait(timeout)

    def _finish(self, result: int | None, error: BaseException | None) -> None:
        with self._lock:
            self.result, self.error, self._done = result, error, True
            callbacks, self._callbacks = self._callbacks, []
            event = self._event
        if event is not None:
            event.set()
        for callback in callbacks:
            callback(self)


class FlushCoordinator:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queued: dict[int, tuple[Flushable, list[FlushHandle]]] = {}
        # A round has been asked for (`claim_kick`) and has not yet taken the queue.
        self._kicked = False
        self.rounds = 0
        self.flushes = 0

    def request(
        self,
        target: Flushable,
        offset: int,
        callback: Callable[[FlushHandle], None] | None = None,
    ) -> FlushHandle:
        """Ask for `offset` of `target` to be durable (any thread)."""
        handle = FlushHandle(offset)
        if callback is not None:
            handle.add_done_callback(callback)
        durable = target.flushed_offset
        if durable >= offset:
            handle._finish(durable, None)
            return handle
        with self._cond:
            self._queued.setdefault(id(target), (target, []))[1].append(handle)
            self._cond.notify()
        return handle

    def claim_kick(self) -> bool:
        """Whether the caller should ask the writer for a round now: True for the first caller
        after a round took the queue, so many logs' requests share one wake-up of the writer
        (any thread)."""
        with self._cond:
            if self._kicked or not self._queued:
                return False
            self._kicked = True
            return True

    def pending(self) -> int:
        with self._cond:
            return sum(len(hs) for _, hs in self._queued.values())

    def wait_for_requests(self, timeout: float | None = None) -> bool:
        """Block the writer thread until a request is queued (or `timeout`)."""
        with self._cond:
            if not self._queued:
                self._cond.wait(timeout)
            return bool(self._queued)

    def wake(self) -> None:
        """Wake a writer blocked in `wait_for_requests` (e.g. to stop it)."""
        with self._cond:
            self._cond.notify_all()

    def run_round(self) -> int:
        """Flush each log with queued requests once and resolve its waiters (writer thread).
        Returns the number of logs flushed. Targets that split their flush (`begin_flush`:
        logs, kvstores) are written first and then made durable together (`sync_all`: one
        syncfs for many files), stage by stage (`flush_stage`: every kvstore of the round is
        durable before any log's batches are written); others flush one by one."""
        with self._cond:
            batch, self._queued = self._queued, {}
            self._kicked = False
        if not batch:
            return 0
        self.rounds += 1
        stages: dict[int, list[tuple[Callable[[], FlushStep], list[FlushHandle]]]] = {}
        for target, handles in batch.values():
            # (Not isinstance with the runtime-checkable protocol: that costs tens of us.)
            begin: Callable[[], FlushStep] | None = getattr(target, "begin_flush", None)
            if begin is not None:
                stages.setdefault(getattr(target, "flush_stage", 1), []).append(
                    (begin, handles))
            else:
                self._resolve(target.flush, handles)
        for stage in sorted(stages):
            self._synced_together(stages[stage])
        return len(batch)

    def _synced_together(
            self, group: list[tuple[Callable[[], FlushStep], list[FlushHandle]]]) -> None:
        begun: list[tuple[FlushStep, list[FlushHandle]]] = []
        outcomes: list[StorageError | None] = []
        try:
            for begin, handles in group:
                try:
                    begun.append((begin(), handles))
                except StorageError as exc:
                    for h in handles:
                        h._finish(None, exc)
            outcomes = sync_all([step.handle for step, _ in begun if step.handle is not None])
        finally:
            # Every begun step ends (its lock is released) whatever happened since.
            it = iter(outcomes)
            for step, handles in begun:
                if step.handle is None:
                    error: StorageError | None = None
                else:
                    error = next(it, StorageError("flush interrupted before its sync"))
                self._resolve(functools.partial(step.end, error), handles)

    def _resolve(self, flush: Callable[[], int], handles: list[FlushHandle]) -> None:
        try:
            durable = flush()
        except StorageError as exc:
            for h in handles:
                h._finish(None, exc)
            return
        self.flushes += 1
        for h in handles:
            if durable >= h.offset:
                h._finish(durable, None)
            else:
                # Truncated away meanwhile, or asked for an offset never appended.
                h._finish(None, StorageError(
                    f"offset {h.offset} not durable: flush reached {durable}"))

    def serve(self, stop: threading.Event, idle_timeout: float = 0.05) -> None:
        """A ready-made writer loop: run rounds until `stop` is set."""
        while not stop.is_set():
            if self.wait_for_requests(idle_timeout):
                self.run_round()
