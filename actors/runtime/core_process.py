"""The body of one core process: pin, loop, mailboxes, router, the pluggable setup, clean exit.

Concern: turning a `CoreSpec` from the supervisor into a running core. It dies with its supervisor
(PR_SET_PDEATHSIG, then a getppid() check for the race before it), pins itself to one CPU, runs
one event loop (uvloop where available), attaches the rings to every live peer as the control block
names them (re-attaching when a peer restarts and failing requests to a peer that died), publishes
its stats block, then calls `spec.setup(context)`, the seam where the broker installs its actors.
SIGTERM/SIGINT stop it: actors stop, pending requests fail, rings close. Must not know what the
actors do.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import inspect
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pykka
import structlog

from .control_block import ControlBlock, CoreState
from .log_setup import configure_logging
from .loop_actor import LoopActor, LoopInbox, ThreadActor
from .mailbox import DEFAULT_SPIN_S, RingTransport
from .node_dir import NodeDir
from .ring import RingConsumer, RingProducer, RingSegment
from .router import CoreRouter
from .sched import set_thread_slice
from .stats_block import StatsWriter

__all__ = ["CoreContext", "CoreSetup", "CoreSpec", "core_main", "new_event_loop"]

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class CoreSpec:
    core: int
    ncores: int
    generation: int
    node_dir: str
    cpu: int | None
    supervisor_pid: int
    doorbells: tuple[Any, ...]  # DupFd handles (ints once detached in the child)
    setup: CoreSetup | None
    spin_s: float = DEFAULT_SPIN_S
    idle_check_s: float = 0.05
    stats_interval_s: float = 0.5
    # The loop thread's scheduler slice (sched.py); 0: the kernel's default.
    loop_slice_us: int = 0


@dataclass(slots=True)
class CoreContext:
    """What a core's setup gets: who it is, its loop, its router (register actors, get refs)."""

    core: int
    ncores: int
    generation: int
    loop: asyncio.AbstractEventLoop
    router: CoreRouter
    node_dir: str
    log: Any
    stop: Callable[[], None]
    # Stop the core loudly (exit code 70: the supervisor starts it again), from any thread: a
    # broken invariant, or a part the core cannot serve without (its disk writer) gone.
    fatal: Callable[[BaseException], None] = lambda exc: None

    def peers_ready(self) -> bool:
        """True when every core has finished its setup (read from the control block)."""
        host = _host
        return host is not None and all(host.control.ready(c) for c in range(self.ncores))

    def core_up(self, core: int) -> bool:
        """Whether `core` runs and has finished its setup, as the control block says now: False
        from the supervisor marking it dead until its next incarnation is set up. This core
        (and any core outside a supervised process) counts as up."""
        host = _host
        if host is None or core == self.core:
            return True
        control = host.control
        return control.state(core) is CoreState.RUNNING and control.ready(core)


CoreSetup = Callable[[CoreContext], Awaitable[None] | None]

_host: _CoreHost | None = None


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def _die_with_parent(supervisor_pid: int) -> None:
    """SIGKILL this core when its parent dies (the supervisor, or the fork server, which exits
    when the supervisor does); exit at once if that already happened before prctl."""
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    try:
        os.kill(supervisor_pid, 0)
    except ProcessLookupError:
        os._exit(1)
    if os.getppid() != parent:
        os._exit(1)
    # A forkserver child holds the server's "alive" pipe, which keeps the server (our parent)
    # running as long as any core lives: drop it, so the server exits with the supervisor and
    # the death signal reaches us.
    try:
        import multiprocess.forkserver as forkserver

        alive_fd = forkserver._forkserver._forkserver_alive_fd
        if alive_fd is not None:
            os.close(alive_fd)
            forkserver._forkserver._forkserver_alive_fd = None
    except (ImportError, AttributeError, OSError):
        pass


