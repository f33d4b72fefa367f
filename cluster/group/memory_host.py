"""An in-memory host for a GroupCoordinator: a fake clock, a list as the `__consumer_offsets` log.

It does what the real host (the partition leader's actor) will do, minus I/O: appends records in
order and reports them (at once, or when told, to model a slow or failing log), runs `tick` at
every deadline while time advances, and collects each token's results. For tests, deterministic
simulation and examples.

Must not know: real clocks, storage, sockets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TypeVar

from redshank.cluster.group.api import Append, GroupRecord, GroupResult, Output, Token, TxnMarker
from redshank.cluster.group.coordinator import GroupCoordinator
from redshank.protocol.error_codes import ErrorCode

__all__ = ["MemoryHost"]

_R = TypeVar("_R")


class MemoryHost:
    def __init__(self, coordinator: GroupCoordinator, *, now_ms: int = 0,
                 auto_persist: bool = True) -> None:
        self.coordinator = coordinator
        self.now_ms = now_ms
        self.auto_persist = auto_persist
        # The partition as a replay reads it: every record (with its transactional batch's
        # producer id) and marker persisted, in order.
        self.log: list[GroupRecord | TxnMarker] = []
        self.unpersisted: list[Append] = []  # handed out, not yet reported
        self.results: dict[Token, list[GroupResult]] = {}
        self._next_token = 0

    def token(self) -> int:
        self._next_token += 1
        return self._next_token

    def apply(self, out: Output) -> Output:
        for c in out.completions:
            self.results.setdefault(c.token, []).append(c.result)
        self.unpersisted.extend(out.appends)
        if self.auto_persist:
            self.persist_all()
        return out

    def call(self, method: Callable[[_R, int], Output], request: _R) -> Output:
        """Run one coordinator request at the current time."""
        return self.apply(method(request, self.now_ms))

    def persist_next(self, error: ErrorCode = ErrorCode.NONE) -> None:
        append = self.unpersisted.pop(0)
        if error is ErrorCode.NONE:
            self.log.extend(dataclasses.replace(r, producer_id=append.producer_id)
                            for r in append.records)
            if append.marker is not None:
                self.log.append(append.marker)
        self.apply(self.coordinator.on_persisted(append.append_id, error, self.now_ms))

    def persist_all(self, error: ErrorCode = ErrorCode.NONE) -> None:
        while self.unpersisted:
            self.persist_next(error)

    def advance(self, ms: int) -> None:
        """Let `ms` pass, ticking at every deadline on the way (as a timer would)."""
        target = self.now_ms + ms
        for _ in range(1_000_000):
            deadline = self.coordinator.next_deadline_ms()
            if deadline is None or deadline > target:
                break
            self.now_ms = max(self.now_ms, deadline)
            self.apply(self.coordinator.tick(self.now_ms))
        else:
            raise AssertionError("a deadline does not move past the time it fired at")
        self.now_ms = target
        self.apply(self.coordinator.tick(self.now_ms))

    def result(self, token: Token) -> GroupResult | None:
        """The token's result, or None while it waits; a second result is a bug."""
        got = self.results.get(token, [])
        if len(got) > 1:
            raise AssertionError(f"token {token!r} completed {len(got)} times: {got}")
        return got[0] if got else None
