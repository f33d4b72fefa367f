"""The public embedding API: Redshank's actor runtime and partition log inside your own program.

One import, semver-stable (see docs/embedding.md for what is stable and what is not):

    from redshank.actors import embed

    with embed.Runtime(cores=2) as rt:
        counter = rt.spawn(1, "counter", Counter)   # Counter: an embed.LoopActor subclass
        counter.tell(5)
        print(counter.ask("total"))

Everything a user needs is re-exported here: the runtime (`Runtime`, `Ref`), what runs on the
cores (`LoopActor`, `ThreadActor`, `LoopFuture`, `Staged`, `current_core`, `ref`), the log
(`Log`, `OffsetStore`, `Record`), data transforms (`Transform`, `InputRecord`, `Output`,
`TransformContext`: docs/transforms.md) and every documented exception.
"""

from pykka import ActorDeadError

from redshank.actors.runtime import (
    CoreContext,
    CoreDiedError,
    LoopActor,
    LoopBlockingError,
    LoopFuture,
    NodeBusyError,
    RemoteError,
    Staged,
    ThreadActor,
    UndecodableMessageError,
    UnpicklableMessageError,
)
from redshank.actors.runtime.router import LocalRef, RemoteRef

from ._agent import current_context
from ._errors import EmbedError, LogBusyError, NotOnACoreError, RuntimeStoppedError, SpawnError
from ._log import Log, OffsetStore, Record
from ._runtime import Ref, Runtime
from .transform import InputRecord, Output, Transform, TransformContext

__all__ = [
    "ActorDeadError",
    "CoreContext",
    "CoreDiedError",
    "EmbedError",
    "InputRecord",
    "LocalRef",
    "Log",
    "LogBusyError",
    "LoopActor",
    "LoopBlockingError",
    "LoopFuture",
    "NodeBusyError",
    "NotOnACoreError",
    "OffsetStore",
    "Output",
    "Record",
    "Ref",
    "RemoteError",
    "RemoteRef",
    "Runtime",
    "RuntimeStoppedError",
    "SpawnError",
    "Staged",
    "ThreadActor",
    "Transform",
    "TransformContext",
    "UndecodableMessageError",
    "UnpicklableMessageError",
    "current_core",
    "ref",
]


def current_core() -> CoreContext:
    """The core the calling actor runs on (its number, `ncores`, loop and router).
    NotOnACoreError outside a runtime's core process."""
    ctx = current_context()
    if ctx is None:
        raise NotOnACoreError("not running on a core of an embedded runtime")
    return ctx


def ref(core: int, name: str) -> LocalRef | RemoteRef:
    """From an actor on a core: the actor `name` on `core` (the broker's own refs; `ask` them
    with `block=False` and `await`, or return the future from `on_receive`)."""
    return current_core().router.ref(core, name)