def freeze_startup_objects() -> None:
    """Take everything alive once the core is set up (modules, classes, functions, the
    actors, recovered state: about 100k objects in a broker core) out of the cyclic garbage
    collector's view, as Instagram does for its servers (`gc.freeze`). A full collection
    otherwise walks them all every time enough objects have survived since the last one: on
    a 3-node cluster sharing 2 CPUs that was a 50-70 ms stop of a core's loop under load
    (`gc.callbacks`), and the 8-partition e2e p99 of `redshank bench e2e --nodes 3` was 54-62
    ms against 15-19 ms frozen. Objects freed by reference counting are freed as before; only
    cycles among these never-collected startup objects would stay."""
    gc.collect()
    gc.freeze()


def core_main(spec: CoreSpec) -> None:
    """Process entry point (a module-level function, so `spawn` can import it)."""
    _die_with_parent(spec.supervisor_pid)
    if spec.cpu is not None:
        os.sched_setaffinity(0, {spec.cpu})
    doorbells = [d if isinstance(d, int) else d.detach() for d in spec.doorbells]
    configure_logging(spec.core)
    if spec.loop_slice_us and not set_thread_slice(spec.loop_slice_us):
        structlog.get_logger("redshank.core").info("loop_slice_unavailable",
                                                   slice_us=spec.loop_slice_us)
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    global _host
    _host = host = _CoreHost(spec, loop, doorbells)
    try:
        code = loop.run_until_complete(host.run())
    finally:
        loop.close()
    sys.exit(code)


