"""replicate_batcher: one entry per request's batch, the memory semaphore, and release on
follower hand-off."""

from __future__ import annotations

from redshank.cluster.raft import Acks, Index, ReplicateBatcher, ReplicateRequest


def req(i: int, size: int = 10, acks: Acks = Acks.ALL) -> ReplicateRequest:
    # The batcher never looks inside the batch: any bytes of the right size do here.
    return ReplicateRequest(i, b"x" * size, acks)


def test_requests_come_out_one_at_a_time_in_order() -> None:
    b = ReplicateBatcher()
    for i in range(5):
        assert b.enqueue(req(i, acks=Acks(i % 2)))
    assert [b.take().id for _ in range(5)] == [0, 1, 2, 3, 4]  # batches are never merged
    assert not b.pending()


def test_a_request_takes_its_batch_size_in_units() -> None:
    b = ReplicateBatcher(max_bytes=1000)
    b.enqueue(req(1, size=123))
    assert b.available == 1000 - 123


def test_semaphore_pushes_back_until_follower_hand_off() -> None:
    b = ReplicateBatcher(max_bytes=50)
    assert b.enqueue(req(1, size=20)) and b.enqueue(req(2, size=20))  # 40 of 50 units
    assert not b.enqueue(req(3, size=20))  # backpressure
    b.hold(Index(6), b.take())
    b.hold(Index(7), b.take())
    assert not b.enqueue(req(3, size=20))  # appended, but followers not handed off yet
    b.handed_off(Index(6))
    assert b.available == 30 and b.enqueue(req(3, size=20))
    b.handed_off(Index(7))
    assert b.available == 30


def test_oversized_request_is_admitted_when_idle() -> None:
    b = ReplicateBatcher(max_bytes=10)
    assert b.enqueue(req(1, size=100))  # never deadlock on one large request


def test_refused_request_and_lost_leadership_release_units() -> None:
    b = ReplicateBatcher(max_bytes=100)
    b.enqueue(req(1))
    b.refuse(b.take())
    assert b.available == 100
    b.enqueue(req(2))
    b.hold(Index(3), b.take())
    b.enqueue(req(4))
    assert [r.id for r in b.drop_all()] == [4]
    assert b.available == 100 and not b.pending()
