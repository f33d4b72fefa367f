"""`Runtime`: N pinned core processes started inside a user's program, and refs to reach them.

Concern: the parent side of embedding. A `Runtime` runs the broker's `Supervisor` with one extra,
*hosted* core (number `cores`, `HostedCore`: a loop thread of this process with its own rings), a
monitor thread that restarts dead cores, and the spawn table that a restarted core reads to start
the user's actors again. `Ref` turns a call from any thread into a request on the hosted loop.
Must not know what the user's actors do.

    user thread --Ref.ask--> hosted core (thread, core N) --ring--> core k (process) --> actor
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import functools
import logging
import os
import pickle
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog

from redshank.actors.runtime import (
    CoreDiedError,
    CoreSpec,
    CoreState,
    HostedCore,
    LoopBlockingError,
    NodeBusyError,
    NodeDir,
    Supervisor,
    UnpicklableMessageError,
    read_node_stats,
)
from redshank.actors.runtime.envelope import Kind, encode

from ._agent import AGENT, TABLE, SpawnEntry, check_actor_class, core_setup, write_table
from ._errors import RuntimeStoppedError, SpawnError

__all__ = ["Ref", "Runtime"]


_TEMP_PREFIX = "redshank-embed-"
# Tells from the program not yet in a mailbox (queued for the hosted loop, or waiting for ring
# room) before `Ref.tell` waits: bounds the program's memory when a core falls behind.
TELLS_IN_FLIGHT = 4096


def _sweep_stale_temp_nodes(log: Any) -> None:
    """Remove what killed programs left of their temporary nodes (shared memory, directory).
    Stale means: `node.json` is there (written once the supervisor holds the lock, removed at a
    clean stop) and nobody holds the lock any more."""
    for path in Path(tempfile.gettempdir()).glob(_TEMP_PREFIX + "*"):
        if not (path / "node.json").exists():
            continue  # starting (lock not taken yet) or already clean
        node = NodeDir(path)
        try:
            node.lock()
        except (NodeBusyError, OSError):
            continue  # a running program's node
        try:
            removed = node.remove_segments()
            log.warning("embed_stale_node_removed", node_dir=str(path), segments=removed)
        finally:
            node.unlock()
        shutil.rmtree(path, ignore_errors=True)


def _logger(level: int) -> Any:
    """The user's structlog configuration if they made one, else warnings and up to stderr."""
    if structlog.is_configured():
        return structlog.get_logger("redshank.embed")
    return structlog.wrap_logger(
        structlog.PrintLogger(sys.stderr),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
    )