class _CoreHost:
    def __init__(
        self,
        spec: CoreSpec,
        loop: asyncio.AbstractEventLoop,
        doorbells: list[int],
        *,
        hosted: bool = False,
    ) -> None:
        # hosted: the loop runs on a thread of a process that is not ours alone (an embedding
        # program, hosted_core.py): no signal handlers, and stopping stops only our actors.
        self.hosted = hosted
        self.spec = spec
        self.loop = loop
        self.node = NodeDir(spec.node_dir)
        self.log = structlog.get_logger("redshank.core")
        self.control = ControlBlock(self.node.control_name(), spec.ncores)
        self.transport = RingTransport(
            spec.core,
            loop,
            doorbells,
            self._on_frame,
            spin_s=spec.spin_s,
            idle_check_s=spec.idle_check_s,
            on_wake=self._check_peers,
            on_fatal=self._fatal,
        )
        self.router = CoreRouter(spec.core, spec.ncores, loop, self.transport)
        self.transport.on_frame = self.router.on_frame  # one call less per frame
        self.stats = StatsWriter(self.node.stats_name(spec.core))
        self._stopped = asyncio.Event()
        self._exit_code = 0
        self._started = time.time()

    def _on_frame(self, src: int, frame: memoryview) -> None:
        self.router.on_frame(src, frame)

    def _fatal(self, exc: BaseException) -> None:
        self.log.error("core_invariant_broken", error=repr(exc))
        self._exit_code = 70
        self.stop()

    def _fatal_threadsafe(self, exc: BaseException) -> None:
        try:
            self.loop.call_soon_threadsafe(self._fatal, exc)
        except RuntimeError:
            pass  # the loop is closed: the core is stopping anyway

    def stop(self) -> None:
        self._stopped.set()

    def _check_peers(self) -> None:
        """Attach to peers that (re)started, fail requests to peers that died."""
        me = self.spec.core
        for peer in range(self.spec.ncores):
            if peer == me:
                continue
            gen = self.control.generation(peer)
            state = self.control.state(peer)
            known = self.transport.generation(peer)
            attached = self.transport.alive(peer)
            if attached and (gen != known or state is not CoreState.RUNNING):
                self.transport.detach(peer, f"generation {known} ended")
                self.router.peer_down(peer, f"generation {known} ended")
                attached = False
            if not attached and state is CoreState.RUNNING and gen != 0 and gen != known:
                self._attach(peer, gen)

    def _attach(self, peer: int, gen: int) -> None:
        me, my_gen = self.spec.core, self.spec.generation
        try:
            out = RingSegment(self.node.ring_name(me, peer, my_gen, gen))
            inbound = RingSegment(self.node.ring_name(peer, me, gen, my_gen))
        except Exception:  # not created yet (the supervisor is mid-restart): retry on next wake
            return
        self.transport.attach(peer, gen, RingProducer(out), RingConsumer(inbound))

    async def run(self) -> int:
        if not self.hosted:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self.loop.add_signal_handler(sig, self.stop)
        self._check_peers()
        self.transport.start()
        self._publish_stats()
        self._watch_supervisor()
        ctx = CoreContext(
            self.spec.core,
            self.spec.ncores,
            self.spec.generation,
            self.loop,
            self.router,
            self.spec.node_dir,
            self.log,
            self.stop,
            self._fatal_threadsafe,
        )
        if self.spec.setup is not None:
            result = self.spec.setup(ctx)
            if inspect.isawaitable(result):
                await result
        self.control.mark_ready(self.spec.core, self.spec.generation)
        freeze_startup_objects()
        self.log.info("core_started", generation=self.spec.generation, pid=os.getpid())
        await self._stopped.wait()
        await self._shutdown()
        return self._exit_code

    def _watch_supervisor(self) -> None:
        """Belt and braces for PR_SET_PDEATHSIG: exit if the supervisor is gone."""
        try:
            os.kill(self.spec.supervisor_pid, 0)
        except ProcessLookupError:
            self.log.error("supervisor_gone")
            os._exit(1)
        if not self._stopped.is_set():
            self.loop.call_later(1.0, self._watch_supervisor)

    def _publish_stats(self) -> None:
        with contextlib.suppress(Exception):  # stats must never take the core down
            self.stats.publish(self.snapshot())
        if not self._stopped.is_set():
            self.loop.call_later(self.spec.stats_interval_s, self._publish_stats)

    def snapshot(self) -> dict[str, Any]:
        actors = []
        for name, ref in self.router.actors().items():
            actor = ref._actor_weakref()
            probe = getattr(actor, "actor_probe", None)
            if probe is None:
                continue
            row = {
                "name": name,
                "class": ref.actor_class.__name__,
                "alive": ref.is_alive(),
                "depth": _depth(ref.actor_inbox),
                "messages": probe.messages,
                "handler_ms": probe.handler_ns / 1e6,
                "failures": probe.failures,
            }
            # An actor may say how it is (a partition whose disk failed): a short string.
            status = getattr(actor, "actor_status", None)
            if isinstance(status, str):
                row["status"] = status
            actors.append(row)
        return {
            "core": self.spec.core,
            "generation": self.spec.generation,
            "pid": os.getpid(),
            "time": time.time(),
            "uptime_s": time.time() - self._started,
            "pending_requests": self.router.pending,
            "router": self.router.probe.as_dict(),
            **self.transport.stats(),
            "actors": actors,
        }

    async def _shutdown(self) -> None:
        self.log.info("core_stopping")
        # Loop actors first, then the thread actors that do their blocking work (the disk
        # writer): a thread actor's on_stop (final flush, sealing logs) must run after the last
        # loop actor that could hand it work has stopped.
        everyone = (list(self.router.actors().values()) if self.hosted
                    else pykka.ActorRegistry.get_all())
        for kind in (LoopActor, ThreadActor):
            stops = [r.stop(block=False) for r in everyone if issubclass(r.actor_class, kind)]
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(*(_awaitable(f) for f in stops)), 5.0)
            if kind is LoopActor:
                await _closing(everyone)
        self.router.fail_all("core stopping")
        self.transport._flush()
        with contextlib.suppress(Exception):
            self.stats.publish(self.snapshot())
        self.transport.close()
        self.stats.close()


def _depth(inbox: Any) -> int | None:
    if isinstance(inbox, LoopInbox):
        return len(inbox)
    qsize = getattr(inbox, "qsize", None)
    return int(qsize()) if qsize is not None else None


async def _closing(refs: list[pykka.ActorRef[Any]]) -> None:
    """Wait (bounded) for what loop actors' `on_stop` started and set as `actor_closing`: on_stop
    is synchronous, and some close over awaits (an RPC server, the controller's files)."""
    tasks = []
    for ref in refs:
        task = getattr(ref._actor_weakref(), "actor_closing", None)
        if isinstance(task, asyncio.Future) and not task.done():
            tasks.append(task)
    if tasks:
        await asyncio.wait(tasks, timeout=5.0)


async def _awaitable(fut: pykka.Future[Any]) -> Any:
    with contextlib.suppress(Exception):
        return await fut
    return None
