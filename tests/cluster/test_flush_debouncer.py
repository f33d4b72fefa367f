"""flush_debouncer: many Readys share one fsync, and dependent messages wait for it."""

from __future__ import annotations

from redshank.cluster.raft import Entry, HardState, Index, Message, MessageType, NodeId, Term
from redshank.cluster.raft.flush_debouncer import FlushDebouncer
from redshank.cluster.raft.types import PersistMark, Ready


def ready(i: int) -> Ready:
    ack = Message(MessageType.APPEND_RESPONSE, NodeId(2), NodeId(1), Term(1), index=Index(i))
    return Ready(entries=[Entry(Term(1), Index(i))], messages_after_persist=[ack],
                 mark=PersistMark(Index(i), Term(1), HardState(Term(1))))


def test_many_readys_one_flush() -> None:
    d = FlushDebouncer()
    assert d.add(ready(1))  # start a flush
    assert d.add(ready(2)) and d.add(ready(3))  # still none in flight: the host dedups
    d.begin()
    batch, again = d.complete()
    assert [m.index for m in batch.messages] == [1, 2, 3]
    assert batch.mark is not None and batch.mark.index == 3 and batch.readys == 3
    assert not again and d.flushes == 1 and not d.pending()


def test_writes_during_a_flush_wait_for_the_next_one() -> None:
    d = FlushDebouncer()
    d.add(ready(1))
    d.begin()
    assert not d.add(ready(2))  # a flush is in flight: do not start another
    batch, again = d.complete()
    assert [m.index for m in batch.messages] == [1] and again
    d.begin()
    batch, again = d.complete()
    assert [m.index for m in batch.messages] == [2] and not again


def test_ready_with_nothing_to_persist_needs_no_flush() -> None:
    d = FlushDebouncer()
    assert not d.add(Ready())
    assert not d.pending()


def test_reset_drops_pending_acks() -> None:
    d = FlushDebouncer()
    d.add(ready(1))
    d.reset()
    assert not d.pending()
