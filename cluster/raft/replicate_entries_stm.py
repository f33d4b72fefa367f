"""Resolves each replicate request at its consistency level (Redpanda's `replicate_entries_stm`).

    acks=0    resolved as soon as it is appended on the leader;
    acks=1    resolved when the leader has written it (its flush may still be running);
    acks=all  resolved when the entry is committed, i.e. fsynced on a majority of voters.

Visibility to consumers is the commit index for every level (Redpanda #14794). A request whose
entry was replaced in the log or whose leader lost its term fails. Must not know transport.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable

from redshank.cluster.raft.offset_translator import Offset
from redshank.cluster.raft.replicate_batcher import Acks, ReplicateRequest
from redshank.cluster.raft.types import Index, Term
from redshank.protocol.fast_dataclass import dataclass


class ReplicateError(enum.IntEnum):
    NOT_LEADER = 1
    REPLACED = 2  # the entry was truncated by a newer leader
    REFUSED = 3  # the leader refused the append (leadership transfer in progress)


@dataclass(frozen=True, slots=True)
class ReplicateResult:
    id: int
    acks: Acks
    index: Index
    term: Term
    base_offset: Offset | None
    error: ReplicateError | None = None


@dataclass(frozen=True, slots=True)
class _Waiting:
    req: ReplicateRequest
    index: Index
    term: Term
    base_offset: Offset


class ReplicateEntriesStm:
    def __init__(self) -> None:
        # Appended in index order, so each resolves from the left.
        self._written: deque[_Waiting] = deque()  # acks=1 waiting for the leader's write
        self._committed: deque[_Waiting] = deque()  # acks=all waiting for commit

    def appended(self, req: ReplicateRequest, index: Index, term: Term,
                 base_offset: Offset) -> list[ReplicateResult]:
        """`req` was appended at `index`, its batch from Kafka offset `base_offset`."""
        if req.acks == Acks.NONE:
            return [ReplicateResult(req.id, req.acks, index, term, base_offset)]
        w = _Waiting(req, index, term, base_offset)
        if req.acks == Acks.LEADER:
            self._written.append(w)
        else:
            self._committed.append(w)
        return []

    def written(self, up_to: Index) -> list[ReplicateResult]:
        out: list[ReplicateResult] = []
        while self._written and self._written[0].index <= up_to:  # in index order
            w = self._written.popleft()
            out.append(ReplicateResult(w.req.id, w.req.acks, w.index, w.term, w.base_offset))
        return out

    def committed(self, commit: Index, term_at: Callable[[Index], Term]) -> list[ReplicateResult]:
        out: list[ReplicateResult] = []
        while self._committed and self._committed[0].index <= commit:  # in index order
            w = self._committed.popleft()
            err = None if term_at(w.index) == w.term else ReplicateError.REPLACED
            out.append(ReplicateResult(w.req.id, w.req.acks, w.index, w.term,
                                       None if err else w.base_offset, err))
        return out

    def pending(self) -> bool:
        return bool(self._written or self._committed)

    def lost_leadership(self) -> list[ReplicateResult]:
        out = [ReplicateResult(w.req.id, w.req.acks, w.index, w.term, None,
                               ReplicateError.NOT_LEADER)
               for w in (*self._written, *self._committed)]
        self._written.clear()
        self._committed.clear()
        return out
