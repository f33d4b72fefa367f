"""The consumer-group APIs: each a call to the group's coordinator, with one fallback.

Concern: finding a group's coordinator (the host of its `__consumer_offsets` partition, created
on first use and opened on its owning core) and asking it: `call` answers the given
NOT_COORDINATOR result when the coordinator cannot be reached (its core died, its host
stopped), so clients look for the coordinator again. Every group API is then one call between
its handler's `to_api` and `build`. Must not know: the group protocol (`cluster/group`), the
wire shapes (`cluster/kafka/handlers`).
"""

from __future__ import annotations

from typing import TypeVar

import pykka

from redshank.actors._async import resolve
from redshank.actors.frontend._registry import serves
from redshank.actors.frontend.services import OWNER_GONE, CoreServices
from redshank.actors.group_host import GROUPS_TOPIC, GroupCall, GroupRequest, group_host_name
from redshank.actors.partition_manager import MANAGER, EnsureGroupHost
from redshank.actors.topic_controller import CreateTopics
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
    OffsetFetchGroupResult,
    OffsetFetchResult,
    PartitionError,
    SyncGroupResult,
    partition_for,
)
from redshank.cluster.kafka import TopicInfo
from redshank.cluster.kafka import handlers as h
from redshank.protocol import messages as m
from redshank.protocol.api_versions import ApiKey
from redshank.protocol.error_codes import ErrorCode

__all__ = ["call"]

R = TypeVar("R", bound=GroupResult)
_NOT_COORDINATOR = ErrorCode.NOT_COORDINATOR


async def _groups_topic(core: CoreServices) -> TopicInfo:
    info = core.topics.get(GROUPS_TOPIC)
    if info is None:
        spec = h.create_topics.TopicSpec(GROUPS_TOPIC, core.router.ncores, ())
        await core.ask_controller(CreateTopics((spec,), False))
        info = (await core.topic_infos([GROUPS_TOPIC]))[0][GROUPS_TOPIC]
    if info is None:
        raise pykka.ActorDeadError(f"{GROUPS_TOPIC} does not exist")
    return info


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


async def call(core: CoreServices, group_id: str, request: GroupRequest, unavailable: R) -> R:
    """The answer of `group_id`'s coordinator to `request`, or `unavailable` (carrying
    NOT_COORDINATOR) when it cannot be reached."""
    try:
        info = await _groups_topic(core)
    except OWNER_GONE:
        return unavailable
    return await _call_host(core, info, partition_for(group_id, info.partitions), request,
                            unavailable)


@serves(ApiKey.FIND_COORDINATOR)
def find_coordinator(core: CoreServices, request: m.find_coordinator.FindCoordinatorRequest,
                     version: int) -> m.find_coordinator.FindCoordinatorResponse:
    return h.find_coordinator.handle(request, version, core.broker)


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
    api = h.offset_commit.to_api(request, version)
    result = await call(core, request.group_id, api, OffsetCommitResult(tuple(
        PartitionError(p.topic, p.partition, _NOT_COORDINATOR) for p in api.partitions)))
    return h.offset_commit.build(request, result)


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
    """Every `__consumer_offsets` partition's coordinator lists its own groups."""
    api = h.list_groups.to_api(request, version)
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
