"""Fetch (1): split a fetch into per-partition reads, size them, build the response.

Concern: whether the partitions a fetch reads exist (which ones it reads, with or without a
fetch session, is `cluster/kafka/fetch_session`'s), the byte budget (per partition and per
request, the first batch always returned, KIP-74), when a fetch has enough to answer
(min_bytes), and the response: the partitions the session says to include, grouped by topic,
with the last stable offset and, for read_committed, the aborted transactions the records
overlap (KIP-98; a result that knows no LSO reports the high watermark).
Must not know: logs, long-poll mechanics, actors, sockets.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence

from redshank.cluster.kafka.fetch_session import SessionPartition
from redshank.cluster.kafka.topic_table import TopicInfo, TopicPartition
from redshank.cluster.partition.api import ReadResult
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.fast_dataclass import dataclass
from redshank.protocol.messages.fetch import (
    AbortedTransaction,
    FetchableTopicResponse,
    FetchRequest,
    FetchResponse,
    PartitionData,
)
from redshank.protocol.record_batch import parse_header

__all__ = ["FetchBudget", "PartitionRead", "build", "clip", "plan",
           "session_error"]



@dataclass(frozen=True, slots=True)
class PartitionRead:
    tp: TopicPartition  # the key of its result
    core: int
    offset: int
    max_bytes: int
    leader_epoch: int
    topic_id: uuid.UUID | None = None
    isolation: int = 0  # the request's isolation_level (1: read_committed)

    @property
    def topic(self) -> str:
        return self.tp[0]

    @property
    def partition(self) -> int:
        return self.tp[1]



def plan(partitions: Iterable[SessionPartition], topics: Mapping[str, TopicInfo | None],
         partition_cap: int | None = None, isolation: int = 0
         ) -> tuple[list[PartitionRead], dict[TopicPartition, ReadResult]]:
    """`partitions`: what the fetch reads (its fetch context's), in read order.
    `partition_cap`: the most this broker returns of one partition per fetch, whatever the
    client allows (a partition may be answered with less than its max; the first batch still
    goes whole, KIP-74)."""
    reads: list[PartitionRead] = []
    done: dict[TopicPartition, ReadResult] = {}
    for p in partitions:
        info = topics.get(p.topic)
        core = info.core_of(p.partition) if info is not None else None
        if info is None or core is None:
            done[p.tp] = ReadResult(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
            continue
        limit = max(p.partition_max_bytes, 0)
        if partition_cap is not None:
            limit = min(limit, partition_cap)
        reads.append(PartitionRead(p.tp, core, p.fetch_offset, limit, p.current_leader_epoch,
                                   info.topic_id, isolation))
    return reads, done


def clip(records: bytes, max_bytes: int) -> bytes | memoryview:
    """The whole batches at the front of `records` that fit in `max_bytes`, at least the first
    (KIP-74), as a read of the log would return them."""
    if len(records) <= max_bytes:
        return records
    view = memoryview(records)
    end = parse_header(view, 0).size
    while end < len(records):
        size = parse_header(view, end).size
        if end + size > max_bytes:
            break
        end += size
    return view[:end]


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


def build(results: Mapping[TopicPartition, ReadResult], include: Iterable[TopicPartition],
          session_id: int = 0, isolation: int = 0) -> FetchResponse:
    """The response carrying the partitions in `include` (all of a full fetch's, the changed
    ones of an incremental fetch), each topic once, in order of first appearance.
    `isolation` 1 (read_committed): each partition lists its aborted transactions (none to
    a read_uncommitted fetch: an empty list, as before transactions, rather than Kafka's null,
    which every client reads alike)."""
    by_topic: dict[str, list[PartitionData]] = {}
    for tp in include:
        r = results[tp]
        lso = r.last_stable_offset if r.last_stable_offset >= 0 else r.high_watermark
        aborted = tuple(AbortedTransaction(pid, first) for pid, first in r.aborted) \
            if isolation == 1 else ()
        by_topic.setdefault(tp[0], []).append(
            PartitionData(
                partition_index=tp[1],
                error_code=r.error_code,
                high_watermark=r.high_watermark,
                last_stable_offset=lso,
                log_start_offset=r.log_start_offset,
                aborted_transactions=aborted,
                records=r.records if r.records is not None else b"",
            )
        )
    return FetchResponse(error_code=0, session_id=session_id, responses=tuple(
        FetchableTopicResponse(topic=topic, partitions=tuple(parts))
        for topic, parts in by_topic.items()))


def session_error(error_code: int) -> FetchResponse:
    """A fetch whose session is unknown or out of step: the top-level error, no partitions,
    session id 0 (the client starts a new session with a full fetch)."""
    return FetchResponse(error_code=error_code, session_id=0, responses=())
