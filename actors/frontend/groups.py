"""The consumer-group APIs: each a call to the group's coordinator, with one fallback.

Concern: finding a group's coordinator (the host of its `__consumer_offsets` partition) and
asking it: `call` answers the given NOT_COORDINATOR result when the coordinator cannot be
reached (its core died, its host stopped, no replica of it here), so clients look for the
coordinator again. Every group API is then one call between its handler's `to_api` and
`build`. Single node: the topic is the node's own (created on first use, a partition per core),
each partition's host opened on its owning core on first use. Cluster mode: the topic is the
controller's (created through it on the first FindCoordinator, replicated on
min(3, active brokers) nodes); the controller backend opens each node's replicas with their
hosts, the one leading a partition serves it (the others answer NOT_COORDINATOR themselves),
and FindCoordinator names that leader as this node's replicas know it (`DescribeTopics`, as
Metadata does: a node hosting no replica of the partition names its preferred replica, which
answers NOT_COORDINATOR if it does not lead, and the client asks again). Must not know: the
group protocol (`cluster/group`), the wire shapes (`cluster/kafka/handlers`), Raft.
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

import pykka
import structlog

from redshank.actors._async import resolve
from redshank.actors.controller_service import CONTROLLER_SERVICE, DescribeTopics
from redshank.actors.frontend._internal_topics import cluster_view, local_topic
from redshank.actors.frontend._registry import serves
from redshank.actors.frontend._txn_coordinators import txn_view
from redshank.actors.frontend.services import OWNER_GONE, UNREACHABLE, CoreServices
from redshank.actors.group_host import GROUPS_TOPIC, GroupCall, GroupRequest, group_host_name
from redshank.actors.partition_manager import MANAGER, EnsureGroupHost
from redshank.actors.txn_host import TXN_TOPIC
from redshank.cluster.group import (
    DeleteGroupsResult,
    DescribedGroup,
    DescribeGroupsResult,
    GroupDeletion,
    GroupResult,
    HeartbeatResult,
    JoinGroupResult,
    LeaveGroupResult,
    ListGroupsResult,
    OffsetCommitResult,
    OffsetDeleteResult,
    OffsetFetchGroupResult,
    OffsetFetchResult,
    PartitionError,
    SyncGroupResult,
    TxnMarker,
    TxnMarkerRequest,
    TxnMarkerResult,
    partition_for,
)
from redshank.cluster.kafka import TopicInfo
from redshank.cluster.kafka import handlers as h
from redshank.cluster.kafka.handlers import txn_offset_commit as h_txn_offset_commit
from redshank.protocol import messages as m
from redshank.protocol.api_versions import ApiKey
from redshank.protocol.error_codes import ErrorCode

__all__ = ["CLUSTER_GROUPS_PARTITIONS", "GROUPS_MAX_REPLICATION", "call", "write_txn_marker"]

R = TypeVar("R", bound=GroupResult)
_NOT_COORDINATOR = ErrorCode.NOT_COORDINATOR
# `__consumer_offsets` in cluster mode (Kafka's offsets.topic.num.partitions is 50, Redpanda's
# 16): each partition is a Raft group ticking on every node that hosts it even when idle (about
# 0.4 % of a CPU per replica measured on an idle 3-node loopback cluster, noisy: 50 would cost
# each node a fifth of a core doing nothing), and its leader replays it on each election; 8
# still spreads the coordinators over the nodes (and cores) of a small cluster. Fixed once
# created: groups are placed by it.
CLUSTER_GROUPS_PARTITIONS = 8
# Kafka's offsets.topic.replication.factor: 3, or every active broker when fewer.
GROUPS_MAX_REPLICATION = 3
_log = structlog.get_logger("redshank.groups")


async def _groups_topic(core: CoreServices) -> TopicInfo:
    """Single node: `__consumer_offsets`, created on first use."""
    return await local_topic(core, GROUPS_TOPIC)


async def _call_host(core: CoreServices, info: TopicInfo, p: int, request: GroupRequest,
                     unavailable: R) -> R:
    """Ask the coordinator of `__consumer_offsets` partition `p`; `unavailable` if it cannot
    answer."""
    owner = info.cores[p]
    name = group_host_name(p)
    try:
        if name not in core.ensured:
            await resolve(core.router.ref(owner, MANAGER).ask(
                EnsureGroupHost(p, info.partitions), block=False))
            core.ensured.add(name)
        try:
            answer: object = await resolve(core.router.ref(owner, name).ask(
                GroupCall(request), block=False))
        except pykka.ActorDeadError:
            core.ensured.discard(name)
            raise
    except OWNER_GONE:
        return unavailable
    assert isinstance(answer, type(unavailable))
    return answer


async def _call_replica(core: CoreServices, info: TopicInfo, p: int, request: GroupRequest,
                        unavailable: R) -> R:
    """Cluster mode: ask this node's replica of partition `p` (its host answers from its
    coordinator's status: NOT_COORDINATOR unless it leads); `unavailable` if none is here."""
    try:
        answer: object = await resolve(core.router.ref(info.cores[p], group_host_name(p)).ask(
            GroupCall(request), block=False))
    except OWNER_GONE:  # no replica of `p` here (or its core is down)
        return unavailable
    assert isinstance(answer, type(unavailable))
    return answer


