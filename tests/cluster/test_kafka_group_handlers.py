"""The group API handlers: wire <-> cluster/group values for every advertised version, and every
response they build encodes at every advertised version (a field a version lacks must stay at
its default)."""

from __future__ import annotations

import uuid

from redshank.cluster.group import (
    HeartbeatResult,
    JoinedMember,
    JoinGroupResult,
    LeaveGroupResult,
    LeaveMemberResult,
    OffsetCommitResult,
    OffsetFetchGroupResult,
    PartitionError,
    PartitionOffset,
    SyncGroupResult,
    partition_for,
)
from redshank.cluster.kafka.handlers import (
    find_coordinator,
    heartbeat,
    join_group,
    leave_group,
    metadata,
    offset_commit,
    offset_fetch,
    sync_group,
)
from redshank.protocol.api_versions import ADVERTISED, ApiKey
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages import find_coordinator as fc_wire
from redshank.protocol.messages import join_group as jg_wire
from redshank.protocol.messages import leave_group as lg_wire
from redshank.protocol.messages import metadata as md_wire
from redshank.protocol.messages import offset_commit as oc_wire
from redshank.protocol.messages import offset_fetch as of_wire

BROKER = metadata.BrokerAddress(0, "127.0.0.1", 9092)


def _versions(key: ApiKey) -> range:
    lo, hi = ADVERTISED[key]
    return range(lo, hi + 1)


def test_find_coordinator_single_and_batched() -> None:
    for v in _versions(ApiKey.FIND_COORDINATOR):
        req = fc_wire.FindCoordinatorRequest(key="g", coordinator_keys=("g", "h"))
        resp = find_coordinator.handle(req, v, BROKER)
        resp.encode(v)
        if v >= 4:
            assert [c.key for c in resp.coordinators] == ["g", "h"]
            assert all(c.port == 9092 and c.error_code == 0 for c in resp.coordinators)
        else:
            assert (resp.node_id, resp.port, resp.error_code) == (0, 9092, 0)
    # A transactional id: single node, this node coordinates every one.
    txn = find_coordinator.handle(fc_wire.FindCoordinatorRequest(key="t", key_type=1), 2, BROKER)
    assert (txn.error_code, txn.node_id, txn.port) == (0, 0, 9092)
    batched = find_coordinator.handle(
        fc_wire.FindCoordinatorRequest(key_type=1, coordinator_keys=("t", "")), 4, BROKER)
    assert [(c.key, c.error_code) for c in batched.coordinators] == [
        ("t", 0), ("", ErrorCode.INVALID_REQUEST)]
    other = find_coordinator.handle(fc_wire.FindCoordinatorRequest(key="s", key_type=2), 3, BROKER)
    assert other.error_code == ErrorCode.INVALID_REQUEST


def test_find_coordinator_in_a_cluster_names_each_partition_leader() -> None:
    """Cluster mode: a group's coordinator is the leader of its `__consumer_offsets` partition;
    COORDINATOR_NOT_AVAILABLE while that partition has none (or it is not an active broker),
    and while the topic is not known at all."""
    brokers = (metadata.BrokerAddress(1, "a", 1), metadata.BrokerAddress(2, "b", 2))
    parts = (metadata.ReplicatedPartition((1, 2), 2, 5),
             metadata.ReplicatedPartition((2, 1), -1, -1),
             metadata.ReplicatedPartition((1, 2), 3, 1))  # node 3: not an active broker
    view = metadata.ClusterView(brokers, 1, {
        "__consumer_offsets": metadata.ReplicatedTopic(uuid.UUID(int=1), parts)})
    keys = {p: next(f"g{i}" for i in range(100) if partition_for(f"g{i}", 3) == p)
            for p in range(3)}
    req = fc_wire.FindCoordinatorRequest(coordinator_keys=tuple(keys.values()))
    assert find_coordinator.group_keys(req, 4) == tuple(keys.values())
    resp = find_coordinator.handle(req, 4, BROKER,
                                   find_coordinator.locate_in(view, "__consumer_offsets"))
    assert [(c.key, c.node_id, c.host, c.error_code) for c in resp.coordinators] == [
        (keys[0], 2, "b", 0), (keys[1], -1, "", ErrorCode.COORDINATOR_NOT_AVAILABLE),
        (keys[2], -1, "", ErrorCode.COORDINATOR_NOT_AVAILABLE)]
    v3 = find_coordinator.handle(fc_wire.FindCoordinatorRequest(key=keys[0]), 3, BROKER,
                                 find_coordinator.locate_in(view, "__consumer_offsets"))
    assert (v3.node_id, v3.port, v3.error_code) == (2, 2, 0)
    none = find_coordinator.locate_in(metadata.ClusterView(brokers, 1, {}), "__consumer_offsets")
    assert none("g0") is None
    assert find_coordinator.group_keys(
        fc_wire.FindCoordinatorRequest(key="t", key_type=1), 3) == ()
    # Metadata marks the controller's `__consumer_offsets` internal, as the node's own.
    q = metadata.query(md_wire.MetadataRequest(topics=None), 12, False)
    resp_md = metadata.with_cluster(metadata.build(md_wire.MetadataRequest(topics=None), 12,
                                                   BROKER, "cid", q, {}), q, view)
    assert [(t.name, t.is_internal) for t in resp_md.topics] == [("__consumer_offsets", True)]


