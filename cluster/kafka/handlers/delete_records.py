"""DeleteRecords (21): split the request per partition and build the response.

Concern: which partitions exist (`plan`: unknown -> UNKNOWN_TOPIC_OR_PARTITION, a negative
offset other than -1 -> OFFSET_OUT_OF_RANGE) and what the owning partition answers (`Trim`: move
the log start to `offset`, -1 meaning the high watermark; above the high watermark ->
OFFSET_OUT_OF_RANGE; the answer carries the new low watermark). Must not know: logs, actors,
sockets.
"""

from __future__ import annotations

from collections.abc import Mapping

from redshank.cluster.kafka.topic_table import TopicInfo, TopicPartition
from redshank.cluster.partition.api import HIGH_WATERMARK, TrimResult
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.fast_dataclass import dataclass
from redshank.protocol.messages import delete_records as wire

__all__ = ["Trim", "build", "plan"]



@dataclass(frozen=True, slots=True)
class Trim:
    """Ask a partition leader: make `offset` (or the high watermark for -1) the log start."""

    topic: str
    partition: int
    core: int
    offset: int



def plan(request: wire.DeleteRecordsRequest, topics: Mapping[str, TopicInfo | None]
         ) -> tuple[list[Trim], dict[TopicPartition, TrimResult]]:
    trims: list[Trim] = []
    done: dict[TopicPartition, TrimResult] = {}
    for t in request.topics:
        info = topics.get(t.name)
        for p in t.partitions:
            core = info.core_of(p.partition_index) if info is not None else None
            tp = TopicPartition(t.name, p.partition_index)
            if core is None:
                done[tp] = TrimResult(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
            elif p.offset < HIGH_WATERMARK:
                done[tp] = TrimResult(ErrorCode.OFFSET_OUT_OF_RANGE)
            else:
                trims.append(Trim(t.name, p.partition_index, core, p.offset))
    return trims, done


def build(request: wire.DeleteRecordsRequest, results: Mapping[TopicPartition, TrimResult]
          ) -> wire.DeleteRecordsResponse:
    return wire.DeleteRecordsResponse(topics=tuple(
        wire.DeleteRecordsTopicResult(t.name, tuple(
            wire.DeleteRecordsPartitionResult(p.partition_index, r.low_watermark, r.error_code)
            for p in t.partitions
            for r in (results[TopicPartition(t.name, p.partition_index)],)))
        for t in request.topics))
