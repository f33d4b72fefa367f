"""replicate_batcher: merging, the memory semaphore, and release on follower hand-off."""

from __future__ import annotations

from redshank.cluster.raft import Acks, Index, ReplicateBatcher, ReplicateRequest


def req(i: int, size: int = 10, acks: Acks = Acks.ALL) -> ReplicateRequest:
    return ReplicateRequest(i, (b"x" * size,), acks)


def test_queued_requests_merge_into_one_batch() -> None:
    b = ReplicateBatcher()
    for i in range(5):
        assert b.enqueue(req(i, acks=Acks(i % 2)))
    batch = b.take()
    assert [r.id for r in batch] == [0, 1, 2, 3, 4]
    assert not b.pending()


def test_batch_size_is_bounded() -> None:
    b = ReplicateBatcher(max_bytes=10_000, max_batch_bytes=40)
    for i in range(4):
        b.enqueue(req(i, size=12))  # 20 units each
    assert [r.id for r in b.take()] == [0, 1]
    assert [r.id for r in b.take()] == [2, 3]


def test_semaphore_pushes_back_until_follower_hand_off() -> None:
    b = ReplicateBatcher(max_bytes=50)
    assert b.enqueue(req(1, size=12)) and b.enqueue(req(2, size=12))  # 40 of 50 units
    assert not b.enqueue(req(3, size=12))  # backpressure
    batch = b.take()
    b.hold(Index(7), batch)
    assert not b.enqueue(req(3, size=12))  # appended, but followers not handed off yet
    b.handed_off(Index(6))
    assert not b.enqueue(req(3, size=12))
    b.handed_off(Index(7))
    assert b.available == 50 and b.enqueue(req(3, size=12))


def test_oversized_request_is_admitted_when_idle() -> None:
    b = ReplicateBatcher(max_bytes=10)
    assert b.enqueue(req(1, size=100))  # never deadlock on one large request


def test_refused_batch_and_lost_leadership_release_units() -> None:
    b = ReplicateBatcher(max_bytes=100)
    b.enqueue(req(1))
    b.refuse(b.take())
    assert b.available == 100
    b.enqueue(req(2))
    b.hold(Index(3), b.take())
    b.enqueue(req(4))
    assert [r.id for r in b.drop_all()] == [4]
    assert b.available == 100 and not b.pending()
