"""OffsetCommit (8): wire <-> the group coordinator's `OffsetCommitRequest` / result.

Concern: v2-4 carry a retention time, v9 names the generation `generation_id_or_member_epoch`
(the generation for classic groups); a partition of a topic that does not exist, or past its
topic's partition count, answers UNKNOWN_TOPIC_OR_PARTITION without reaching the coordinator
(Kafka checks its metadata cache before the group coordinator; AlterConsumerGroupOffsets is the
same request); results come per partition in request order and are regrouped by topic. Must not
know: actors, sockets, how topics are looked up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from redshank.cluster.group import (
    OffsetCommitPartition,
    OffsetCommitRequest,
    OffsetCommitResult,
    PartitionError,
)
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages import offset_commit as wire

__all__ = ["build", "split_unknown", "to_api"]


def to_api(request: wire.OffsetCommitRequest, version: int) -> OffsetCommitRequest:
    parts = tuple(
        OffsetCommitPartition(t.name, p.partition_index, p.committed_offset,
                              p.committed_leader_epoch, p.committed_metadata)
        for t in request.topics for p in t.partitions
    )
    return OffsetCommitRequest(
        token=0,
        group_id=request.group_id,
        partitions=parts,
        generation_id=request.generation_id_or_member_epoch,
        member_id=request.member_id,
        group_instance_id=request.group_instance_id,
        retention_time_ms=request.retention_time_ms if 2 <= version <= 4 else -1,
    )


def split_unknown(request: OffsetCommitRequest, partition_counts: Mapping[str, int | None]
                  ) -> tuple[OffsetCommitRequest, tuple[PartitionError, ...]]:
    """`request` without the partitions that do not exist, and their UNKNOWN_TOPIC_OR_PARTITION
    answers. `partition_counts`: each topic's partition count (0: no such topic; None or
    absent: not known now, the controller could not say: the partition is committed as asked,
    never refused for a topic that may exist)."""
    kept: list[OffsetCommitPartition] = []
    unknown: list[PartitionError] = []
    for p in request.partitions:
        count = partition_counts.get(p.topic)
        if count is not None and not 0 <= p.partition < count:
            unknown.append(PartitionError(p.topic, p.partition,
                                          ErrorCode.UNKNOWN_TOPIC_OR_PARTITION))
        else:
            kept.append(p)
    return dataclasses.replace(request, partitions=tuple(kept)), tuple(unknown)


def build(request: wire.OffsetCommitRequest, result: OffsetCommitResult,
          unknown: tuple[PartitionError, ...] = ()) -> wire.OffsetCommitResponse:
    """`unknown`: the answers `split_unknown` gave without the coordinator."""
    errors = {(p.topic, p.partition): p.error for p in (*result.partitions, *unknown)}
    return wire.OffsetCommitResponse(topics=tuple(
        wire.OffsetCommitResponseTopic(t.name, tuple(
            wire.OffsetCommitResponsePartition(p.partition_index,
                                               errors.get((t.name, p.partition_index), 0))
            for p in t.partitions))
        for t in request.topics
    ))
