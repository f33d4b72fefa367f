"""OffsetForLeaderEpoch (23): where each asked leader epoch ends.

Concern: a single replica has one leader epoch, 0 (what Metadata and Fetch report), so the
answer needs only the partition's high watermark (`EndQuery` to its leader): epoch 0 (or any
later epoch) ends there; a negative epoch has no end (-1/-1); a `current_leader_epoch` newer than
0 is UNKNOWN_LEADER_EPOCH, as Fetch says. Must not know: logs, actors, sockets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from redshank.cluster.kafka.topic_table import TopicInfo, TopicPartition
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages import offset_for_leader_epoch as wire

__all__ = ["LEADER_EPOCH", "EndQuery", "answer", "build", "plan"]

LEADER_EPOCH = 0


@dataclass(frozen=True, slots=True)
class EndQuery:
    topic: str
    partition: int
    core: int


def plan(request: wire.OffsetForLeaderEpochRequest, topics: Mapping[str, TopicInfo | None]
         ) -> tuple[list[EndQuery], dict[TopicPartition, wire.EpochEndOffset]]:
    """The partitions whose high watermark is needed, and the answers already known."""
    queries: list[EndQuery] = []
    done: dict[TopicPartition, wire.EpochEndOffset] = {}
    for t in request.topics:
        info = topics.get(t.topic)
        for p in t.partitions:
            core = info.core_of(p.partition) if info is not None else None
            tp = TopicPartition(t.topic, p.partition)
            if core is None:
                done[tp] = wire.EpochEndOffset(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, p.partition)
            elif p.current_leader_epoch > LEADER_EPOCH:
                done[tp] = wire.EpochEndOffset(ErrorCode.UNKNOWN_LEADER_EPOCH, p.partition)
            elif p.leader_epoch < 0:
                done[tp] = wire.EpochEndOffset(ErrorCode.NONE, p.partition)
            else:
                queries.append(EndQuery(t.topic, p.partition, core))
    return queries, done


def answer(partition: int, error_code: int, high_watermark: int) -> wire.EpochEndOffset:
    """The answer for a queried partition, from its leader's high watermark."""
    if error_code != ErrorCode.NONE:
        return wire.EpochEndOffset(error_code, partition)
    return wire.EpochEndOffset(ErrorCode.NONE, partition, LEADER_EPOCH, high_watermark)


def build(request: wire.OffsetForLeaderEpochRequest,
          results: Mapping[TopicPartition, wire.EpochEndOffset]
          ) -> wire.OffsetForLeaderEpochResponse:
    return wire.OffsetForLeaderEpochResponse(topics=tuple(
        wire.OffsetForLeaderTopicResult(t.topic, tuple(
            results[TopicPartition(t.topic, p.partition)] for p in t.partitions))
        for t in request.topics))
