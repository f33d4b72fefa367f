"""OffsetForLeaderEpoch (23): where each asked leader epoch ends.

Concern: which partitions to ask and the answer's shape. The partition's leader answers from
its leader-epoch cache (KIP-101/279, `EpochEnd`): the largest epoch at most the one asked and
the first offset after it (the next epoch's start; the log end offset for the latest epoch),
after checking the request's `current_leader_epoch` against its term (FENCED_LEADER_EPOCH,
UNKNOWN_LEADER_EPOCH, as Fetch). A negative epoch has no end (-1/-1). Must not know: logs,
actors, sockets.
"""

from __future__ import annotations

from collections.abc import Mapping

from redshank.cluster.kafka.topic_table import TopicInfo, TopicPartition
from redshank.cluster.partition.api import OffsetAnswer
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.fast_dataclass import dataclass
from redshank.protocol.messages import offset_for_leader_epoch as wire

__all__ = ["EndQuery", "answer", "build", "plan"]


@dataclass(frozen=True, slots=True)
class EndQuery:
    topic: str
    partition: int
    core: int
    leader_epoch: int
    current_leader_epoch: int


def plan(request: wire.OffsetForLeaderEpochRequest, topics: Mapping[str, TopicInfo | None]
         ) -> tuple[list[EndQuery], dict[TopicPartition, wire.EpochEndOffset]]:
    """The partitions whose leader must be asked, and the answers already known."""
    queries: list[EndQuery] = []
    done: dict[TopicPartition, wire.EpochEndOffset] = {}
    for t in request.topics:
        info = topics.get(t.topic)
        for p in t.partitions:
            core = info.core_of(p.partition) if info is not None else None
            tp = TopicPartition(t.topic, p.partition)
            if core is None:
                done[tp] = wire.EpochEndOffset(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, p.partition)
            elif p.leader_epoch < 0:
                done[tp] = wire.EpochEndOffset(ErrorCode.NONE, p.partition)
            else:
                queries.append(EndQuery(t.topic, p.partition, core, p.leader_epoch,
                                        p.current_leader_epoch))
    return queries, done


def answer(partition: int, end: OffsetAnswer) -> wire.EpochEndOffset:
    """The answer for a queried partition, from its leader's `EpochEnd` answer."""
    if end.error_code != ErrorCode.NONE:
        return wire.EpochEndOffset(end.error_code, partition)
    return wire.EpochEndOffset(ErrorCode.NONE, partition, end.leader_epoch, end.offset)


def build(request: wire.OffsetForLeaderEpochRequest,
          results: Mapping[TopicPartition, wire.EpochEndOffset]
          ) -> wire.OffsetForLeaderEpochResponse:
    return wire.OffsetForLeaderEpochResponse(topics=tuple(
        wire.OffsetForLeaderTopicResult(t.topic, tuple(
            results[TopicPartition(t.topic, p.partition)] for p in t.partitions))
        for t in request.topics))
