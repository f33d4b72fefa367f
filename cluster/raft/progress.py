"""What a leader knows about each follower, and the recovery/replicate hand-off (Redpanda's
recovery_stm coordination, etcd-raft's `tracker/progress.go`).

`next` is the single "last sent offset + 1" cursor shared by both paths, so they never send
overlapping appends:

    PROBE (recovery): one append in flight; on success the follower is caught up to `match`,
        and once `match + 1 == next` it switches to REPLICATE.
    REPLICATE: new entries are dispatched as they are appended (in parallel with the leader's
        own flush), up to `max_inflight` appends in flight; a rejection drops back to PROBE at
        `match + 1`.

Must not know messages' transport or the log's storage.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from redshank.cluster.raft.types import Index

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
    state: ProgressState = ProgressState.PROBE
    # PROBE: an append is outstanding; cleared by its response or by a heartbeat response.
    probe_sent: bool = False
    # REPLICATE: last index of each append in flight, oldest first.
    inflight: list[Index] = field(default_factory=list)
    # Heard from since the last CheckQuorum round.
    recent_active: bool = False
    # `match` at the previous heartbeat response: no change while behind means a lost append.
    match_at_beat: Index = _ZERO

    def paused(self, max_inflight: int) -> bool:
        if self.state == ProgressState.PROBE:
            return self.probe_sent
        return len(self.inflight) >= max_inflight

    def sent(self, last: Index, count: int) -> None:
        """An append ending at `last` with `count` entries left for this follower."""
        if self.state == ProgressState.REPLICATE:
            if count:
                self.next = Index(last + 1)
                self.inflight.append(last)
        else:
            self.probe_sent = True

    def acked(self, index: Index) -> bool:
        """A successful response up to `index`; returns whether `match` advanced."""
        advanced = index > self.match
        if advanced:
            self.match = index
        if self.next <= index:
            self.next = Index(index + 1)
        while self.inflight and self.inflight[0] <= index:
            self.inflight.pop(0)
        if self.state == ProgressState.PROBE:
            self.probe_sent = False
            if self.match + 1 == self.next:
                self.become_replicate()
        return advanced

    def rejected(self, rejected: Index, hint: Index) -> bool:
        """The follower's log does not match at `rejected`; probe next at `hint` (where the
        follower's and our terms suggest the logs agree). Returns False for a stale rejection."""
        if self.state == ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.become_probe()
            return True
        if self.next - 1 != rejected:
            return False
        self.next = Index(max(min(rejected, hint + 1), self.match + 1))
        self.probe_sent = False
        return True

    def become_probe(self) -> None:
        self.state = ProgressState.PROBE
        self.next = Index(self.match + 1)
        self.probe_sent = False
        self.inflight.clear()

    def become_replicate(self) -> None:
        self.state = ProgressState.REPLICATE
        self.next = Index(self.match + 1)
        self.inflight.clear()
