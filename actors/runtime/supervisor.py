"""The supervisor: creates a node's mailboxes, runs one pinned process per core, restarts the dead.

Concern: core processes and the shared memory between them, nothing else (ARCHITECTURE.md
section 2). Cores are started with `multiprocess` in `forkserver` mode: each core is forked from a
fork server that preloaded the runtime and never ran a loop or a thread, so nothing is inherited
half-way (forking the supervisor, or a process that runs threads or a loop, is not safe), and a
restart costs a fork, not an interpreter start. `spawn` works too (slower). Both re-import the
parent's `__main__` in the child: guard it with `if __name__ == "__main__"`. Each core gets every
core's eventfd doorbell (passed as inherited descriptors) and finds
its rings by name in the control block's generations. When a core dies, the supervisor marks it
DEAD and rings every doorbell (peers fail what they asked of it), then restarts it with a new
generation and new rings after a backoff. On SIGTERM/SIGINT it stops the cores one at a time,
highest id first, and removes every segment. If the supervisor itself is killed, its cores die with
it (PR_SET_PDEATHSIG) and the next start on the same node directory removes the stale segments.

Run as a process: `python -m redshank.actors.runtime.supervisor --node-dir D --cores N
[--setup module:function]`. Must not know what the cores run (`setup` is pluggable).

`external_cores=K` (the embedding API, `hosted_core.py`): the last K cores are not started here but
hosted on threads of the supervising process; the supervisor creates their doorbells and rings,
marks them RUNNING with its own pid, and never restarts or stops them (their host does).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import time
from typing import Any

import multiprocess
import multiprocess.connection
import multiprocess.reduction
import structlog

from .control_block import ControlBlock, CoreState
from .core_process import CoreSetup, CoreSpec, core_main
from .log_setup import configure_logging
from .mailbox import DEFAULT_SPIN_S, ring_doorbell
from .node_dir import NodeDir
from .ring import RingSegment

__all__ = ["Supervisor", "main"]


class _InheritFd:
    """A descriptor handed to a spawned core (duplicated into the child while pickling)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def detach(self) -> int:  # only reached with the fork start method
        return self.fd

    def __reduce__(self) -> tuple[Any, ...]:
        return (_identity, (multiprocess.reduction.DupFd(self.fd),))


def _identity(value: Any) -> Any:
    return value


def _preload_modules(setup: Any) -> list[str]:
    modules = ["redshank.actors.runtime.core_process"]
    target = getattr(setup, "func", setup)  # functools.partial
    module = getattr(target, "__module__", None)
    if isinstance(module, str) and module != "__main__":
        modules.append(module)
    return modules