def test_join_group_mapping() -> None:
    req = jg_wire.JoinGroupRequest(group_id="g", session_timeout_ms=10000,
                                   rebalance_timeout_ms=30000, member_id="",
                                   protocol_type="consumer",
                                   protocols=(jg_wire.JoinGroupRequestProtocol("range", b"m"),))
    v0 = join_group.to_api(req, 0, "cid")
    assert v0.rebalance_timeout_ms == 10000 and not v0.require_known_member_id
    v5 = join_group.to_api(req, 5, "cid")
    assert v5.rebalance_timeout_ms == 30000 and v5.require_known_member_id
    assert v5.protocols[0].name == "range" and v5.client_id == "cid"
    result = JoinGroupResult(ErrorCode.NONE, "m1", 1, "consumer", "range", "m1",
                             (JoinedMember("m1", None, b"meta"),))
    for v in _versions(ApiKey.JOIN_GROUP):
        resp = join_group.build(result, v)
        resp.encode(v)
        assert resp.generation_id == 1 and resp.members[0].metadata == b"meta"
    assert join_group.build(JoinGroupResult(ErrorCode.MEMBER_ID_REQUIRED, "m2"), 4).member_id \
        == "m2"


def test_sync_heartbeat_leave_encode_everywhere() -> None:
    for v in _versions(ApiKey.SYNC_GROUP):
        sync_group.build(SyncGroupResult(ErrorCode.NONE, b"a", "consumer", "range"), v).encode(v)
    for v in _versions(ApiKey.HEARTBEAT):
        heartbeat.build(HeartbeatResult(ErrorCode.REBALANCE_IN_PROGRESS), v).encode(v)
    result = LeaveGroupResult(ErrorCode.NONE, (LeaveMemberResult("m", None,
                                                                 ErrorCode.UNKNOWN_MEMBER_ID),))
    for v in _versions(ApiKey.LEAVE_GROUP):
        resp = leave_group.build(result, v)
        resp.encode(v)
        if v < 3:  # one member: its error is the answer
            assert resp.error_code == ErrorCode.UNKNOWN_MEMBER_ID
        else:
            assert resp.error_code == 0 and resp.members[0].error_code == 25
    single = leave_group.to_api(lg_wire.LeaveGroupRequest(group_id="g", member_id="m"), 1)
    assert [m.member_id for m in single.members] == ["m"]
    batch = leave_group.to_api(lg_wire.LeaveGroupRequest(
        group_id="g", members=(lg_wire.MemberIdentity("a"), lg_wire.MemberIdentity("b"))), 5)
    assert [m.member_id for m in batch.members] == ["a", "b"]


def test_offset_commit_regroups_by_topic() -> None:
    req = oc_wire.OffsetCommitRequest(group_id="g", generation_id_or_member_epoch=3,
                                      member_id="m", retention_time_ms=99, topics=(
        oc_wire.OffsetCommitRequestTopic("t", (oc_wire.OffsetCommitRequestPartition(0, 5),
                                               oc_wire.OffsetCommitRequestPartition(1, 6))),))
    api = offset_commit.to_api(req, 3)
    assert [(p.topic, p.partition, p.offset) for p in api.partitions] == [("t", 0, 5), ("t", 1, 6)]
    assert api.generation_id == 3 and api.retention_time_ms == 99
    assert offset_commit.to_api(req, 8).retention_time_ms == -1
    result = OffsetCommitResult((PartitionError("t", 0, ErrorCode.NONE),
                                 PartitionError("t", 1, ErrorCode.ILLEGAL_GENERATION)))
    for v in _versions(ApiKey.OFFSET_COMMIT):
        resp = offset_commit.build(req, result)
        resp.encode(v)
        assert [p.error_code for p in resp.topics[0].partitions] == [0, 22]


def test_offset_fetch_single_and_multi_group() -> None:
    single = of_wire.OffsetFetchRequest(group_id="g", topics=(
        of_wire.OffsetFetchRequestTopic("t", (0,)),))
    (api,) = offset_fetch.to_api(single, 3)
    assert api.groups[0].group_id == "g" and api.groups[0].topics == (("t", (0,)),)
    multi = of_wire.OffsetFetchRequest(groups=(
        of_wire.OffsetFetchRequestGroup("a", topics=None),
        of_wire.OffsetFetchRequestGroup("b", topics=())))
    apis = offset_fetch.to_api(multi, 8)
    assert [a.groups[0].group_id for a in apis] == ["a", "b"] and apis[0].groups[0].topics is None
    got = [OffsetFetchGroupResult("a", ErrorCode.NONE, (PartitionOffset("t", 0, 7),)),
           OffsetFetchGroupResult("b", ErrorCode.NONE, ())]
    for v in _versions(ApiKey.OFFSET_FETCH):
        resp = offset_fetch.build(got if v >= 8 else got[:1], v)
        resp.encode(v)
        if v >= 8:
            assert resp.groups[0].topics[0].partitions[0].committed_offset == 7
        else:
            assert resp.topics[0].partitions[0].committed_offset == 7
