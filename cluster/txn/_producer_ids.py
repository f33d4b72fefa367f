"""The producer ids a coordinator may hand out: blocks from the controller, used in order.

Must not know: how blocks are obtained (the host asks the controller when `wants_more` says so).
"""

from __future__ import annotations

from collections import deque

from redshank.cluster.txn.api import ProducerIdBlock

__all__ = ["ProducerIdPool"]


class ProducerIdPool:
    def __init__(self, low_water: int = 16) -> None:
        self._blocks: deque[tuple[int, int]] = deque()  # [next, end) per block
        self._low_water = low_water
        self._asked = False  # asked for more since the last block came

    def add(self, block: ProducerIdBlock) -> None:
        if block.first < 0 or block.size <= 0:
            raise ValueError(f"bad producer id block {block}")
        self._blocks.append((block.first, block.first + block.size))
        self._asked = False

    def remaining(self) -> int:
        return sum(end - nxt for nxt, end in self._blocks)

    def take(self) -> int | None:
        while self._blocks:
            nxt, end = self._blocks[0]
            if nxt < end:
                if nxt + 1 == end:
                    self._blocks.popleft()
                else:
                    self._blocks[0] = (nxt + 1, end)
                return nxt
            self._blocks.popleft()
        return None

    def wants_more(self, *, ran_out: bool = False) -> bool:
        """True once when the pool runs low (prefetch), and whenever a request found it empty."""
        if ran_out or (not self._asked and self.remaining() < self._low_water):
            self._asked = True
            return True
        return False
