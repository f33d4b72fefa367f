"""ListOffsets (2): split the request per partition and build the response.

Concern: which partitions exist and what each query means: -2 earliest, -1 latest (the high
watermark; under isolation_level 1, read_committed, the last stable offset: KIP-98), -3 the
offset of the max timestamp, t >= 0 the first batch with a timestamp >= t. Must not know: logs,
actors, sockets.
"""

from __future__ import annotations

from collections.abc import Mapping

from redshank.cluster.kafka.topic_table import TopicInfo, TopicPartition
from redshank.cluster.partition.api import MAX_TIMESTAMP, OffsetAnswer
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.fast_dataclass import dataclass
from redshank.protocol.messages.list_offsets import (
    ListOffsetsPartitionResponse,
    ListOffsetsRequest,
    ListOffsetsResponse,
    ListOffsetsTopicResponse,
)

__all__ = ["OffsetQuery", "build", "plan"]



@dataclass(frozen=True, slots=True)
class OffsetQuery:
    topic: str
    partition: int
    core: int
    timestamp: int
    current_leader_epoch: int = -1
    isolation: int = 0  # the request's isolation_level



def plan(request: ListOffsetsRequest, version: int, topics: Mapping[str, TopicInfo | None]
         ) -> tuple[list[OffsetQuery], dict[TopicPartition, OffsetAnswer]]:
    queries: list[OffsetQuery] = []
    done: dict[TopicPartition, OffsetAnswer] = {}
    for t in request.topics:
        info = topics.get(t.name)
        for p in t.partitions:
            core = info.core_of(p.partition_index) if info is not None else None
            tp = TopicPartition(t.name, p.partition_index)
            if core is None:
                done[tp] = OffsetAnswer(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
            elif p.timestamp < MAX_TIMESTAMP or (p.timestamp == MAX_TIMESTAMP and version < 7):
                # -4/-5 (tiered storage) are not advertised: ListOffsets stops at v7.
                done[tp] = OffsetAnswer(ErrorCode.UNSUPPORTED_VERSION)
            else:
                queries.append(OffsetQuery(t.name, p.partition_index, core, p.timestamp,
                                           p.current_leader_epoch, request.isolation_level))
    return queries, done


def build(request: ListOffsetsRequest, version: int, results: Mapping[TopicPartition, OffsetAnswer]
          ) -> ListOffsetsResponse:
    topics = []
    for t in request.topics:
        parts = []
        for p in t.partitions:
            r = results[TopicPartition(t.name, p.partition_index)]
            parts.append(
                ListOffsetsPartitionResponse(
                    partition_index=p.partition_index,
                    error_code=r.error_code,
                    timestamp=r.timestamp,
                    offset=r.offset,
                    # From v4: the epoch of the batch at `offset` (KIP-320).
                    leader_epoch=r.leader_epoch if r.error_code == 0 and version >= 4 else -1,
                )
            )
        topics.append(ListOffsetsTopicResponse(name=t.name, partitions=tuple(parts)))
    return ListOffsetsResponse(topics=tuple(topics))
