"""The runtime implements pykka's private runtime seam: fail loudly if pykka changes it.

`LoopActor._handle_envelope` mirrors the body of `pykka.Actor._actor_loop_running` and relies on
`_actor_loop_setup`, `_actor_loop_teardown`, `_handle_receive`, `_handle_failure` and `_stop`; the
refs call `actor_class._create_future()` and put `Envelope`s into `actor_inbox`. A new pykka version
must be reviewed against loop_actor.py before this pin moves.
"""

from __future__ import annotations

import hashlib
import inspect
from importlib import metadata

import pykka
from pykka._actor import Actor
from pykka._envelope import Envelope
from pykka._ref import ActorRef

from redshank.actors.runtime.loop_actor import LoopActor, LoopInbox, ThreadActor
from redshank.actors.runtime.loop_future import LoopFuture

# sha256 of inspect.getsource(pykka.Actor._actor_loop_running) in pykka 4.5.0.
RUNNING_BODY_SHA256 = "4109f316d2be434e5a2a178eda154e0eb17919333986a4b505f33091e4987dbd"


def test_pykka_is_the_pinned_version() -> None:
    assert metadata.version("pykka") == "4.5.0"


def test_seam_is_the_three_abstract_methods() -> None:
    assert Actor.__abstractmethods__ == frozenset(
        {"_create_actor_inbox", "_create_future", "_start_actor_loop"}
    )
    assert not inspect.isabstract(LoopActor)
    assert not inspect.isabstract(ThreadActor)


def test_start_and_refs_use_the_seam() -> None:
    start_src = inspect.getsource(Actor.start)
    assert "obj._start_actor_loop()" in start_src
    assert "ActorRegistry.register(obj.actor_ref)" in start_src
    init_src = inspect.getsource(Actor.__init__)
    assert "self.actor_inbox = self._create_actor_inbox()" in init_src
    ask_src = inspect.getsource(ActorRef.ask)
    assert "self.actor_class._create_future()" in ask_src
    assert "self.actor_inbox.put(Envelope(message, reply_to=future))" in ask_src
    assert "self.actor_inbox.put(Envelope(message))" in inspect.getsource(ActorRef.tell)


def test_actor_loop_body_we_mirror_is_unchanged() -> None:
    source = inspect.getsource(Actor._actor_loop_running)
    assert hashlib.sha256(source.encode()).hexdigest() == RUNNING_BODY_SHA256
    for name in (
        "_actor_loop_setup",
        "_actor_loop_teardown",
        "_handle_receive",
        "_handle_failure",
        "_stop",
    ):
        assert callable(getattr(Actor, name)), name


def test_future_fields_loop_future_defaults_are_pykkas() -> None:
    # LoopFuture skips pykka's Future.__init__ and gives its fields class-level defaults.
    init_src = inspect.getsource(pykka.Future.__init__)
    assert "self._get_hook = None" in init_src
    assert "self._get_hook_result = _Unset()" in init_src
    fut: LoopFuture[int] = LoopFuture()
    assert fut._get_hook is None
    assert isinstance(fut._get_hook_result, pykka._future._Unset)
    fut.set_get_hook(lambda _timeout: 7)
    assert fut.get(timeout=0) == 7
    assert LoopFuture()._get_hook is None  # the hook went to that instance only


def test_envelope_and_inbox_shapes() -> None:
    env = Envelope("m", reply_to=None)
    assert (env.message, env.reply_to) == ("m", None)
    inbox_methods = {"put", "get", "empty"}
    assert inbox_methods <= set(dir(LoopInbox))
    assert issubclass(LoopFuture, pykka.Future)
    for name in (
        "get",
        "set",
        "set_exception",
        "set_get_hook",
        "map",
        "join",
        "filter",
        "reduce",
        "__await__",
    ):
        assert hasattr(pykka.Future, name), name
