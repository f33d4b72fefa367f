"""The idempotent-producer window: duplicates get their original offset, gaps and old epochs
are refused, a new epoch or an unknown producer starts fresh."""

from __future__ import annotations

from redshank.cluster.kafka import Duplicate, ProducerStateTable, SequenceError
from redshank.cluster.partition.api import ProducerBatch
from redshank.protocol.error_codes import ErrorCode


def _b(first: int, last: int, epoch: int = 0, pid: int = 1) -> ProducerBatch:
    return ProducerBatch(pid, epoch, first, last)


def test_in_order_batches_are_accepted_and_retries_deduplicated() -> None:
    t = ProducerStateTable()
    offset = 0
    for i in range(7):
        batch = _b(i * 3, i * 3 + 2)
        assert t.check(batch) is None
        t.record(batch, offset, offset + 2)
        offset += 3
    # The last 5 batches are remembered with their offsets; older ones are not.
    assert t.check(_b(18, 20)) == Duplicate(18, 20)
    assert t.check(_b(6, 8)) == Duplicate(6, 8)
    gap = t.check(_b(0, 2))
    assert isinstance(gap, SequenceError)
    assert gap.error_code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER


def test_gap_and_epochs() -> None:
    t = ProducerStateTable()
    t.record(_b(0, 4, epoch=2), 0, 4)
    out = t.check(_b(9, 9, epoch=2))
    assert isinstance(out, SequenceError)
    assert out.error_code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    old = t.check(_b(5, 5, epoch=1))
    assert isinstance(old, SequenceError) and old.error_code == ErrorCode.INVALID_PRODUCER_EPOCH
    assert t.check(_b(0, 0, epoch=3)) is None  # a bumped epoch restarts the sequence space
    t.record(_b(0, 0, epoch=3), 5, 5)
    assert t.check(_b(1, 1, epoch=3)) is None
    assert t.check(_b(77, 80, pid=9)) is None  # unknown producer: accepted (state not persisted)


def test_sequence_wraps_at_int32_max() -> None:
    t = ProducerStateTable()
    t.record(_b(2**31 - 3, 2**31 - 1), 0, 2)
    assert t.check(_b(0, 4)) is None
