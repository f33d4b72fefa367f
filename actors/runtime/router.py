"""Addressing actors across cores: `(core, name)` references, correlation ids, two-phase requests.

Concern: one core's routing table and its pending requests. A frame from a peer becomes a local
tell/ask; a local ask to a peer becomes a frame and a pending future completed by correlation id; a
peer that dies fails every pending future addressed to it with `CoreDiedError`. The bytes move
through a `Transport` (shared-memory rings between processes, or in-process queues in the
deterministic mode). Must not know about rings, processes or the supervisor.

Two-phase request (the produce path, ARCHITECTURE.md section 3):

    caller core                         owner core
    ask_two_phase(msg) --ASK_TWO_PHASE--> actor.on_receive(msg) -> Staged(seq_value, acked_future)
    sequenced future  <--SEQUENCED------  (at once: the order is fixed)
    acked future      <--ACKED----------  (when acked_future completes)

Order per (source core, destination core, key) holds because a ring, an overflow queue and an actor
inbox are all FIFO: requests for one key must go to one actor, which answers `Staged` synchronously.
"""

from __future__ import annotations

import asyncio
import itertools
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import pykka

from .envelope import EnvelopeError, Kind, UndecodableMessageError, decode_fields, detach, encode
from .loop_actor import LoopActor
from .loop_future import LoopFuture, done_future

__all__ = [
    "CoreDiedError",
    "CoreRouter",
    "LocalRef",
    "RemoteError",
    "RemoteRef",
    "RouterProbe",
    "Staged",
    "Transport",
]


# Kinds as plain ints for the per-frame dispatch (decode_fields returns ints).
_TELL, _ASK, _REPLY, _ERROR = int(Kind.TELL), int(Kind.ASK), int(Kind.REPLY), int(Kind.ERROR)
_ASK_TWO_PHASE, _SEQUENCED, _ACKED = int(Kind.ASK_TWO_PHASE), int(Kind.SEQUENCED), int(Kind.ACKED)
# The members themselves for the hot sends: a module global is cheaper than `Kind.X` (an enum
# class attribute lookup) on every message.
_K_TELL, _K_ASK, _K_REPLY = Kind.TELL, Kind.ASK, Kind.REPLY


class CoreDiedError(pykka.ActorDeadError):
    """The core that owns the actor died (or was stopped) before answering."""

    def __init__(self, core: int, detail: str = "") -> None:
        super().__init__(f"core {core} died{': ' + detail if detail else ''}")
        self.core = core

    def __reduce__(self) -> tuple[Any, ...]:
        return (CoreDiedError, (self.core,))


class RemoteError(Exception):
    """An exception raised on another core that could not be pickled back."""


@dataclass(frozen=True, slots=True)
class Staged:
    """What a two-phase handler returns: the sequenced reply now, the acknowledgement later."""

    sequenced: Any
    acked: LoopFuture[Any]


class Transport(Protocol):
    """Moves frames to peer cores, FIFO per destination, never dropping while the peer lives."""

    def send(
        self, dst: int, first: bytes, second: bytes | bytearray | memoryview
    ) -> LoopFuture[None] | None:
        """Queue one frame. None: it is in the mailbox; a future: it waits for room.
        Raises CoreDiedError if `dst` is down."""
        ...

    def generation(self, core: int) -> int:
        """The incarnation of `core` as this core knows it (bumped when it restarts)."""
        ...


class RouterProbe:
    __slots__ = ("asks_in", "asks_out", "replies_in", "tells_in", "tells_out", "undeliverable")

    def __init__(self) -> None:
        self.tells_out = self.asks_out = self.tells_in = self.asks_in = 0
        self.replies_in = self.undeliverable = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class _Pending:
    __slots__ = ("acked", "dst", "reply")

    def __init__(self, dst: int, reply: LoopFuture[Any], acked: LoopFuture[Any] | None) -> None:
        self.dst = dst
        self.reply = reply
        self.acked = acked


RawHandler = Callable[[int, memoryview], None]


