"""The watermark board a core's fetches park on: a leader's tell wakes exactly the fetches whose
offset it passes, a read's answer replaces what leaders told (a topic created again starts
lower), a timeout returns False and leaves nothing parked; pushed batches are taken once, by a
read at their offset of the same topic incarnation, and superseded by a read's answer."""

from __future__ import annotations

import asyncio
import uuid

from redshank.actors.watermarks import (
    ARM_TRUST_S,
    PUSHED_MAX_BYTES,
    HighWatermark,
    Pushed,
    Watermarks,
    WatermarkWatch,
)


def test_advance_wakes_only_fetches_below_it_and_timeouts_clean_up() -> None:
    async def main() -> None:
        board = Watermarks()
        board.read(("t", 0), 10)
        board.read(("t", 1), 4)
        low = asyncio.ensure_future(board.wait_any([(("t", 0), 10), (("t", 1), 4)], 5))
        high = asyncio.ensure_future(board.wait_any([(("t", 0), 20)], 5))
        await asyncio.sleep(0)
        board.advance(("t", 0), 11)
        assert await low is True
        await asyncio.sleep(0)
        assert not high.done()
        board.advance(("t", 0), 9)  # older news: ignored
        assert board.known[("t", 0)] == 11
        board.advance(("t", 0), 21)
        assert await high is True
        assert await board.wait_any([(("t", 1), 4)], 0.01) is False
        assert board._waiting == {}
        # Already past: no parking at all.
        assert await board.wait_any([(("t", 0), 3)], 5) is True
        board.read(("t", 0), 2)  # recreated topic: the read wins over the old leader's word
        assert board.known[("t", 0)] == 2

    asyncio.run(main())


def test_watch_actor_feeds_the_board() -> None:
    async def main() -> None:
        board = Watermarks()
        ref = WatermarkWatch.start(board)
        waiter = asyncio.ensure_future(board.wait_any([(("t", 0), 0)], 5))
        await asyncio.sleep(0)
        ref.tell(HighWatermark("t", 0, 1))
        assert await waiter is True
        await ref.stop(block=False)

    asyncio.run(main())


def test_pushed_batches_are_taken_once_at_their_offset_and_bounded() -> None:
    board = Watermarks()
    tid = uuid.uuid4()
    board.advance(("t", 0), 5, Pushed(tid, 3, 5, 0, b"xy"))
    assert board.known[("t", 0)] == 5 and board.pushed_bytes == 2
    assert board.take(("t", 0), 4, tid) is None  # not where the push starts: dropped
    assert board.pushed_bytes == 0 and board.take(("t", 0), 3, tid) is None
    board.advance(("t", 0), 6, Pushed(tid, 5, 6, 0, b"z"))
    assert board.take(("t", 0), 5, uuid.uuid4()) is None  # another incarnation of the topic
    board.advance(("t", 0), 7, Pushed(tid, 6, 7, 0, b"w"))
    got = board.take(("t", 0), 6, tid)
    assert got is not None and got.records == b"w" and board.take(("t", 0), 6, tid) is None
    board.advance(("t", 0), 8, Pushed(tid, 7, 8, 0, b"v"))
    board.read(("t", 0), 8)  # a read answered after the push supersedes it
    assert board.take(("t", 0), 7, tid) is None and board.pushed_bytes == 0
    big = b"b" * (PUSHED_MAX_BYTES // 2 + 1)
    board.advance(("t", 1), 1, Pushed(tid, 0, 1, 0, big))
    board.advance(("t", 2), 1, Pushed(tid, 0, 1, 0, big))  # over the bound: watermark only
    assert board.known[("t", 2)] == 1 and board.take(("t", 2), 0, tid) is None
    assert board.pushed_bytes == len(big)


def test_an_arming_stands_for_reads_at_its_offset_until_any_word_or_its_time() -> None:
    board = Watermarks()
    tid = uuid.uuid4()
    tp = ("t", 0)
    board.arm(tp, 5, tid, 1, 2, now=100.0)
    assert board.armed(tp, 5, tid, 1, 100.5) == 2  # the log start the arming read gave
    assert board.armed(tp, 6, tid, 1, 100.5) is None  # another offset: ask
    assert board.armed(tp, 5, uuid.uuid4(), 1, 100.5) is None  # another topic incarnation
    assert board.armed(tp, 5, tid, 2, 100.5) is None  # the owning core restarted since
    assert board.armed(tp, 5, tid, 1, 100.0 + ARM_TRUST_S) is None  # stood long enough
    assert board.armed(tp, 5, tid, 1, 100.5) is None  # and is gone
    board.arm(tp, 5, tid, 1, 2, now=200.0)
    board.advance(tp, 5)  # any word of the leader: it disarmed before telling
    assert board.armed(tp, 5, tid, 1, 200.1) is None
    board.arm(tp, 5, tid, 1, 2, now=300.0)
    board.read(tp, 5)  # a later read's answer replaces the arming
    assert board.armed(tp, 5, tid, 1, 300.1) is None


def test_read_committed_reads_wait_on_an_arming_only_when_it_was_stable() -> None:
    board = Watermarks()
    tid = uuid.uuid4()
    tp = ("t", 0)
    board.arm(tp, 5, tid, 1, 2, now=100.0)  # an undecided transaction below the watermark then
    assert board.armed(tp, 5, tid, 1, 100.5) == 2
    assert board.armed(tp, 5, tid, 1, 100.5, committed=True) is None  # ask the leader
    board.arm(tp, 5, tid, 1, 2, now=200.0, stable=True)
    assert board.armed(tp, 5, tid, 1, 200.5, committed=True) == 2  # nothing new either way
    board.advance(tp, 7, Pushed(tid, 5, 7, 2, b"x", stable=False))  # a transaction began
    assert board.armed(tp, 5, tid, 1, 200.6, committed=True) is None


def test_the_one_arming_rule_arms_only_a_remote_read_that_found_nothing_new() -> None:
    from redshank.cluster.partition.api import Read, ReadResult
    from redshank.protocol.error_codes import ErrorCode

    nothing_new = ReadResult(0, 5, 0, b"")
    assert Watermarks.arming_core(Read(5, 100, -1, True, 3), nothing_new) == 3
    assert Watermarks.arming_core(Read(7, 100, -1, True, 3), nothing_new) == 3  # past the HW
    assert Watermarks.arming_core(Read(5, 0, -1, True, 3), nothing_new) == 3  # no bytes asked
    assert Watermarks.arming_core(Read(4, 100, -1, True, 3), ReadResult(0, 5, 0, b"x")) is None
    assert Watermarks.arming_core(Read(5, 100, -1, False, 3), nothing_new) is None  # local
    assert Watermarks.arming_core(Read(5, 100, -1, True, None), nothing_new) is None
    assert Watermarks.arming_core(
        Read(5, 100, 2, True, 3), ReadResult(ErrorCode.UNKNOWN_LEADER_EPOCH, 5, 0)) is None