class Runtime:
    """`cores` pinned core processes (numbered 0..cores-1) supervised by this program.

    Use as a context manager (or `start()`/`stop()`). Leaving the block, an exception (Ctrl-C's
    KeyboardInterrupt included) or interpreter exit stops the cores in order; if this process is
    killed, its cores die with it (PR_SET_PDEATHSIG). A core that dies is restarted with the
    actors spawned on it. The calling program is core number `cores` (`parent_core`): it sends,
    it hosts no actors."""

    def __init__(
        self,
        cores: int = 2,
        node_dir: str | os.PathLike[str] | None = None,
        *,
        pin: bool = True,
        log_level: int = logging.WARNING,
        ring_bytes: int = 1 << 20,
        start_timeout: float = 60.0,
    ) -> None:
        if cores < 1:
            raise ValueError("cores must be >= 1")
        self.cores = cores
        self.parent_core = cores
        self._node_dir = None if node_dir is None else Path(node_dir)
        self._pin = pin
        self._log_level = log_level
        self._ring_bytes = ring_bytes
        self._start_timeout = start_timeout
        self._log = _logger(log_level)
        self._sup: Supervisor | None = None
        self._hosted: HostedCore | None = None
        self._monitor: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._table: dict[tuple[int, str], SpawnEntry] = {}
        self._tell_credit = threading.BoundedSemaphore(TELLS_IN_FLIGHT)
        self._tmp: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def node_dir(self) -> Path:
        """Where the node lives (`redshank actors --node-dir` this path shows its cores)."""
        if self._node_dir is None:
            raise RuntimeStoppedError("the runtime is not started")
        return self._node_dir

    @property
    def running(self) -> bool:
        return self._sup is not None and not self._stopping.is_set()

    def start(self) -> Runtime:
        if self._sup is not None:
            raise RuntimeError("the runtime is already started")
        if self._node_dir is None:
            _sweep_stale_temp_nodes(self._log)
            self._tmp = tempfile.mkdtemp(prefix=_TEMP_PREFIX)
            self._node_dir = Path(self._tmp)
        self._node_dir.mkdir(parents=True, exist_ok=True)
        self._stopping.clear()
        self._tell_credit = threading.BoundedSemaphore(TELLS_IN_FLIGHT)  # none left in flight
        sup = Supervisor(
            self._node_dir,
            self.cores + 1,
            functools.partial(core_setup, log_level=self._log_level),
            ring_capacity=self._ring_bytes,
            pin=self._pin,
            external_cores=1,
        )
        sup.log = self._log
        try:
            sup.start()  # NodeBusyError if another supervisor holds node_dir
        except BaseException:
            self._remove_temp_dir()
            raise
        self._sup = sup
        try:
            # Only now that node_dir is ours (first-generation cores do not read the table).
            write_table(self._node_dir, [])
            spec = CoreSpec(
                core=self.parent_core,
                ncores=self.cores + 1,
                generation=1,
                node_dir=str(self._node_dir),
                cpu=None,
                supervisor_pid=os.getpid(),
                doorbells=tuple(sup.doorbells),
                setup=None,
            )
            self._hosted = HostedCore(spec, sup.doorbells, log=self._log)
            self._hosted.start(self._start_timeout)
            self._monitor = threading.Thread(
                target=self._watch, name="redshank-embed-monitor", daemon=True
            )
            self._monitor.start()
            self.wait_ready(self._start_timeout)
        except BaseException:
            self.stop()
            raise
        atexit.register(self.stop)
        return self

    def _watch(self) -> None:
        """Restart dead cores (the supervisor's poll) until `stop`."""
        sup = self._sup
        assert sup is not None
        while not self._stopping.is_set():
            try:
                sup.poll(0.05)
            except Exception as exc:  # boundary: keep supervising, loudly
                self._log.error("embed_monitor_failed", error=repr(exc))
                time.sleep(0.5)

    def stop(self) -> None:
        """Stop every core (highest first) and remove the node's shared memory. Idempotent."""
        with self._lock:
            sup = self._sup
            if sup is None:
                return
            self._stopping.set()
            if self._monitor is not None and self._monitor is not threading.current_thread():
                self._monitor.join()
            if self._hosted is not None:
                self._hosted.stop()
            sup.stop()
            self._sup = self._hosted = self._monitor = None
            self._table.clear()
            if self._node_dir is not None:
                (self._node_dir / TABLE).unlink(missing_ok=True)
            self._remove_temp_dir()
            atexit.unregister(self.stop)

    def _remove_temp_dir(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
            self._node_dir = None

    def __enter__(self) -> Runtime:
        return self.start()

    def __exit__(self, _t: type[BaseException] | None, _e: BaseException | None,
                 _tb: TracebackType | None) -> None:
        self.stop()

    # -- cores -------------------------------------------------------------------------------

    def _running(self) -> tuple[Supervisor, HostedCore]:
        sup, hosted = self._sup, self._hosted
        if sup is None or hosted is None or self._stopping.is_set() or not hosted.alive():
            raise RuntimeStoppedError("the runtime is not running")
        return sup, hosted

    def pid(self, core: int) -> int | None:
        """The process id of `core` now (None while it is being restarted)."""
        self._check_core(core)
        return self._running()[0].pid(core)

    def generation(self, core: int) -> int:
        """How many times `core` has started (1, then +1 per restart)."""
        self._check_core(core)
        sup, _ = self._running()
        assert sup.control is not None
        return sup.control.generation(core)

    def core_ready(self, core: int) -> bool:
        """`core` runs, has set up (its actors are spawned again after a restart), and this
        program is attached to it."""
        self._check_core(core)
        sup, hosted = self._running()
        control = sup.control
        assert control is not None
        transport: Any = hosted.router.transport
        gen = control.generation(core)
        return (control.state(core) is CoreState.RUNNING and control.ready(core)
                and transport.alive(core) and transport.generation(core) == gen)

    def wait_ready(self, timeout: float = 30.0, core: int | None = None) -> None:
        """Wait until `core` (every core if None) is ready; TimeoutError after `timeout`."""
        cores = range(self.cores) if core is None else [core]
        deadline = time.monotonic() + timeout
        while not all(self.core_ready(c) for c in cores):
            if time.monotonic() > deadline:
                raise TimeoutError(f"cores {list(cores)} not ready after {timeout} s")
            time.sleep(0.005)

    def stats(self) -> dict[str, Any]:
        """Every core's live stats, as `redshank actors --node-dir` reads them."""
        return read_node_stats(self.node_dir)

    def _check_core(self, core: int) -> None:
        if not 0 <= core < self.cores:
            raise ValueError(f"no core {core} (cores 0..{self.cores - 1})")

    # -- actors ------------------------------------------------------------------------------

    def ref(self, core: int, name: str) -> Ref:
        """The actor `name` on `core` (it need not exist yet: asks then fail)."""
        self._check_core(core)
        return Ref(self, core, name)

    def spawn(self, core: int, name: str, actor_class: type[Any], *args: Any,
              **kwargs: Any) -> Ref:
        """Start `actor_class(*args, **kwargs)` on `core` under `name` and return its ref.

        The class travels by module path (`module:qualname`): define it at module level in a
        module every core can import (the program's own `__main__` counts: each core imports it
        as `__mp_main__`, so guard the script with `if __name__ == "__main__"`). Arguments are
        pickled. If the core restarts, the actor is started again with the same arguments (its
        state is not kept). SpawnError on failure."""
        self._check_core(core)
        check_actor_class(actor_class)
        module, qualname = actor_class.__module__, actor_class.__qualname__
        if "<locals>" in qualname:
            raise SpawnError(f"{qualname} is defined in a function: cores import it by name")
        entry = SpawnEntry(core, name, module, qualname, tuple(args), dict(kwargs))
        try:
            pickle.dumps(entry)
        except Exception as exc:
            raise UnpicklableMessageError(f"spawn arguments of {name!r}: {exc}") from exc
        with self._lock:
            if (core, name) in self._table:
                raise SpawnError(f"an actor named {name!r} is already spawned on core {core}")
            self._table[(core, name)] = entry
            write_table(self.node_dir, list(self._table.values()))
        deadline = time.monotonic() + self._start_timeout
        agent = Ref(self, core, AGENT)
        try:
            while True:
                try:
                    agent.ask(("spawn", entry), timeout=max(0.0, deadline - time.monotonic()))
                    break
                except CoreDiedError:
                    # The core died meanwhile: its next incarnation spawns it from the table.
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)
        except BaseException:
            with self._lock:
                self._table.pop((core, name), None)
                write_table(self.node_dir, list(self._table.values()))
            raise
        return Ref(self, core, name)

    def stop_actor(self, core: int, name: str) -> bool:
        """Stop the actor `name` on `core` (it is not started again on a restart)."""
        self._check_core(core)
        with self._lock:
            self._table.pop((core, name), None)
            write_table(self.node_dir, list(self._table.values()))
        stopped: bool = Ref(self, core, AGENT).ask(("stop", name))
        return stopped