class CoreRouter:
    """One core's named actors and its requests to other cores."""

    def __init__(
        self, core: int, ncores: int, loop: asyncio.AbstractEventLoop, transport: Transport
    ) -> None:
        self.core = core
        self.ncores = ncores
        self.loop = loop
        self.transport = transport
        self.probe = RouterProbe()
        self._actors: dict[str, pykka.ActorRef[Any]] = {}
        self._raw: dict[str, RawHandler] = {}
        self._inline: dict[str, LoopActor] = {}
        self._pending: dict[int, _Pending] = {}
        self._corr = itertools.count(1)

    # -- local registration ------------------------------------------------------------------

    def register(self, name: str, ref: pykka.ActorRef[Any]) -> None:
        self._actors[name] = ref
        actor = ref._actor_weakref()
        if isinstance(actor, LoopActor) and actor.actor_loop is self.loop:
            self._inline[name] = actor
        else:
            self._inline.pop(name, None)

    def unregister(self, name: str) -> None:
        self._actors.pop(name, None)
        self._inline.pop(name, None)
        self._raw.pop(name, None)

    def register_raw(self, name: str, handler: RawHandler) -> None:
        """`handler(src_core, view)` runs inside the mailbox drain with the payload read in place
        (a view into the ring, valid only during the call) for tells of bytes to `name`."""
        self._raw[name] = handler

    def actors(self) -> dict[str, pykka.ActorRef[Any]]:
        return dict(self._actors)

    def ref(self, core: int, name: str) -> LocalRef | RemoteRef:
        if not 0 <= core < self.ncores:
            raise ValueError(f"no core {core} (cores 0..{self.ncores - 1})")
        if core == self.core:
            return LocalRef(self, name)
        return RemoteRef(self, core, name)

    @property
    def pending(self) -> int:
        return len(self._pending)

    # -- outgoing ----------------------------------------------------------------------------

    def _send(
        self, dst: int, kind: Kind, corr: int, name: str, message: Any
    ) -> LoopFuture[None] | None:
        first, second = encode(kind, corr, name, message)
        return self.transport.send(dst, first, second)

    def tell(self, dst: int, name: str, message: Any) -> LoopFuture[None]:
        self.probe.tells_out += 1
        sent = self._send(dst, _K_TELL, 0, name, message)
        return _SENT if sent is None else sent

    def ask(self, dst: int, name: str, message: Any) -> LoopFuture[Any]:
        return self._request(dst, name, message, _K_ASK, None)

    def ask_two_phase(
        self, dst: int, name: str, message: Any
    ) -> tuple[LoopFuture[Any], LoopFuture[Any]]:
        acked: LoopFuture[Any] = LoopFuture(self.loop)
        return self._request(dst, name, message, Kind.ASK_TWO_PHASE, acked), acked

    def _request(
        self, dst: int, name: str, message: Any, kind: Kind, acked: LoopFuture[Any] | None
    ) -> LoopFuture[Any]:
        self.probe.asks_out += 1
        reply: LoopFuture[Any] = LoopFuture(self.loop)
        corr = next(self._corr)
        first, second = encode(kind, corr, name, message)
        try:
            self.transport.send(dst, first, second)
        except CoreDiedError as exc:
            reply.fail(exc)
            if acked is not None:
                acked.fail(exc)
            return reply
        self._pending[corr] = _Pending(dst, reply, acked)
        return reply

    # -- incoming ----------------------------------------------------------------------------

    def on_frame(self, src: int, frame: memoryview) -> None:
        """Handle one frame from `src` (called by the transport, in ring order)."""
        try:
            kind, corr, name, message = decode_fields(frame, copy=False)
        except UndecodableMessageError as exc:
            self._on_undecodable(src, exc)
            return
        if kind == _REPLY:
            self._on_reply(kind, corr, message)
        elif kind == _ASK:
            self._on_ask(src, corr, name, message, False)
        elif kind == _TELL:
            self._on_tell(src, name, message)
        elif kind == _ASK_TWO_PHASE:
            self._on_ask(src, corr, name, message, True)
        else:
            self._on_reply(kind, corr, message)

    def _on_undecodable(self, src: int, exc: UndecodableMessageError) -> None:
        """A message whose class this core cannot import: fail the request it belongs to."""
        if exc.kind in (_ASK, _ASK_TWO_PHASE):
            self._reply_error(src, exc.corr, exc)
        elif exc.kind == _TELL:
            self.probe.undeliverable += 1
        else:  # a reply: fail the request that was waiting for it
            entry = self._pending.pop(exc.corr, None)
            if entry is not None:
                _fail_entry(entry, exc)

    def _on_tell(self, src: int, name: str, message: Any) -> None:
        self.probe.tells_in += 1
        raw = self._raw.get(name)
        if raw is not None and isinstance(message, memoryview):
            raw(src, message)
            return
        message = detach(message)  # the actor handles it later: copy out of the ring
        ref = self._actors.get(name)
        try:
            if ref is None:
                raise pykka.ActorDeadError(name)
            ref.tell(message)
        except pykka.ActorDeadError:
            self.probe.undeliverable += 1

    def _on_ask(self, src: int, corr: int, name: str, message: Any, two_phase: bool) -> None:
        self.probe.asks_in += 1
        if isinstance(message, memoryview):
            message = bytes(message)
        generation = self.transport.generation(src)
        actor = self._inline.get(name)
        if actor is not None and actor.can_handle_inline():
            # Fast path: the actor is idle on this loop, so handling the ask now keeps its
            # order and skips an envelope, a future and a loop turn. The message may hold
            # views into the ring (a codec's tail read in place: envelope.register_codec),
            # valid for this call: the handler copies what it keeps.
            try:
                value = actor.handle_inline(message)
            except Exception as exc:
                self._reply_error(src, corr, exc)
                return
            if two_phase or isinstance(value, LoopFuture):
                self._answer(src, generation, corr, two_phase, value)
            else:  # answered within this call: the caller's generation cannot have changed
                self._reply(src, _K_REPLY, corr, value)
            return

        def answer(done: LoopFuture[Any]) -> None:
            exc = done.exception()
            if exc is not None:
                if self.transport.generation(src) == generation:
                    self._reply_error(src, corr, exc)
            else:
                self._answer(src, generation, corr, two_phase, done.result())

        self._local_ask(name, detach(message)).add_done_callback(answer)

    def _answer(self, src: int, generation: int, corr: int, two_phase: bool, value: Any) -> None:
        if self.transport.generation(src) != generation:
            return  # the caller's incarnation died: its futures already failed
        if isinstance(value, LoopFuture):  # an async handler: answer when it is done

            def later(done: LoopFuture[Any]) -> None:
                exc = done.exception()
                if exc is not None:
                    if self.transport.generation(src) == generation:
                        self._reply_error(src, corr, exc)
                else:
                    self._answer(src, generation, corr, two_phase, done.result())

            value.add_done_callback(later)
        elif two_phase:
            self._reply_two_phase(src, generation, corr, value)
        else:
            self._reply(src, _K_REPLY, corr, value)

    def _local_ask(self, name: str, message: Any) -> LoopFuture[Any]:
        ref = self._actors.get(name)
        if ref is None:
            return _failed(
                pykka.ActorDeadError(f"no actor {name!r} on core {self.core}"), self.loop
            )
        fut = ref.ask(message, block=False)
        assert isinstance(fut, LoopFuture), "cross-core asks need loop actors (LoopFuture)"
        return fut

    def _reply_two_phase(self, src: int, generation: int, corr: int, value: Any) -> None:
        if not isinstance(value, Staged):
            self._reply(src, Kind.SEQUENCED, corr, value)
            self._reply(src, Kind.ACKED, corr, value)
            return
        self._reply(src, Kind.SEQUENCED, corr, value.sequenced)

        def acked(done: LoopFuture[Any]) -> None:
            if self.transport.generation(src) != generation:
                return
            exc = done.exception()
            if exc is not None:
                self._reply_error(src, corr, exc)
            else:
                self._reply(src, Kind.ACKED, corr, done.result())

        value.acked.add_done_callback(acked)

    def _reply(self, dst: int, kind: Kind, corr: int, value: Any) -> None:
        try:
            first, second = encode(kind, corr, "", value)
            self.transport.send(dst, first, second)
        except CoreDiedError:
            pass  # nobody left to answer
        except Exception as exc:  # the value does not encode: answer with the error instead
            self._reply_error(dst, corr, exc)

    def _reply_error(self, dst: int, corr: int, exc: BaseException) -> None:
        try:
            pickle.dumps(exc)
        except Exception:
            exc = RemoteError(f"{type(exc).__name__}: {exc}")
        try:
            self._send(dst, Kind.ERROR, corr, "", exc)
        except CoreDiedError:
            pass

    def _on_reply(self, kind: int, corr: int, message: Any) -> None:
        self.probe.replies_in += 1
        message = detach(message)  # its future's callbacks may run after the frame is released
        if kind == _SEQUENCED:
            entry = self._pending.get(corr)
            if entry is not None:
                entry.reply.set(message)
            return
        entry = self._pending.pop(corr, None)
        if entry is None:
            return  # the request was already failed (its core was declared dead)
        if kind == _REPLY:
            entry.reply._set_on_loop(message)
        elif kind == _ACKED:
            assert entry.acked is not None
            entry.acked.set(message)
        elif kind == _ERROR:
            exc = message if isinstance(message, BaseException) else RemoteError(repr(message))
            _fail_entry(entry, exc)
        else:
            raise EnvelopeError(f"unexpected kind {kind!r}")

    # -- peers -------------------------------------------------------------------------------

    def peer_down(self, core: int, detail: str = "") -> int:
        """Fail every request pending on `core`; returns how many."""
        failed = [corr for corr, entry in self._pending.items() if entry.dst == core]
        for corr in failed:
            _fail_entry(self._pending.pop(corr), CoreDiedError(core, detail))
        return len(failed)

    def fail_all(self, detail: str) -> None:
        for core in range(self.ncores):
            self.peer_down(core, detail)