def _replicated_topic(core: CoreServices) -> TopicInfo | None:
    """Cluster mode: `__consumer_offsets` as the controller backend told this core (None: this
    node hosts no replica of it, or it does not exist yet)."""
    info = core.topics.get(GROUPS_TOPIC)
    return info if info is not None and info.replicated else None


async def _groups_view(core: CoreServices) -> h.metadata.ClusterView | None:
    """Cluster mode: the controller's view of `__consumer_offsets`, created on first use."""
    return await cluster_view(core, GROUPS_TOPIC, CLUSTER_GROUPS_PARTITIONS,
                              GROUPS_MAX_REPLICATION, _log, "groups_topic_created")


async def call(core: CoreServices, group_id: str, request: GroupRequest, unavailable: R) -> R:
    """The answer of `group_id`'s coordinator to `request`, or `unavailable` (carrying
    NOT_COORDINATOR) when it cannot be reached."""
    if core.cluster_mode:
        replicated = _replicated_topic(core)
        if replicated is None:
            return unavailable
        return await _call_replica(core, replicated, partition_for(
            group_id, replicated.partitions), request, unavailable)
    try:
        info = await _groups_topic(core)
    except OWNER_GONE:
        return unavailable
    return await _call_host(core, info, partition_for(group_id, info.partitions), request,
                            unavailable)


@serves(ApiKey.FIND_COORDINATOR)
async def find_coordinator(core: CoreServices,
                           request: m.find_coordinator.FindCoordinatorRequest, version: int
                           ) -> m.find_coordinator.FindCoordinatorResponse:
    """Single node: this node coordinates every group and transactional id. Cluster mode: the
    leader of the key's `__consumer_offsets` (groups) or `__transaction_state` (transactional
    ids) partition, the topic created through the controller on first use."""
    if not core.cluster_mode:
        return h.find_coordinator.handle(request, version, core.broker)
    if h.find_coordinator.group_keys(request, version):
        view, topic = await _groups_view(core), GROUPS_TOPIC
    elif h.find_coordinator.txn_keys(request, version):
        view, topic = await txn_view(core), TXN_TOPIC
    else:
        return h.find_coordinator.handle(request, version, core.broker)
    return h.find_coordinator.handle(
        request, version, core.broker,
        (lambda _key: None) if view is None else h.find_coordinator.locate_in(view, topic))


@serves(ApiKey.JOIN_GROUP, client_id=True)
async def join_group(core: CoreServices, request: m.join_group.JoinGroupRequest, version: int,
                     client_id: str) -> m.join_group.JoinGroupResponse:
    result = await call(core, request.group_id,
                        h.join_group.to_api(request, version, client_id),
                        JoinGroupResult(_NOT_COORDINATOR))
    return h.join_group.build(result, version)


@serves(ApiKey.SYNC_GROUP)
async def sync_group(core: CoreServices, request: m.sync_group.SyncGroupRequest, version: int
                     ) -> m.sync_group.SyncGroupResponse:
    result = await call(core, request.group_id, h.sync_group.to_api(request, version),
                        SyncGroupResult(_NOT_COORDINATOR))
    return h.sync_group.build(result, version)


