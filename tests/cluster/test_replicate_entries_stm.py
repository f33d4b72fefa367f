"""replicate_entries_stm: each acks level resolves at its own point; replaced entries fail."""

from __future__ import annotations

from redshank.cluster.raft import (
    Acks,
    Index,
    Offset,
    ReplicateEntriesStm,
    ReplicateError,
    ReplicateRequest,
    ReplicateResult,
    Term,
)
from redshank.cluster.raft.batches import batch_of


def append_three(stm: ReplicateEntriesStm, base: int) -> list[ReplicateResult]:
    """Requests 1 (acks=0), 2 (acks=1, two records) and 3 (acks=all) at indexes 5, 6 and 7."""
    done = stm.appended(ReplicateRequest(1, batch_of((b"a",)), Acks.NONE), Index(5), Term(2),
                        Offset(base))
    done += stm.appended(ReplicateRequest(2, batch_of((b"b", b"c")), Acks.LEADER), Index(6),
                         Term(2), Offset(base + 1))
    done += stm.appended(ReplicateRequest(3, batch_of((b"d",)), Acks.ALL), Index(7), Term(2),
                         Offset(base + 3))
    return done


def test_each_acks_level_resolves_at_its_point() -> None:
    stm = ReplicateEntriesStm()
    done = append_three(stm, 10)
    assert [(r.id, r.base_offset) for r in done] == [(1, 10)]  # acks=0 at once
    assert stm.committed(Index(6), lambda i: Term(2)) == []
    assert stm.written(Index(5)) == []
    written = stm.written(Index(7))  # acks=1 once the leader wrote it
    assert [(r.id, r.base_offset) for r in written] == [(2, 11)]
    assert stm.committed(Index(6), lambda i: Term(2)) == []
    (r,) = stm.committed(Index(7), lambda i: Term(2))  # acks=all once committed
    assert (r.id, r.index, r.base_offset, r.error) == (3, 7, 13, None)


def test_replaced_entry_fails_instead_of_acking() -> None:
    stm = ReplicateEntriesStm()
    append_three(stm, 0)
    (r,) = stm.committed(Index(9), lambda i: Term(3))  # index 7 now holds another term's entry
    assert r.error == ReplicateError.REPLACED and r.base_offset is None


def test_lost_leadership_fails_what_is_pending() -> None:
    stm = ReplicateEntriesStm()
    append_three(stm, 0)
    failed = stm.lost_leadership()
    assert sorted(r.id for r in failed) == [2, 3]
    assert all(r.error == ReplicateError.NOT_LEADER for r in failed)