def _fail_entry(entry: _Pending, exc: BaseException) -> None:
    if not entry.reply._claimed:
        entry.reply.fail(exc)
    if entry.acked is not None and not entry.acked._claimed:
        entry.acked.fail(exc)


def _failed(exc: BaseException, loop: asyncio.AbstractEventLoop) -> LoopFuture[Any]:
    fut: LoopFuture[Any] = LoopFuture(loop)
    fut.fail(exc)
    return fut


_SENT: LoopFuture[None] = done_future(None)


class LocalRef:
    """`(core, name)` on this core: the same calls as `RemoteRef`, straight into the inbox."""

    def __init__(self, router: CoreRouter, name: str) -> None:
        self.router = router
        self.core = router.core
        self.name = name

    def _target(self) -> pykka.ActorRef[Any]:
        ref = self.router._actors.get(self.name)
        if ref is None:
            raise pykka.ActorDeadError(f"no actor {self.name!r} on core {self.core}")
        return ref

    def tell(self, message: Any) -> LoopFuture[None]:
        self._target().tell(message)
        return _SENT

    def ask(self, message: Any, *, block: bool = True, timeout: float | None = None) -> Any:
        fut = self.router._local_ask(self.name, message)
        return fut.get(timeout=timeout) if block else fut

    def ask_two_phase(self, message: Any) -> tuple[LoopFuture[Any], LoopFuture[Any]]:
        sequenced: LoopFuture[Any] = LoopFuture(self.router.loop)
        acked: LoopFuture[Any] = LoopFuture(self.router.loop)

        def split(done: LoopFuture[Any]) -> None:
            exc = done.exception()
            if exc is not None:
                sequenced.fail(exc)
                acked.fail(exc)
                return
            value = done.result()
            if not isinstance(value, Staged):
                sequenced.set(value)
                acked.set(value)
                return
            sequenced.set(value.sequenced)
            value.acked.add_done_callback(
                lambda a: (
                    acked.fail(e) if (e := a.exception()) is not None else acked.set(a.result())
                )
            )

        self.router._local_ask(self.name, message).add_done_callback(split)
        return sequenced, acked


class RemoteRef:
    """An actor on another core, addressed by `(core, name)`; `tell`/`ask` as for a local one."""

    def __init__(self, router: CoreRouter, core: int, name: str) -> None:
        self.router = router
        self.core = core
        self.name = name

    def __repr__(self) -> str:
        return f"<RemoteRef core={self.core} name={self.name!r}>"

    def tell(self, message: Any) -> LoopFuture[None]:
        """Send without a reply. Returns a future done when the frame is in the mailbox (it waits
        while the ring is full: backpressure). Raises CoreDiedError if the core is down."""
        return self.router.tell(self.core, self.name, message)

    def ask(self, message: Any, *, block: bool = True, timeout: float | None = None) -> Any:
        fut = self.router._request(self.core, self.name, message, _K_ASK, None)
        return fut.get(timeout=timeout) if block else fut

    def ask_two_phase(self, message: Any) -> tuple[LoopFuture[Any], LoopFuture[Any]]:
        """(sequenced, acked) futures: see the module docstring."""
        return self.router.ask_two_phase(self.core, self.name, message)
