"""TxnOffsetCommit (28): wire <-> the group coordinator's `TxnOffsetCommitRequest` / result.

Concern: v0-4 (KIP-98; v2 adds the committed leader epoch, v3 the generation, member and
instance ids the coordinator checks as OffsetCommit's, v4 only the TRANSACTION_ABORTABLE error
KIP-890 allows, which we never answer); a partition of a topic that does not exist answers
UNKNOWN_TOPIC_OR_PARTITION without reaching the coordinator (`offset_commit.split_unknown`, the
same rule as OffsetCommit's); results come per partition in request order and are regrouped
by topic. Must not know: actors, sockets, how topics are looked up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from redshank.cluster.group import (
    NO_GENERATION,
    OffsetCommitPartition,
    OffsetCommitRequest,
    OffsetCommitResult,
    PartitionError,
    TxnOffsetCommitRequest,
)
from redshank.cluster.kafka.handlers import offset_commit
from redshank.protocol.messages import txn_offset_commit as wire

__all__ = ["build", "split_unknown", "to_api"]


def to_api(request: wire.TxnOffsetCommitRequest, version: int) -> TxnOffsetCommitRequest:
    parts = tuple(
        OffsetCommitPartition(t.name, p.partition_index, p.committed_offset,
                              p.committed_leader_epoch if version >= 2 else -1,
                              p.committed_metadata)
        for t in request.topics for p in t.partitions
    )
    v3 = version >= 3
    return TxnOffsetCommitRequest(
        token=0,
        transactional_id=request.transactional_id,
        group_id=request.group_id,
        producer_id=request.producer_id,
        producer_epoch=request.producer_epoch,
        partitions=parts,
        generation_id=request.generation_id if v3 else NO_GENERATION,
        member_id=request.member_id if v3 else "",
        group_instance_id=request.group_instance_id if v3 else None,
    )


def split_unknown(request: TxnOffsetCommitRequest, partition_counts: Mapping[str, int | None]
                  ) -> tuple[TxnOffsetCommitRequest, tuple[PartitionError, ...]]:
    """`request` without the partitions that do not exist, and their answers (OffsetCommit's
    rule, `offset_commit.split_unknown`)."""
    kept, unknown = offset_commit.split_unknown(
        OffsetCommitRequest(0, request.group_id, request.partitions), partition_counts)
    return dataclasses.replace(request, partitions=kept.partitions), unknown


def build(request: wire.TxnOffsetCommitRequest, result: OffsetCommitResult,
          unknown: tuple[PartitionError, ...] = ()) -> wire.TxnOffsetCommitResponse:
    """`unknown`: the answers `split_unknown` gave without the coordinator."""
    errors = {(p.topic, p.partition): p.error for p in (*result.partitions, *unknown)}
    return wire.TxnOffsetCommitResponse(topics=tuple(
        wire.TxnOffsetCommitResponseTopic(t.name, tuple(
            wire.TxnOffsetCommitResponsePartition(p.partition_index,
                                                  errors.get((t.name, p.partition_index), 0))
            for p in t.partitions))
        for t in request.topics
    ))
