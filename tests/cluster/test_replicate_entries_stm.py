"""replicate_entries_stm: each acks level resolves at its own point; replaced entries fail."""

from __future__ import annotations

from redshank.cluster.raft import (
    Acks,
    Index,
    Offset,
    ReplicateEntriesStm,
    ReplicateError,
    ReplicateRequest,
    Term,
)


def batch() -> list[ReplicateRequest]:
    return [ReplicateRequest(1, (b"a",), Acks.NONE), ReplicateRequest(2, (b"b", b"c"), Acks.LEADER),
            ReplicateRequest(3, (b"d",), Acks.ALL)]


def test_each_acks_level_resolves_at_its_point() -> None:
    stm = ReplicateEntriesStm()
    done = stm.appended(batch(), Index(5), Term(2), Offset(10))
    assert [(r.id, r.base_offset) for r in done] == [(1, 10)]  # acks=0 at once
    assert stm.committed(Index(4), lambda i: Term(2)) == []
    written = stm.written(Index(5))  # acks=1 once the leader wrote it
    assert [(r.id, r.base_offset) for r in written] == [(2, 11)]
    assert stm.committed(Index(4), lambda i: Term(2)) == []
    (r,) = stm.committed(Index(5), lambda i: Term(2))  # acks=all once committed
    assert (r.id, r.base_offset, r.error) == (3, 13, None)


def test_replaced_entry_fails_instead_of_acking() -> None:
    stm = ReplicateEntriesStm()
    stm.appended(batch(), Index(5), Term(2), Offset(0))
    (r,) = stm.committed(Index(9), lambda i: Term(3))  # index 5 now holds another term's entry
    assert r.error == ReplicateError.REPLACED and r.base_offset is None


def test_lost_leadership_fails_what_is_pending() -> None:
    stm = ReplicateEntriesStm()
    stm.appended(batch(), Index(5), Term(2), Offset(0))
    failed = stm.lost_leadership()
    assert sorted(r.id for r in failed) == [2, 3]
    assert all(r.error == ReplicateError.NOT_LEADER for r in failed)