class Ref:
    """An actor on a core, seen from the parent program (any thread): the broker's `RemoteRef`
    calls, run on the hosted core's loop. Futures here are `concurrent.futures.Future`s
    (thread-safe; `asyncio.wrap_future` in an asyncio program), not `LoopFuture`s."""

    def __init__(self, runtime: Runtime, core: int, name: str) -> None:
        self.runtime = runtime
        self.core = core
        self.name = name

    def __repr__(self) -> str:
        return f"<embed.Ref core={self.core} name={self.name!r}>"

    def _hosted(self) -> HostedCore:
        try:
            return self.runtime._running()[1]
        except RuntimeStoppedError:
            raise
        except Exception as exc:
            raise RuntimeStoppedError(str(exc)) from exc

    def tell(self, message: Any) -> None:
        """Send without a reply. Encoded here (UnpicklableMessageError at once), then queued in
        order with this thread's other calls; waits while `TELLS_IN_FLIGHT` tells from the
        program are not in a mailbox yet (backpressure). CoreDiedError if the core is down."""
        hosted = self._hosted()
        router = hosted.router
        transport: Any = router.transport
        first, second = encode(Kind.TELL, 0, self.name, message)
        if not transport.alive(self.core):
            raise CoreDiedError(self.core, "not running")
        credit = self.runtime._tell_credit
        if not credit.acquire(blocking=asyncio._get_running_loop() is None):
            raise LoopBlockingError("a tell waiting for mailbox room on an event-loop thread")
        core = self.core

        def send() -> None:
            try:
                sent = transport.send(core, first, second)
            except CoreDiedError:
                credit.release()  # lost with the core, like the messages in its mailbox
                return
            router.probe.tells_out += 1
            if sent is None:
                credit.release()
            else:
                sent.add_done_callback(lambda _f: credit.release())

        try:
            hosted.submit(send)
        except RuntimeError as exc:
            credit.release()
            raise RuntimeStoppedError(str(exc)) from exc

    def ask(self, message: Any, *, block: bool = True, timeout: float | None = None) -> Any:
        """The actor's answer (its exception is raised here), or with `block=False` a future of
        it. CoreDiedError if the core dies first; TimeoutError after `timeout`."""
        if block and asyncio._get_running_loop() is not None:
            raise LoopBlockingError("a blocking ask on an event-loop thread; use block=False")
        hosted = self._hosted()
        router = hosted.router
        fut: concurrent.futures.Future[Any] = hosted.call(
            lambda: router.ref(self.core, self.name).ask(message, block=False)
        )
        return _result(fut, timeout) if block else fut

    def ask_two_phase(
        self, message: Any
    ) -> tuple[concurrent.futures.Future[Any], concurrent.futures.Future[Any]]:
        """(sequenced, acked) futures: the owner answers `Staged(value, acked_future)`."""
        hosted = self._hosted()
        router = hosted.router
        sequenced: concurrent.futures.Future[Any] = concurrent.futures.Future()
        acked: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def send() -> None:
            seq, ack = router.ref(self.core, self.name).ask_two_phase(message)
            seq.add_done_callback(lambda f: _settle(f, sequenced))
            ack.add_done_callback(lambda f: _settle(f, acked))

        started = hosted.call(send)
        started.add_done_callback(lambda f: _fail_both(f, sequenced, acked))
        return sequenced, acked


def _result(fut: concurrent.futures.Future[Any], timeout: float | None) -> Any:
    try:
        return fut.result(timeout)
    except concurrent.futures.TimeoutError:
        fut.cancel()
        raise TimeoutError(f"no answer within {timeout} s") from None


def _settle(src: Any, dst: concurrent.futures.Future[Any]) -> None:
    exc = src.exception()
    if dst.done():
        return
    if exc is not None:
        dst.set_exception(exc)
    else:
        dst.set_result(src.result())


def _fail_both(started: concurrent.futures.Future[Any], *futs: concurrent.futures.Future[Any]
               ) -> None:
    exc = started.exception()
    if exc is not None:
        for fut in futs:
            if not fut.done():
                fut.set_exception(exc)
