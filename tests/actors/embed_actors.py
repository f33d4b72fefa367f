"""Actors the embedding tests spawn. A core imports them by module path: the tests put this
directory on sys.path (multiprocess hands sys.path to every core)."""

from __future__ import annotations

import sys
import types
from typing import Any

from redshank.actors import embed


def module_here_only(name: str) -> types.ModuleType:
    """A module (with a class `Thing`) that exists in the calling process only."""
    module = types.ModuleType(name)
    exec("class Thing:\n    pass\n", module.__dict__)
    sys.modules[name] = module
    return module


class Echo(embed.LoopActor):
    def on_receive(self, message: Any) -> Any:
        if message == "boom":
            raise ValueError("boom")
        if message == "where":
            return embed.current_core().core
        if message == "alien":  # an answer the program cannot unpickle
            return module_here_only("core_only").Thing()
        return message


class Relay(embed.LoopActor):
    """Asks another actor on behalf of the caller, the non-blocking way or (wrongly) blocking."""

    def on_receive(self, message: Any) -> Any:
        op, core, name, payload = message
        target = embed.ref(core, name)
        if op == "relay":
            return target.ask(payload, block=False)  # followed: the caller gets its value
        if op == "block":
            return target.ask(payload)  # a blocking ask on the core's loop: LoopBlockingError
        if op == "tell":
            target.tell(payload)
            return None
        raise ValueError(op)


class Owner(embed.LoopActor):
    """Two-phase owner: sequences at once, acknowledges a little later."""

    def __init__(self) -> None:
        super().__init__()
        self.seq = 0

    def on_receive(self, message: Any) -> Any:
        self.seq += 1
        acked: embed.LoopFuture[Any] = embed.LoopFuture(self.actor_loop)
        self.actor_loop.call_later(0.01, acked.set, ("acked", message, self.seq))
        return embed.Staged(("sequenced", message, self.seq), acked)


class Counter(embed.LoopActor):
    """Checks that the ints it is told arrive in order, once each."""

    def __init__(self) -> None:
        super().__init__()
        self.next = 0
        self.out_of_order = 0

    def on_receive(self, message: Any) -> Any:
        if message == "count":
            return (self.next, self.out_of_order)
        self.out_of_order += message != self.next
        self.next = message + 1
        return None


class Silent(embed.LoopActor):
    """Never answers an ask."""

    def on_receive(self, message: Any) -> Any:
        return embed.LoopFuture(self.actor_loop)


class Fails(embed.LoopActor):
    def __init__(self) -> None:
        super().__init__()
        raise RuntimeError("constructor failed")


class NotAnActor:
    pass