class Supervisor:
    def __init__(
        self,
        node_dir: str | os.PathLike[str],
        ncores: int,
        setup: CoreSetup | None = None,
        *,
        ring_capacity: int = 1 << 20,
        start_method: str = "forkserver",
        pin: bool = True,
        spin_s: float = DEFAULT_SPIN_S,
        loop_slice_us: int = 0,
        idle_check_s: float = 0.05,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 5.0,
        stable_s: float = 10.0,
        stop_timeout_s: float = 5.0,
        external_cores: int = 0,
    ) -> None:
        if ncores < 1:
            raise ValueError("ncores must be >= 1")
        if not 0 <= external_cores < ncores:
            raise ValueError("external_cores must leave at least one core to start")
        self.node = NodeDir(node_dir)
        self.ncores = ncores
        self.setup = setup
        self.ring_capacity = ring_capacity
        self.external_cores = external_cores
        self._ctx = multiprocess.get_context(start_method)
        if start_method == "forkserver":
            # Preload the runtime (not __main__) in the fork server: cores fork from a clean,
            # single-threaded process with no loop, already past the slow imports.
            self._ctx.set_forkserver_preload(_preload_modules(setup))
        cpus = sorted(os.sched_getaffinity(0))
        self._cpus: list[int | None] = [cpus[c % len(cpus)] if pin else None for c in range(ncores)]
        self.spin_s = spin_s
        self.loop_slice_us = loop_slice_us
        self.idle_check_s = idle_check_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.stable_s = stable_s
        self.stop_timeout_s = stop_timeout_s
        self.log = structlog.get_logger("redshank.supervisor")
        self.control: ControlBlock | None = None
        self._doorbells: list[int] = []
        self._gens = [0] * ncores
        self._procs: list[Any | None] = [None] * ncores
        self._started_at = [0.0] * ncores
        self._failures = [0] * ncores
        self._restart_at: dict[int, float] = {}
        self.restarts = 0
        self.stale_removed = 0
        self._stopping = False
        self._stop_requested = False

    # -- start -------------------------------------------------------------------------------

    def start(self) -> None:
        self.node.lock()
        try:
            self.stale_removed = self.node.remove_segments()
            if self.stale_removed:
                self.log.warning("stale_segments_removed", count=self.stale_removed)
            self.control = ControlBlock(self.node.control_name(), self.ncores, create=True)
            self._doorbells = [
                os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC) for _ in range(self.ncores)
            ]
            self._gens = [1] * self.ncores
            for src in range(self.ncores):
                for dst in range(self.ncores):
                    if src != dst:
                        self._create_ring(src, dst)
            for core in range(self.ncores - self.external_cores, self.ncores):
                # Hosted by this process: RUNNING before any core starts, so every core
                # attaches to its rings at once; its host marks it ready.
                self.control.set_core(core, 1, CoreState.RUNNING, os.getpid())
            for core in range(self.ncores - self.external_cores):
                self._spawn(core)
            self._write_info()
        except BaseException:
            self._teardown()
            raise

    def _create_ring(self, src: int, dst: int) -> None:
        name = self.node.ring_name(src, dst, self._gens[src], self._gens[dst])
        RingSegment.unlink(name)
        RingSegment(name, self.ring_capacity, create=True).close()

    def _unlink_rings_of(self, core: int) -> None:
        for peer in range(self.ncores):
            if peer != core:
                RingSegment.unlink(
                    self.node.ring_name(core, peer, self._gens[core], self._gens[peer])
                )
                RingSegment.unlink(
                    self.node.ring_name(peer, core, self._gens[peer], self._gens[core])
                )

    def _spawn(self, core: int) -> None:
        assert self.control is not None
        spec = CoreSpec(
            core=core,
            ncores=self.ncores,
            generation=self._gens[core],
            node_dir=str(self.node.path),
            cpu=self._cpus[core],
            supervisor_pid=os.getpid(),
            doorbells=tuple(_InheritFd(fd) for fd in self._doorbells),
            setup=self.setup,
            spin_s=self.spin_s,
            idle_check_s=self.idle_check_s,
            loop_slice_us=self.loop_slice_us,
        )
        proc = self._ctx.Process(target=core_main, args=(spec,), name=f"redshank-core-{core}")
        self.control.set_core(core, self._gens[core], CoreState.RUNNING, 0)
        proc.start()
        self.control.set_pid(core, proc.pid)
        self._procs[core] = proc
        self._started_at[core] = time.monotonic()
        self._ring_all()
        self.log.info("core_spawned", core=core, generation=self._gens[core], pid=proc.pid)

    @property
    def doorbells(self) -> list[int]:
        """Every core's eventfd doorbell (a hosted core's host needs them all)."""
        return list(self._doorbells)

    def _ring_all(self) -> None:
        for fd in self._doorbells:
            ring_doorbell(fd)

    def _write_info(self) -> None:
        self.node.write_info(
            {
                "supervisor_pid": os.getpid(),
                "ncores": self.ncores,
                "pids": [
                    os.getpid() if c >= self.ncores - self.external_cores
                    else p.pid if p is not None else None
                    for c, p in enumerate(self._procs)
                ],
                "generations": list(self._gens),
            }
        )

    # -- monitoring --------------------------------------------------------------------------

    def pid(self, core: int) -> int | None:
        proc = self._procs[core]
        return None if proc is None else int(proc.pid)

    def generation(self, core: int) -> int:
        return self._gens[core]

    def all_ready(self) -> bool:
        control = self.control
        return control is not None and all(
            control.ready(c) and control.generation(c) == self._gens[c] for c in range(self.ncores)
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.all_ready():
            if time.monotonic() > deadline:
                raise TimeoutError(f"cores not ready after {timeout} s")
            self.poll(0.01)

    def poll(self, timeout: float) -> None:
        """Wait up to `timeout` for a core to exit; handle exits and due restarts."""
        sentinels = {p.sentinel: c for c, p in enumerate(self._procs) if p is not None}
        wait_for = timeout
        if self._restart_at:
            wait_for = max(0.0, min(timeout, min(self._restart_at.values()) - time.monotonic()))
        ready = multiprocess.connection.wait(list(sentinels), wait_for) if sentinels else []
        if not sentinels and wait_for > 0:
            time.sleep(wait_for)
        for sentinel in ready:
            self._on_exit(sentinels[sentinel])
        now = time.monotonic()
        for core, due in sorted(self._restart_at.items()):
            if now >= due and not self._stopping:
                del self._restart_at[core]
                self._restart(core)

    def _on_exit(self, core: int) -> None:
        assert self.control is not None
        proc = self._procs[core]
        assert proc is not None
        proc.join()
        self._procs[core] = None
        self.control.set_state(core, CoreState.DEAD)
        self._ring_all()
        if self._stopping or self._stop_requested:
            return  # Ctrl-C reaches the cores too: they exit on their own, do not restart them
        ran = time.monotonic() - self._started_at[core]
        self._failures[core] = 1 if ran >= self.stable_s else self._failures[core] + 1
        delay = min(self.backoff_initial_s * 2 ** (self._failures[core] - 1), self.backoff_max_s)
        self._restart_at[core] = time.monotonic() + delay
        self.log.warning("core_died", core=core, exitcode=proc.exitcode, restart_in_s=delay)

    def _restart(self, core: int) -> None:
        self._unlink_rings_of(core)
        self._gens[core] += 1
        for peer in range(self.ncores):
            if peer != core:
                self._create_ring(core, peer)
                self._create_ring(peer, core)
        self._spawn(core)
        self.restarts += 1
        self._write_info()

    def kill_core(self, core: int, sig: int = signal.SIGKILL) -> None:
        pid = self.pid(core)
        if pid is not None:
            os.kill(pid, sig)

    # -- stop --------------------------------------------------------------------------------

    def request_stop(self, *_args: Any) -> None:
        self._stop_requested = True

    def run_forever(self) -> int:
        """Monitor until SIGTERM/SIGINT, then stop in order. For the supervisor process."""
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        while not self._stop_requested:
            self.poll(0.2)
        self.stop()
        return 0

    def stop(self) -> None:
        self._stopping = True
        self._restart_at.clear()
        for core in reversed(range(self.ncores)):
            proc = self._procs[core]
            if proc is None:
                continue
            if self.control is not None:
                self.control.set_state(core, CoreState.STOPPING)
                self._ring_all()
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            proc.join(self.stop_timeout_s)
            if proc.is_alive():
                self.log.warning("core_stop_timeout", core=core)
                proc.kill()
                proc.join()
            self._procs[core] = None
        self._teardown()
        self.log.info("node_stopped")

    def _teardown(self) -> None:
        for proc in self._procs:
            if proc is not None and proc.is_alive():
                proc.kill()
                proc.join()
        if self.control is not None:
            self.control.close()
            self.control = None
        self.node.remove_segments()
        for fd in self._doorbells:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._doorbells = []
        self.node.remove_info()
        self.node.unlock()


def load_setup(spec: str) -> CoreSetup:
    module_name, _, attr = spec.partition(":")
    setup: CoreSetup = getattr(importlib.import_module(module_name), attr)
    return setup


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="redshank-supervisor")
    parser.add_argument("--node-dir", required=True)
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--setup", help="module:function run on every core's loop")
    parser.add_argument("--no-pin", action="store_true")
    args = parser.parse_args(argv)
    configure_logging(None)
    setup = load_setup(args.setup) if args.setup else None
    sup = Supervisor(args.node_dir, args.cores, setup, pin=not args.no_pin)
    sup.start()
    return sup.run_forever()


if __name__ == "__main__":
    sys.exit(main())
