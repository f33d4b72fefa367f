"""The exceptions the embedding API defines (the runtime's own are re-exported by `__init__`).

Concern: naming what a user of `redshank.actors.embed` can get wrong or run into. Every class here
pickles by its message, so an error raised on a core reaches the parent intact.
"""

from __future__ import annotations

__all__ = ["EmbedError", "LogBusyError", "NotOnACoreError", "RuntimeStoppedError", "SpawnError"]


class EmbedError(Exception):
    """Base of the errors this API defines."""


class SpawnError(EmbedError):
    """An actor could not be started on a core: its class is not importable there by module path
    (defined inside a function, or in a module the core cannot import), is not a `LoopActor` or
    `ThreadActor`, its name is taken on that core, or its constructor raised (the message says
    which)."""


class RuntimeStoppedError(EmbedError, RuntimeError):
    """The `Runtime` is not running (not started yet, or stopped)."""


class NotOnACoreError(EmbedError, RuntimeError):
    """`current_core()` or `ref()` was called outside an actor running on a runtime's core."""


class LogBusyError(EmbedError):
    """Another open `Log` or `OffsetStore` (in this or another process) holds the directory."""
