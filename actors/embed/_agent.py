"""What runs on each core of an embedded runtime: the setup and the agent that starts user actors.

Concern: turning a spawn request `(core, name, module, qualname, args)` into a running, registered
actor on this core, and starting them again when the core itself restarts (the spawn table the
parent keeps in `<node_dir>/embed-actors.pickle`). Imported by module path in every core (the
fork server preloads it). Must not know about the parent's threads or the supervisor.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import pickle
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pykka
import structlog

from redshank.actors.runtime import CoreContext, LoopActor, ThreadActor

from ._errors import SpawnError

__all__ = [
    "AGENT",
    "TABLE",
    "SpawnEntry",
    "core_setup",
    "current_context",
    "read_table",
    "write_table",
]

AGENT = "redshank.embed.agent"
TABLE = "embed-actors.pickle"

_context: CoreContext | None = None


@dataclass(frozen=True, slots=True)
class SpawnEntry:
    core: int
    name: str
    module: str
    qualname: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


def current_context() -> CoreContext | None:
    return _context


def read_table(node_dir: str | os.PathLike[str]) -> list[SpawnEntry]:
    try:
        blob = (Path(node_dir) / TABLE).read_bytes()
    except FileNotFoundError:
        return []
    entries: list[SpawnEntry] = pickle.loads(blob)
    return entries


def write_table(node_dir: str | os.PathLike[str], entries: list[SpawnEntry]) -> None:
    """Replace the table atomically (a core restarting reads either version, never half)."""
    path = Path(node_dir) / TABLE
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(entries, protocol=pickle.HIGHEST_PROTOCOL))
    os.replace(tmp, path)


def actor_class(module: str, qualname: str) -> type[pykka.Actor]:
    """The class at `module:qualname` as this process imports it (`__main__` is the user's
    script, which multiprocess imports in every core)."""
    try:
        target: Any = importlib.import_module(module)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise SpawnError(f"cannot import {module}:{qualname} on this core: {exc}") from None
    check_actor_class(target)
    cls: type[pykka.Actor] = target
    return cls


def check_actor_class(cls: Any) -> None:
    if not (isinstance(cls, type) and issubclass(cls, (LoopActor, ThreadActor))):
        raise SpawnError(
            f"{cls!r} is not a LoopActor or ThreadActor subclass (a plain pykka actor's "
            "futures cannot answer another core)"
        )


def spawn(ctx: CoreContext, entry: SpawnEntry) -> str:
    """Start and register `entry` on this core; "exists" if it already runs (a retried spawn)."""
    current = ctx.router.actors().get(entry.name)
    if current is not None and current.is_alive():
        return "exists"
    cls = actor_class(entry.module, entry.qualname)
    try:
        ref = cls.start(*entry.args, **entry.kwargs)
    except Exception as exc:
        raise SpawnError(f"{entry.qualname}(...) raised {type(exc).__name__}: {exc}") from None
    ctx.router.register(entry.name, ref)
    return "spawned"


class Agent(LoopActor):
    """On every core of an embedded runtime, named `AGENT`: starts and stops user actors on the
    parent's request. Created by `core_setup`; ends with its core."""

    def __init__(self, ctx: CoreContext) -> None:
        super().__init__()
        self.ctx = ctx

    def on_receive(self, message: Any) -> Any:
        op, arg = message
        if op == "spawn":
            return spawn(self.ctx, arg)
        if op == "stop":
            ref = self.ctx.router.actors().get(arg)
            self.ctx.router.unregister(arg)
            if ref is not None:
                ref.stop(block=False)
            return ref is not None
        raise ValueError(f"unknown agent request {op!r}")


def core_setup(ctx: CoreContext, log_level: int = logging.WARNING) -> None:
    """The `setup` of every core of an embedded runtime (runs on its loop before it is ready)."""
    global _context
    _context = ctx
    # Ctrl-C reaches the whole process group: the parent program decides what it means (its
    # KeyboardInterrupt ends the `with Runtime(...)` block, which stops the cores in order).
    with contextlib.suppress(Exception):
        ctx.loop.remove_signal_handler(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(log_level))
    ctx.router.register(AGENT, Agent.start(ctx))
    if ctx.generation == 1:
        return  # a first start: the table is the parent's to write (it may be a stale one)
    for entry in read_table(ctx.node_dir):
        if entry.core == ctx.core:
            try:  # a restarted core: start the user's actors again
                spawn(ctx, entry)
            except SpawnError as exc:
                ctx.log.error("embed_respawn_failed", actor=entry.name, error=str(exc))
