"""Fetch (1): split the request into per-partition reads, size them, build the response.

Concern: which partitions a fetch names and whether they exist, the byte budget (per partition
and per request, the first batch always returned, KIP-74), when a fetch has enough to answer
(min_bytes), and the response (no fetch sessions: session_id 0 is always legal, notes G17; no
transactions: last stable offset = high watermark, no aborted transactions, G16). Must not know:
logs, long-poll mechanics, actors, sockets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from redshank.cluster.kafka.topic_table import TopicInfo
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages.fetch import (
    FetchableTopicResponse,
    FetchRequest,
    FetchResponse,
    PartitionData,
)

__all__ = ["FetchBudget", "PartitionRead", "ReadResult", "build", "plan"]

Tp = tuple[str, int]


@dataclass(frozen=True, slots=True)
class PartitionRead:
    topic: str
    partition: int
    core: int
    offset: int
    max_bytes: int
    leader_epoch: int


@dataclass(frozen=True, slots=True)
class ReadResult:
    error_code: int
    high_watermark: int = -1
    log_start_offset: int = -1
    records: bytes | memoryview | None = None


def plan(request: FetchRequest, topics: Mapping[str, TopicInfo | None],
         partition_cap: int | None = None
         ) -> tuple[list[PartitionRead], dict[Tp, ReadResult]]:
    """`partition_cap`: the most this broker returns of one partition per fetch, whatever the
    client allows (a partition may be answered with less than its max; the first batch still
    goes whole, KIP-74)."""
    reads: list[PartitionRead] = []
    done: dict[Tp, ReadResult] = {}
    for t in request.topics:
        info = topics.get(t.topic)
        for p in t.partitions:
            core = info.core_of(p.partition) if info is not None else None
            if core is None:
                done[(t.topic, p.partition)] = ReadResult(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
                continue
            limit = max(p.partition_max_bytes, 0)
            if partition_cap is not None:
                limit = min(limit, partition_cap)
            reads.append(
                PartitionRead(t.topic, p.partition, core, p.fetch_offset, limit,
                              p.current_leader_epoch)
            )
    return reads, done


class FetchBudget:
    """The request-wide byte budget: each read gets min(partition max, what is left), and the
    first non-empty partition may exceed it by one batch (KIP-74)."""

    def __init__(self, request: FetchRequest) -> None:
        self.left = max(request.max_bytes, 0)
        self.min_bytes = max(request.min_bytes, 0)
        self.total = 0

    def limit(self, read: PartitionRead) -> int:
        """Bytes to ask of this partition; 0 means skip (budget spent)."""
        if self.total and self.left <= 0:
            return 0
        return max(min(read.max_bytes, self.left), 1)

    def fits_all(self, reads: Sequence[PartitionRead]) -> bool:
        """Whether every read can have its whole partition limit at once: then the reads do
        not depend on each other and may run in any order, or together."""
        return sum(max(r.max_bytes, 1) for r in reads) <= self.left

    def take(self, got: int) -> None:
        self.total += got
        self.left -= got

    @property
    def satisfied(self) -> bool:
        return self.total >= self.min_bytes


def build(request: FetchRequest, results: Mapping[Tp, ReadResult]) -> FetchResponse:
    topics = []
    for t in request.topics:
        parts = []
        for p in t.partitions:
            r = results[(t.topic, p.partition)]
            parts.append(
                PartitionData(
                    partition_index=p.partition,
                    error_code=r.error_code,
                    high_watermark=r.high_watermark,
                    last_stable_offset=r.high_watermark,
                    log_start_offset=r.log_start_offset,
                    aborted_transactions=(),
                    records=r.records if r.records is not None else b"",
                )
            )
        topics.append(FetchableTopicResponse(topic=t.topic, topic_id=t.topic_id,
                                             partitions=tuple(parts)))
    return FetchResponse(error_code=0, session_id=0, responses=tuple(topics))
