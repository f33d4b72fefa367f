"""One fetch's long-poll, sans-IO: what to read next, when it has enough, what to wait for.

Concern: the rules of the loop a fetch runs until it answers (KIP-74 budget, min_bytes,
max_wait_ms): each round reads some partitions (the first round all, later rounds only those
whose high watermark moved past what was read), each read asks for what the request-wide budget
leaves, and the reads of a round run together when no read can shrink another's. After a round
the fetch answers (enough bytes, deadline reached, nothing to read, or a partition failed) or
parks on the partitions' watermarks. The host does the reads and the waiting:

    op = FetchOperation(request, reads, results, deadline)
    while True:
        for r in op.start_round():           # all at once when op.together
            op.on_result(r, read(r, op.limit(r)))
        left = op.finish_round(now)
        if left is None:
            return op.response(fetch_context, now)
        wait until a watermark passes one of op.parked_on(), at most `left`
        op.moved(known watermarks)

Must not know: actors, clocks (times are given), where a partition lives or how it is read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from redshank.cluster.kafka.fetch_session import FetchContext
from redshank.cluster.kafka.handlers.fetch import FetchBudget, PartitionRead, build
from redshank.cluster.kafka.topic_table import TopicPartition
from redshank.cluster.partition.api import ReadResult
from redshank.protocol.messages.fetch import FetchRequest, FetchResponse

__all__ = ["FetchOperation"]


class FetchOperation:
    """The state of one fetch between its rounds of reads (`reads`: the partitions it reads, in
    order; `results`: the answers known already, filled in by the reads)."""

    def __init__(self, request: FetchRequest, reads: list[PartitionRead],
                 results: dict[TopicPartition, ReadResult], deadline: float) -> None:
        self.request = request
        self.reads = reads
        self.results = results
        self.deadline = deadline
        self.together = False  # this round's reads may run at once, in any order
        self._todo = reads  # the partitions (re)read this round; the others keep their result
        self._budget = FetchBudget(request)
        self._parked: list[tuple[TopicPartition, int]] = []
        self._asked: dict[TopicPartition, int] = {}  # this round's limit per partition read

    def start_round(self) -> list[PartitionRead]:
        """The partitions to read this round; the budget counts what the others hold."""
        todo, results = self._todo, self.results
        self._budget = budget = FetchBudget(self.request)
        if todo is not self.reads:
            now_read = {id(r) for r in todo}
            for r in self.reads:
                if id(r) not in now_read:
                    budget.take(len(results[r.tp].records or b""))
        # No partition's read can shrink another's: read them all at once (a remote one costs
        # a round trip to its core, and these overlap).
        self.together = budget.fits_all(todo)
        return todo

    def limit(self, r: PartitionRead) -> int:
        """Bytes to ask of `r` now (0: the budget is spent, the read only learns watermarks)."""
        limit = self._asked[r.tp] = self._budget.limit(r)
        return limit

    def on_result(self, r: PartitionRead, res: ReadResult) -> None:
        records, limit = res.records, self._asked.get(r.tp)
        if (records and not self.together and self._budget.total and limit is not None
                and len(records) > limit):
            # One by one, in order: a read after one that returned records keeps what fits.
            res = dataclasses.replace(res, records=records[:_whole_batches_within(records,
                                                                                   limit)])
        self.results[r.tp] = res
        if res.records:
            self._budget.take(len(res.records))

    def finish_round(self, now: float) -> float | None:
        """None: answer now. Else the most to wait for a watermark to move (`parked_on`)."""
        self._settle()
        left = self.deadline - now
        results = self.results
        if self._budget.satisfied or left <= 0 or not self.reads or any(
                results[r.tp].error_code for r in self.reads):
            return None
        self._parked = [(r.tp, max(r.offset, results[r.tp].high_watermark))
                        for r in self.reads]
        return left

    def _settle(self) -> None:
        """Hold this round's reads to the limits they were asked (KIP-74). A log read returns at
        least one whole batch, however small its limit; only the first non-empty partition of
        the response (in request order) may keep a first batch larger than its limit. Any
        other read is cut back to the whole batches within its limit (none, if its first batch
        is larger): a client given more than it asked for may drop the connection (librdkafka
        did, in a loop, on 1.84 MB against a 1 MB fetch.max.bytes)."""
        asked, results = self._asked, self.results
        seen_records = False
        for r in self.reads:
            res = results[r.tp]
            limit = asked.pop(r.tp, None)
            records = res.records
            if records and limit is not None and len(records) > limit and seen_records:
                kept = _whole_batches_within(records, limit)
                self._budget.take(kept - len(records))
                results[r.tp] = res = dataclasses.replace(res, records=records[:kept])
            seen_records = seen_records or bool(res.records)
        asked.clear()

    def parked_on(self) -> list[tuple[TopicPartition, int]]:
        """Each partition with the offset its watermark must pass for a re-read to find more."""
        return self._parked

    def moved(self, known: Mapping[TopicPartition, int]) -> None:
        """The watermarks after the wait: the next round re-reads the partitions that moved
        (none after a timeout: the next round reads nothing and answers)."""
        self._todo = [r for r, (tp, offset) in zip(self.reads, self._parked, strict=True)
                      if known.get(tp, -1) > offset]

    def response(self, ctx: FetchContext, now: float) -> FetchResponse:
        """The answer: the partitions the fetch session says to include (KIP-227)."""
        session_id, include = ctx.respond(self.results, now)
        return build(self.results, include, session_id, self.request.isolation_level)


def _whole_batches_within(records: bytes | memoryview, limit: int) -> int:
    """The length of the longest run of whole record batches at the start of `records` that
    fits in `limit` bytes (a batch's size: its 12-byte offset and length prefix plus length)."""
    pos, end = 0, len(records)
    while pos + 12 <= end:
        size = 12 + int.from_bytes(records[pos + 8:pos + 12], "big", signed=True)
        if size <= 12 or pos + size > min(end, limit):
            break
        pos += size
    return pos
