"""An in-memory host for a TxnCoordinator: a fake clock, a list as the `__transaction_state` log,
markers recorded instead of written.

It does what the real host (actors/txn_host.py) does, minus I/O: appends records in order and
reports them (at once, or when told, to model a slow or failing log), writes markers (at once or
when told), runs `tick` at every deadline while time advances, and collects each token's results.
For tests, deterministic simulation and examples.

Must not know: real clocks, storage, sockets.
"""

from __future__ import annotations

from redshank.cluster.txn.api import (
    Append,
    Output,
    ProducerIdBlock,
    Token,
    TxnRecord,
    TxnRequest,
    TxnResult,
    WriteMarkers,
)
from redshank.cluster.txn.coordinator import TxnCoordinator
from redshank.protocol.error_codes import ErrorCode

__all__ = ["MemoryHost"]


class MemoryHost:
    def __init__(self, coordinator: TxnCoordinator, *, now_ms: int = 0,
                 auto_persist: bool = True, auto_markers: bool = True) -> None:
        self.coordinator = coordinator
        self.now_ms = now_ms
        self.auto_persist = auto_persist
        self.auto_markers = auto_markers
        self.log: list[TxnRecord] = []  # the partition: every record persisted, in order
        self.unpersisted: list[Append] = []  # handed out, not yet reported
        self.unwritten: list[WriteMarkers] = []  # markers handed out, not yet written
        # Every marker set written, with the log length when it was: the Complete* record of
        # its transaction must come after that point.
        self.written: list[tuple[int, WriteMarkers]] = []
        self.results: dict[Token, list[TxnResult]] = {}
        self.wanted_producer_ids = 0
        self._next_token = 0

    def token(self) -> int:
        self._next_token += 1
        return self._next_token

    def apply(self, out: Output) -> Output:
        for c in out.completions:
            self.results.setdefault(c.token, []).append(c.result)
        self.unpersisted.extend(out.appends)
        self.unwritten.extend(out.markers)
        self.wanted_producer_ids += out.wants_producer_ids
        if self.auto_persist:
            self.persist_all()
        if self.auto_markers:
            self.write_all()
        return out

    def start(self, coordinator_epoch: int = 1, records: list[TxnRecord] | None = None) -> Output:
        """Become leader: load `records` (or this host's own log) and activate."""
        self.coordinator.begin_loading()
        self.coordinator.load(list(self.log if records is None else records))
        return self.apply(self.coordinator.finish_loading(self.now_ms, coordinator_epoch))

    def give_ids(self, first: int, size: int) -> None:
        self.apply(self.coordinator.add_producer_ids(ProducerIdBlock(first, size), self.now_ms))

    def send(self, req: TxnRequest) -> int:
        """Send one request at the current time; returns its token."""
        token = self.token()
        self.apply(self.coordinator.request(token, req, self.now_ms))
        return token

    def persist_next(self, error: ErrorCode = ErrorCode.NONE) -> None:
        append = self.unpersisted.pop(0)
        if error is ErrorCode.NONE:
            self.log.extend(append.records)
        self.apply(self.coordinator.on_persisted(append.append_id, error, self.now_ms))

    def persist_all(self, error: ErrorCode = ErrorCode.NONE) -> None:
        while self.unpersisted:
            self.persist_next(error)

    def write_next(self) -> None:
        markers = self.unwritten.pop(0)
        self.written.append((len(self.log), markers))
        self.apply(self.coordinator.on_markers_written(markers.marker_id, self.now_ms))

    def write_all(self) -> None:
        while self.unwritten:
            self.write_next()

    def resign(self) -> None:
        self.unpersisted.clear()
        self.unwritten.clear()
        self.apply(self.coordinator.resign(self.now_ms))

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

    def result(self, token: Token) -> TxnResult | None:
        """The token's result, or None while it waits; a second result is a bug."""
        got = self.results.get(token, [])
        if len(got) > 1:
            raise AssertionError(f"token {token!r} completed {len(got)} times: {got}")
        return got[0] if got else None
