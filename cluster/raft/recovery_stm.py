"""Recovery of one lagging follower from the leader's log (Redpanda's `raft/recovery_stm.cc`).

The leader starts a `RecoveryStm` for a follower when it falls behind: a new leader or a new
member (the follower's log is unknown), a rejected append, an append lost over a heartbeat
interval, or a leadership transfer to a lagging target. Recovery first keeps exactly ONE append
in flight (the probe) until one is acknowledged: from then on the follower's log is known to
match the leader's up to its acknowledged index, and recovery pipelines up to `window` appends
(each from where the previous one ended). It ends once the follower has acknowledged
everything up to `target`, the leader's last index when recovery started (entries appended
since then ride along in recovery's appends): with nothing left in flight when probing; when
pipelined, its appends still in flight become replication's (same cursor, same list). Entries
the leader's log holds only on disk are loaded by the host a window at a time; while a pipelined
recovery's window is full, the leader asks for the next window's entries, so the disk read
overlaps the appends in flight, and keeps what a load brought until it is sent (`RaftCore`).

Hand-off with replication (`Progress.next`, the follower's "last sent offset + 1"): while
probing, recovery never moves the cursor optimistically (the append may be rejected); only an
ack moves it to the acknowledged index + 1. Once matched, each pipelined append moves the
cursor past what it carries (`Progress.inflight` lists them); a rejection or a heartbeat
interval without progress (an append or its answer was lost) drops the pipeline and probes
again from the acknowledged index + 1. Replication sends nothing to a recovering follower and,
once recovery finishes, starts exactly at that cursor, so the two never send overlapping
appends.

Must not know messages, the log's storage or the follower's other progress fields.
"""

from __future__ import annotations

from redshank.cluster.raft.types import Index
from redshank.protocol.fast_dataclass import dataclass


@dataclass(slots=True)
class RecoveryStm:
    # Finished once the follower's acknowledged index reaches this.
    target: Index
    # The probe (the one append allowed in flight until matched) has been sent, not answered.
    in_flight: bool = False
    # Appends allowed in flight once matched (1: always one, as a probe).
    window: int = 1
    # An ack in this recovery showed the follower's log matches the leader's up to it.
    matched: bool = False

    @property
    def pipelined(self) -> bool:
        return self.matched and self.window > 1

    def may_send(self, pipelined_in_flight: int = 0) -> bool:
        if self.pipelined:
            return pipelined_in_flight < self.window
        return not self.in_flight

    def sent(self) -> None:
        self.in_flight = True

    def acked(self, match: Index, next_: Index) -> bool:
        """An ack arrived (the follower's acknowledged index is now `match`, the cursor
        `next_`); returns whether recovery is finished and replication takes over."""
        self.in_flight = False
        self.matched = True
        if self.pipelined:
            return match >= self.target  # its appends in flight carry on as replication's
        return match >= self.target and match + 1 == next_

    def rejected(self, next_: Index, match: Index, rejected: Index, hint: Index) -> Index | None:
        """The follower's log does not match at `rejected`. Returns the cursor to retry from
        (where the follower's and our terms suggest the logs agree, never at or below what it
        acknowledged), or None if the rejection answers an older append than the one in
        flight. A pipelined recovery probes again from `match + 1`."""
        if self.pipelined:
            if rejected <= match:
                return None
            self.reset()
            return Index(match + 1)
        if next_ - 1 != rejected:
            return None
        self.in_flight = False
        return Index(max(min(rejected, hint + 1), match + 1))

    def retry(self) -> None:
        """The append or its response may be lost (a heartbeat came back while one was in
        flight): allow one resend from the unchanged cursor."""
        self.in_flight = False

    def reset(self) -> None:
        """Drop the pipeline: probe again, one append in flight."""
        self.in_flight = False
        self.matched = False