@serves(ApiKey.HEARTBEAT)
async def heartbeat(core: CoreServices, request: m.heartbeat.HeartbeatRequest, version: int
                    ) -> m.heartbeat.HeartbeatResponse:
    result = await call(core, request.group_id, h.heartbeat.to_api(request, version),
                        HeartbeatResult(_NOT_COORDINATOR))
    return h.heartbeat.build(result, version)


@serves(ApiKey.LEAVE_GROUP)
async def leave_group(core: CoreServices, request: m.leave_group.LeaveGroupRequest,
                      version: int) -> m.leave_group.LeaveGroupResponse:
    result = await call(core, request.group_id, h.leave_group.to_api(request, version),
                        LeaveGroupResult(_NOT_COORDINATOR))
    return h.leave_group.build(result, version)


@serves(ApiKey.OFFSET_COMMIT)
async def offset_commit(core: CoreServices, request: m.offset_commit.OffsetCommitRequest,
                        version: int) -> m.offset_commit.OffsetCommitResponse:
    asked = h.offset_commit.to_api(request, version)
    counts = await _partition_counts(core, sorted({p.topic for p in asked.partitions}))
    api, unknown = h.offset_commit.split_unknown(asked, counts)
    if not api.partitions:  # nothing left to commit: Kafka answers without the coordinator
        return h.offset_commit.build(request, OffsetCommitResult(()), unknown)
    result = await call(core, request.group_id, api, OffsetCommitResult(tuple(
        PartitionError(p.topic, p.partition, _NOT_COORDINATOR) for p in api.partitions)))
    return h.offset_commit.build(request, result, unknown)


async def _partition_counts(core: CoreServices, names: list[str]) -> dict[str, int | None]:
    """Each topic's partition count, 0 when it does not exist, None when that is not known now
    (cluster mode: the controller's topics first, as Metadata answers; the node's own topic
    table for the rest)."""
    counts: dict[str, int | None] = {}
    rest = names
    if core.cluster_mode and names:
        try:
            view = await asyncio.wait_for(resolve(core.router.ref(0, CONTROLLER_SERVICE).ask(
                DescribeTopics(tuple(names)), block=False)), core.config.controller_timeout_s)
        except UNREACHABLE:
            return dict.fromkeys(names)
        assert isinstance(view, h.metadata.ClusterView)
        if not view.brokers:  # no controller state here yet: it cannot say
            return dict.fromkeys(names)
        for name, topic in view.topics.items():
            counts[name] = len(topic.partitions)
        rest = [n for n in names if n not in counts]
    if rest:
        infos, unsure = await core.topic_infos(rest)
        for name in rest:
            info = infos.get(name)
            counts[name] = None if name in unsure else 0 if info is None else info.partitions
    return counts


@serves(ApiKey.OFFSET_FETCH)
async def offset_fetch(core: CoreServices, request: m.offset_fetch.OffsetFetchRequest,
                       version: int) -> m.offset_fetch.OffsetFetchResponse:
    groups = []
    for api in h.offset_fetch.to_api(request, version):
        group_id = api.groups[0].group_id
        result = await call(core, group_id, api, OffsetFetchResult(
            (OffsetFetchGroupResult(group_id, _NOT_COORDINATOR),)))
        groups.append(result.groups[0])
    return h.offset_fetch.build(groups, version)


@serves(ApiKey.DESCRIBE_GROUPS)
async def describe_groups(core: CoreServices, request: m.describe_groups.DescribeGroupsRequest,
                          version: int) -> m.describe_groups.DescribeGroupsResponse:
    groups = []
    for api in h.describe_groups.to_api(request, version):
        group_id = api.group_ids[0]
        result = await call(core, group_id, api, DescribeGroupsResult(
            (DescribedGroup(group_id, _NOT_COORDINATOR),)))
        groups.append(result.groups[0])
    return h.describe_groups.build(groups, version)


