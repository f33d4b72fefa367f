"""OffsetCommit (8): wire <-> the group coordinator's `OffsetCommitRequest` / result.

Concern: v2-4 carry a retention time, v9 names the generation `generation_id_or_member_epoch`
(the generation for classic groups); results come per partition in request order and are
regrouped by topic. Must not know: actors, sockets.
"""

from __future__ import annotations

from redshank.cluster.group import OffsetCommitPartition, OffsetCommitRequest, OffsetCommitResult
from redshank.protocol.messages import offset_commit as wire

__all__ = ["build", "to_api"]


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


def build(request: wire.OffsetCommitRequest, result: OffsetCommitResult
          ) -> wire.OffsetCommitResponse:
    errors = {(p.topic, p.partition): p.error for p in result.partitions}
    return wire.OffsetCommitResponse(topics=tuple(
        wire.OffsetCommitResponseTopic(t.name, tuple(
            wire.OffsetCommitResponsePartition(p.partition_index,
                                               errors.get((t.name, p.partition_index), 0))
            for p in t.partitions))
        for t in request.topics
    ))
