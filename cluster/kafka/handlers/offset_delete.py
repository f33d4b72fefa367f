"""OffsetDelete (47): wire <-> the group coordinator's `OffsetDeleteRequest` / result (KIP-496).

Concern: the asked partitions flattened in request order; a topic that does not exist answers
UNKNOWN_TOPIC_OR_PARTITION for its partitions without reaching the coordinator (Kafka checks
its metadata cache first); a group-level error answers with no topics, as Kafka does. Must not
know: actors, sockets, how topics are looked up.
"""

from __future__ import annotations

from collections.abc import Mapping

from redshank.cluster.group import OffsetDeleteRequest, OffsetDeleteResult, PartitionError
from redshank.cluster.kafka.topic_table import TopicPartition
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages import offset_delete as wire

__all__ = ["build", "to_api"]


def to_api(request: wire.OffsetDeleteRequest, topic_exists: Mapping[str, bool | None]
           ) -> tuple[OffsetDeleteRequest, tuple[PartitionError, ...]]:
    """The request for the coordinator (the partitions of topics not known to be missing) and
    the UNKNOWN_TOPIC_OR_PARTITION answers of the others. `topic_exists`: False for a topic
    that does not exist (None or absent: not known now, passed on)."""
    kept: list[TopicPartition] = []
    unknown: list[PartitionError] = []
    for t in request.topics:
        for p in t.partitions:
            if topic_exists.get(t.name) is False:
                unknown.append(PartitionError(t.name, p.partition_index,
                                              ErrorCode.UNKNOWN_TOPIC_OR_PARTITION))
            else:
                kept.append(TopicPartition(t.name, p.partition_index))
    return OffsetDeleteRequest(0, request.group_id, tuple(kept)), tuple(unknown)


def build(request: wire.OffsetDeleteRequest, result: OffsetDeleteResult,
          unknown: tuple[PartitionError, ...] = ()) -> wire.OffsetDeleteResponse:
    if result.error != ErrorCode.NONE:
        return wire.OffsetDeleteResponse(error_code=result.error)
    errors = {(p.topic, p.partition): p.error for p in (*result.partitions, *unknown)}
    return wire.OffsetDeleteResponse(topics=tuple(
        wire.OffsetDeleteResponseTopic(t.name, tuple(
            wire.OffsetDeleteResponsePartition(p.partition_index,
                                               errors.get((t.name, p.partition_index), 0))
            for p in t.partitions))
        for t in request.topics))