@serves(ApiKey.LIST_GROUPS)
async def list_groups(core: CoreServices, request: m.list_groups.ListGroupsRequest,
                      version: int) -> m.list_groups.ListGroupsResponse:
    """Every `__consumer_offsets` partition's coordinator lists its own groups (cluster mode:
    the ones this node leads; clients ask every broker)."""
    api = h.list_groups.to_api(request, version)
    if core.cluster_mode:
        info = _replicated_topic(core)
        not_here = ListGroupsResult(_NOT_COORDINATOR)
        listed = [] if info is None else [await _call_replica(core, info, p, api, not_here)
                                          for p in range(info.partitions)]
        return h.list_groups.build([r for r in listed if r.error != _NOT_COORDINATOR], version)
    unavailable = ListGroupsResult(ErrorCode.COORDINATOR_NOT_AVAILABLE)
    try:
        info = await _groups_topic(core)
    except OWNER_GONE:
        return h.list_groups.build([unavailable], version)
    results = [await _call_host(core, info, p, api, unavailable)
               for p in range(info.partitions)]
    return h.list_groups.build(results, version)


@serves(ApiKey.DELETE_GROUPS)
async def delete_groups(core: CoreServices, request: m.delete_groups.DeleteGroupsRequest,
                        version: int) -> m.delete_groups.DeleteGroupsResponse:
    results = []
    for api in h.delete_groups.to_api(request, version):
        group_id = api.group_ids[0]
        result = await call(core, group_id, api, DeleteGroupsResult(
            (GroupDeletion(group_id, _NOT_COORDINATOR),)))
        results.append(result.results[0])
    return h.delete_groups.build(results, version)


@serves(ApiKey.OFFSET_DELETE)
async def offset_delete(core: CoreServices, request: m.offset_delete.OffsetDeleteRequest,
                        version: int) -> m.offset_delete.OffsetDeleteResponse:
    del version
    counts = await _partition_counts(core, sorted({t.name for t in request.topics}))
    api, unknown = h.offset_delete.to_api(
        request, {name: None if n is None else n > 0 for name, n in counts.items()})
    result = await call(core, request.group_id, api, OffsetDeleteResult(_NOT_COORDINATOR))
    return h.offset_delete.build(request, result, unknown)


@serves(ApiKey.TXN_OFFSET_COMMIT)
async def txn_offset_commit(core: CoreServices,
                            request: m.txn_offset_commit.TxnOffsetCommitRequest, version: int
                            ) -> m.txn_offset_commit.TxnOffsetCommitResponse:
    """KIP-98: the group's coordinator writes the offsets pending under the producer id; the
    transaction's marker on the group's partition (`write_txn_marker`) settles them."""
    asked = h_txn_offset_commit.to_api(request, version)
    counts = await _partition_counts(core, sorted({p.topic for p in asked.partitions}))
    api, unknown = h_txn_offset_commit.split_unknown(asked, counts)
    if not api.partitions:
        return h_txn_offset_commit.build(request, OffsetCommitResult(()), unknown)
    result = await call(core, request.group_id, api, OffsetCommitResult(tuple(
        PartitionError(p.topic, p.partition, _NOT_COORDINATOR) for p in api.partitions)))
    return h_txn_offset_commit.build(request, result, unknown)


async def write_txn_marker(core: CoreServices, partition: int, producer_id: int,
                           producer_epoch: int, committed: bool, coordinator_epoch: int
                           ) -> ErrorCode:
    """WriteTxnMarkers for `__consumer_offsets` partition `partition` (KIP-98): its group host
    appends the COMMIT/ABORT control batch (acks=all), then makes `producer_id`'s pending
    transactional offsets the committed ones (commit) or drops them (abort), in every group of
    the partition. NONE once done; NOT_LEADER_OR_FOLLOWER when this node does not serve the
    partition (no replica here, a follower, still replaying), UNKNOWN_TOPIC_OR_PARTITION for
    a partition the topic does not have, or the append's error (all retriable)."""
    request = TxnMarkerRequest(0, TxnMarker(producer_id, producer_epoch, committed,
                                            coordinator_epoch))
    unavailable = TxnMarkerResult(ErrorCode.NOT_LEADER_OR_FOLLOWER)
    if core.cluster_mode:
        info = _replicated_topic(core)
        if info is None:
            return unavailable.error
        if not 0 <= partition < info.partitions:
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        return (await _call_replica(core, info, partition, request, unavailable)).error
    try:
        info = await _groups_topic(core)
    except OWNER_GONE:
        return unavailable.error
    if not 0 <= partition < info.partitions:
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    return (await _call_host(core, info, partition, request, unavailable)).error
