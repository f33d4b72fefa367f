"""The replicas a node hosts, from the controller's tables: every partition with a replica on
the node, on its assigned core, with its voters and each voter's replica address (rpc port +
core); group ids are the same on every node, differ per partition and per topic id, and are
never 0 (the controller's group)."""

from __future__ import annotations

import uuid

from redshank.cluster.controller import (
    BootstrapCluster,
    ControllerStm,
    CreateTopic,
    DeleteTopic,
    NetAddress,
    RegisterNode,
    Replica,
)
from redshank.cluster.controller.replica_plan import group_id, node_replicas, replica_directory
from redshank.cluster.kafka.topic_table import CoreId
from redshank.cluster.raft.types import Index, NodeId

T1 = uuid.UUID(int=1)


def node(n: int) -> RegisterNode:
    return RegisterNode(NodeId(n), uuid.UUID(int=n), NetAddress(f"10.0.0.{n}", 33000 + 10 * n),
                        NetAddress(f"10.0.0.{n}", 9092), 2)


def rep(n: int, core: int) -> Replica:
    return Replica(NodeId(n), CoreId(core))


def stm_with_topic() -> ControllerStm:
    stm = ControllerStm()
    assert stm.apply(Index(1), BootstrapCluster(uuid.UUID(int=9), (node(1), node(2), node(3)))).ok
    assignments = ((rep(1, 0), rep(2, 1)), (rep(2, 0), rep(3, 1)))
    assert stm.apply(Index(2), CreateTopic("t", T1, 2, 2, (), assignments)).ok
    return stm


def test_a_node_hosts_its_assigned_replicas_with_routes_to_every_voter() -> None:
    stm = stm_with_topic()
    on2 = node_replicas(stm.topics, stm.members, NodeId(2))
    assert sorted((p.partition, p.core) for p in on2.values()) == [(0, 1), (1, 0)]
    p0 = on2[group_id(T1, 0)]
    assert p0.voters == frozenset({NodeId(1), NodeId(2)})
    assert p0.routes == ((NodeId(1), "10.0.0.1", 33010), (NodeId(2), "10.0.0.2", 33021))
    on1 = node_replicas(stm.topics, stm.members, NodeId(1))
    assert list(on1) == [group_id(T1, 0)]
    assert on1[group_id(T1, 0)].core == 0


def test_a_deleted_topic_leaves_no_replica() -> None:
    stm = stm_with_topic()
    assert stm.apply(Index(3), DeleteTopic("t", T1)).ok
    assert node_replicas(stm.topics, stm.members, NodeId(2)) == {}


def test_group_ids_are_stable_distinct_and_never_the_controllers() -> None:
    assert group_id(T1, 0) == group_id(uuid.UUID(int=1), 0)
    ids = {group_id(uuid.UUID(int=t), p) for t in range(50) for p in range(50)}
    assert len(ids) == 2500
    assert 0 not in ids and all(0 < g < 1 << 63 for g in ids)


def test_a_topic_created_again_gets_new_replica_directories() -> None:
    # Cluster seeds 3 and 37 (`redshank sim --cluster`): a node down while "t" was deleted and
    # created again opened the new topic's replica on the old one's files (same directory
    # name), serving the deleted topic's records in the new one.
    stm = stm_with_topic()
    before = node_replicas(stm.topics, stm.members, NodeId(2))
    assert stm.apply(Index(3), DeleteTopic("t", T1)).ok
    again = ((rep(1, 0), rep(2, 1)), (rep(2, 0), rep(3, 1)))
    assert stm.apply(Index(4), CreateTopic("t", uuid.UUID(int=2), 2, 2, (), again)).ok
    after = node_replicas(stm.topics, stm.members, NodeId(2))
    old = {(p.partition, p.directory) for p in before.values()}
    new = {(p.partition, p.directory) for p in after.values()}
    assert {p for p, _ in old} == {p for p, _ in new} == {0, 1}
    assert not {d for _, d in old} & {d for _, d in new}
    assert all(d.startswith(f"t-{p}-") for p, d in new)
    assert next(iter(after.values())).directory == replica_directory(
        "t", next(iter(after.values())).partition, uuid.UUID(int=2))
