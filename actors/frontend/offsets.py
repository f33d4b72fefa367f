"""Offset APIs: ListOffsets, DeleteRecords, OffsetForLeaderEpoch.

Concern: asking each addressed partition's owner one question (an offset by timestamp, a new
log start, the high watermark) and answering per partition; a partition of a topic the core
could not look up, or whose owner is gone, answers NOT_LEADER_OR_FOLLOWER. Must not know: how a
partition finds an offset, the wire shapes (`cluster/kafka/handlers`).
"""

from __future__ import annotations

from redshank.actors.frontend._registry import serves
from redshank.actors.frontend.services import CoreServices
from redshank.cluster.kafka import TopicPartition
from redshank.cluster.kafka import handlers as h
from redshank.cluster.kafka.handlers import not_leader_if_unsure
from redshank.cluster.partition.api import (
    EpochEnd,
    OffsetAnswer,
    QueryOffset,
    TrimPrefix,
    TrimResult,
)
from redshank.protocol import messages as m
from redshank.protocol.api_versions import ApiKey
from redshank.protocol.error_codes import ErrorCode

__all__: list[str] = []

_NOT_LEADER = ErrorCode.NOT_LEADER_OR_FOLLOWER


@serves(ApiKey.LIST_OFFSETS)
async def list_offsets(core: CoreServices, request: m.list_offsets.ListOffsetsRequest,
                       version: int) -> m.list_offsets.ListOffsetsResponse:
    infos, unsure = await core.topic_infos([t.name for t in request.topics])
    queries, results = h.list_offsets.plan(request, version, infos)
    not_leader_if_unsure(results, unsure, lambda _tp: OffsetAnswer(_NOT_LEADER))
    for q in queries:
        tp = TopicPartition(q.topic, q.partition)
        results[tp] = await core.ask_partition(tp, q.core, QueryOffset(
            q.timestamp, q.current_leader_epoch, q.isolation))
    return h.list_offsets.build(request, version, results)


@serves(ApiKey.DELETE_RECORDS)
async def delete_records(core: CoreServices, request: m.delete_records.DeleteRecordsRequest,
                         version: int) -> m.delete_records.DeleteRecordsResponse:
    infos, unsure = await core.topic_infos([t.name for t in request.topics])
    trims, results = h.delete_records.plan(request, infos)
    not_leader_if_unsure(results, unsure, lambda _tp: TrimResult(_NOT_LEADER))
    for t in trims:
        tp = TopicPartition(t.topic, t.partition)
        results[tp] = await core.ask_partition(tp, t.core, TrimPrefix(t.offset))
    return h.delete_records.build(request, results)


@serves(ApiKey.OFFSET_FOR_LEADER_EPOCH)
async def offset_for_leader_epoch(
        core: CoreServices,
        request: m.offset_for_leader_epoch.OffsetForLeaderEpochRequest, version: int
        ) -> m.offset_for_leader_epoch.OffsetForLeaderEpochResponse:
    infos, unsure = await core.topic_infos([t.topic for t in request.topics])
    queries, results = h.offset_for_leader_epoch.plan(request, infos)
    not_leader_if_unsure(results, unsure,
                         lambda tp: h.offset_for_leader_epoch.answer(tp[1],
                                                                     OffsetAnswer(_NOT_LEADER)))
    for q in queries:
        tp = TopicPartition(q.topic, q.partition)
        end = await core.ask_partition(tp, q.core, EpochEnd(q.leader_epoch,
                                                            q.current_leader_epoch))
        results[tp] = h.offset_for_leader_epoch.answer(q.partition, end)
    return h.offset_for_leader_epoch.build(request, results)
