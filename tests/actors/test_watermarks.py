"""The watermark board a core's fetches park on: a leader's tell wakes exactly the fetches whose
offset it passes, a read's answer replaces what leaders told (a topic created again starts
lower), a timeout returns False and leaves nothing parked."""

from __future__ import annotations

import asyncio

from redshank.actors.watermarks import HighWatermark, Watermarks, WatermarkWatch


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
