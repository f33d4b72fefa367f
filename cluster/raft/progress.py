"""What a leader knows about each follower: recovering (a `RecoveryStm`: one append in flight
until the logs are known to match, then up to its window) or replicating (appends pipelined as
entries are appended), over one shared cursor.

`next` is the follower's "last sent offset + 1", shared by both paths so they never send
overlapping appends:

    recovering (`recovery` is set, etcd's PROBE): the `RecoveryStm` holds the in-flight rule
        (one probe; once matched, up to `recovery_window` pipelined appends listed in
        `inflight`) and decides when the follower has caught up; it then hands the cursor to
        replication.
    replicating (`recovery` is None, etcd's REPLICATE): new entries are dispatched as they are
        appended (in parallel with the leader's own flush), up to `max_inflight` appends in
        flight; a rejection starts a new recovery from `match + 1`.

Must not know messages' transport or the log's storage.
"""

from __future__ import annotations

import enum
from dataclasses import field

from redshank.cluster.raft.recovery_stm import RecoveryStm
from redshank.cluster.raft.types import Index
from redshank.protocol.fast_dataclass import dataclass

_ZERO = Index(0)


class ProgressState(enum.IntEnum):
    PROBE = 0
    REPLICATE = 1


@dataclass(slots=True)
class Progress:
    # Invariant: match < next; entries <= match are known to be on the follower (and fsynced:
    # a follower acknowledges only after its flush).
    match: Index
    next: Index
    # Set while the follower is being recovered; None while replicating.
    recovery: RecoveryStm | None = None
    # Replicating (or recovering, pipelined): last index of each append in flight, oldest first.
    inflight: list[Index] = field(default_factory=list)
    # Heard from since the last CheckQuorum round.
    recent_active: bool = False
    # `match` at the previous heartbeat response: no change while behind means a lost append.
    match_at_beat: Index = _ZERO
    # Appends a recovery keeps in flight once the follower's log is known to match.
    recovery_window: int = 1

    @property
    def state(self) -> ProgressState:
        return ProgressState.REPLICATE if self.recovery is None else ProgressState.PROBE

    @property
    def probe_sent(self) -> bool:
        return self.recovery is not None and self.recovery.in_flight

    def paused(self, max_inflight: int) -> bool:
        if self.recovery is not None:
            return not self.recovery.may_send(len(self.inflight))
        return len(self.inflight) >= max_inflight

    def sent(self, last: Index, count: int) -> None:
        """An append ending at `last` with `count` entries left for this follower."""
        if self.recovery is not None and not self.recovery.pipelined:
            self.recovery.sent()
        elif count:
            self.next = Index(last + 1)
            self.inflight.append(last)

    def acked(self, index: Index) -> bool:
        """A successful response up to `index`; returns whether `match` advanced."""
        advanced = index > self.match
        if advanced:
            self.match = index
        if self.next <= index:
            self.next = Index(index + 1)
        while self.inflight and self.inflight[0] <= index:
            self.inflight.pop(0)
        if self.recovery is not None and self.recovery.acked(self.match, self.next):
            if self.recovery.pipelined:
                self.recovery = None  # `next` and `inflight` mean the same to replication
            else:
                self.become_replicate()
        return advanced

    def rejected(self, rejected: Index, hint: Index, last: Index) -> bool:
        """The follower's log does not match at `rejected`; retry at `hint` (where the
        follower's and our terms suggest the logs agree). `last` is the leader's last index, the
        target of a recovery this starts. Returns False for a stale rejection."""
        if self.recovery is None:
            if rejected <= self.match:
                return False
            self.become_probe(last)
            return True
        retry_at = self.recovery.rejected(self.next, self.match, rejected, hint)
        if retry_at is None:
            return False
        self.next = retry_at
        self.inflight.clear()
        return True

    def heartbeat_answered(self) -> None:
        if self.recovery is None:
            return
        if not self.recovery.pipelined:
            self.recovery.retry()
        elif self.inflight and self.match == self.match_at_beat:
            # No progress over a heartbeat interval with appends in flight: one of them or its
            # answer was lost (the later ones are rejected or wait for it). Probe again.
            self.recovery.reset()
            self.next = Index(self.match + 1)
            self.inflight.clear()

    def become_probe(self, last: Index) -> None:
        """Start recovering the follower from its acknowledged `match` up to `last`."""
        self.recovery = RecoveryStm(target=last, window=self.recovery_window)
        self.next = Index(self.match + 1)
        self.inflight.clear()

    def become_replicate(self) -> None:
        self.recovery = None
        self.next = Index(self.match + 1)
        self.inflight.clear()
