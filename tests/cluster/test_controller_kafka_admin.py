"""kafka_admin: Kafka admin requests become controller commands, or refusals, against the stm;
the commands it proposes are accepted when applied; the cluster's default replication factor;
explicit placements (`place_explicit`); CreateTopics' checks of explicit assignments."""

from __future__ import annotations

import uuid

import pytest

from redshank.cluster.controller import (
    AlterTopicConfigs,
    Applied,
    BootstrapCluster,
    Command,
    ControllerStm,
    CreatePartitions,
    CreateTopic,
    NetAddress,
    PlacementRefused,
    RegisterNode,
    Replica,
    default_replication_factor,
    place_explicit,
)
from redshank.cluster.controller.kafka_admin import (
    alter_command,
    create_command,
    grow_command,
    replication_factor,
    topic_info,
)
from redshank.cluster.kafka.handlers import create_topics
from redshank.cluster.kafka.handlers._alter import AlterOutcome
from redshank.cluster.kafka.handlers.create_partitions import Grow, GrowOutcome
from redshank.cluster.kafka.handlers.create_topics import CreateOutcome, TopicSpec
from redshank.cluster.kafka.topic_configs import ConfigChange, ConfigOp
from redshank.cluster.kafka.topic_table import CoreId, TopicInfo
from redshank.cluster.raft.types import Index, NodeId
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages import create_topics as wire

ID = uuid.UUID(int=0xA1)


class Driver:
    """An stm bootstrapped with `nodes` nodes of two cores, and the next log index."""

    def __init__(self, nodes: int = 3) -> None:
        self.stm = ControllerStm()
        self._index = iter(range(1, 1 << 30))
        assert self(BootstrapCluster(uuid.UUID(int=0xC1), tuple(
            RegisterNode(NodeId(n), uuid.UUID(int=n), NetAddress("10.0.0.1", 33145),
                         NetAddress("10.0.0.1", 9092), 2) for n in range(1, nodes + 1)))).ok

    def __call__(self, cmd: Command) -> Applied:
        return self.stm.apply(Index(next(self._index)), cmd)


@pytest.mark.parametrize(("nodes", "rf"), [(1, 1), (2, 1), (3, 3), (5, 3)])
def test_default_replication_factor(nodes: int, rf: int) -> None:
    assert default_replication_factor(nodes) == rf
    assert replication_factor(-1, Driver(nodes).stm) == rf
    assert replication_factor(2, Driver(nodes).stm) == 2


def test_create_with_the_default_rf_is_applied() -> None:
    d = Driver(3)
    cmd = create_command(TopicSpec("t", 4, ()), -1, d.stm, ID)
    assert isinstance(cmd, CreateTopic)
    assert (cmd.partitions, cmd.replication_factor) == (4, 3)
    assert all(len({r.node_id for r in a}) == 3 for a in cmd.assignments)
    assert d(cmd).ok
    again = create_command(TopicSpec("t", 4, ()), -1, d.stm, ID)
    assert isinstance(again, CreateOutcome)
    assert again.error_code == ErrorCode.TOPIC_ALREADY_EXISTS


def test_create_with_explicit_assignments_keeps_their_order() -> None:
    d = Driver(3)
    spec = TopicSpec("t", 2, (), ((2, 3), (3, 1)))
    cmd = create_command(spec, -1, d.stm, ID)
    assert isinstance(cmd, CreateTopic)
    assert cmd.replication_factor == 2
    assert [tuple(int(r.node_id) for r in a) for a in cmd.assignments] == [(2, 3), (3, 1)]
    assert d(cmd).ok
    info = topic_info(d.stm.topics.get("t"), NodeId(1))  # type: ignore[arg-type]
    assert info.replicated and info.partitions == 2


@pytest.mark.parametrize("lists", [((1, 9),), ((2, 2),), ((1, 2), (3,)), ((),)])
def test_bad_explicit_assignments_are_refused(lists: tuple[tuple[int, ...], ...]) -> None:
    d = Driver(3)
    out = create_command(TopicSpec("t", len(lists), (), lists), -1, d.stm, ID)
    assert isinstance(out, CreateOutcome)
    assert out.error_code == ErrorCode.INVALID_REPLICA_ASSIGNMENT


def test_rf_larger_than_the_cluster_is_refused() -> None:
    out = create_command(TopicSpec("t", 1, ()), 4, Driver(3).stm, ID)
    assert isinstance(out, CreateOutcome)
    assert out.error_code == ErrorCode.INVALID_REPLICATION_FACTOR


def test_place_explicit_balances_cores() -> None:
    nodes = {NodeId(1): 2, NodeId(2): 2}
    placed = place_explicit([(1, 2), (1, 2), (2, 1), (2, 1)], nodes)
    assert not isinstance(placed, PlacementRefused)
    leaders = [a[0] for a in placed]
    # Each node leads two partitions, one on each of its cores.
    assert sorted(leaders) == [Replica(NodeId(1), CoreId(0)), Replica(NodeId(1), CoreId(1)),
                               Replica(NodeId(2), CoreId(0)), Replica(NodeId(2), CoreId(1))]


def test_grow_places_and_applies_new_partitions() -> None:
    d = Driver(3)
    cmd = create_command(TopicSpec("t", 2, ()), 3, d.stm, ID)
    assert isinstance(cmd, CreateTopic) and d(cmd).ok
    grow = grow_command(Grow("t", 4), d.stm)
    assert isinstance(grow, CreatePartitions)
    assert len(grow.assignments) == 2 and all(len(a) == 3 for a in grow.assignments)
    assert d(grow).ok
    assert d.stm.topics.get("t").partitions == 4  # type: ignore[union-attr]
    named = grow_command(Grow("t", 5, ((3, 1, 2),)), d.stm)
    assert isinstance(named, CreatePartitions)
    assert [int(r.node_id) for r in named.assignments[0]] == [3, 1, 2]


@pytest.mark.parametrize(("grow", "code"), [
    (Grow("nope", 3), ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
    (Grow("t", 2), ErrorCode.INVALID_PARTITIONS),
    (Grow("t", 3, ((1, 2),)), ErrorCode.INVALID_REPLICA_ASSIGNMENT),  # rf is 3
    (Grow("t", 4, ((1, 2, 3),)), ErrorCode.INVALID_REPLICA_ASSIGNMENT),  # one list, two new
    (Grow("t", 3, ((1, 2, 9),)), ErrorCode.INVALID_REPLICA_ASSIGNMENT),
])
def test_grow_refusals(grow: Grow, code: ErrorCode) -> None:
    d = Driver(3)
    cmd = create_command(TopicSpec("t", 2, ()), 3, d.stm, ID)
    assert isinstance(cmd, CreateTopic) and d(cmd).ok
    out = grow_command(grow, d.stm)
    assert isinstance(out, GrowOutcome) and out.error_code == code


def test_alter_configs() -> None:
    d = Driver(3)
    cmd = create_command(TopicSpec("t", 1, ()), 3, d.stm, ID)
    assert isinstance(cmd, CreateTopic) and d(cmd).ok
    change = ConfigChange("t", ((ConfigOp.SET, "retention.ms", "1000"),), False)
    alter = alter_command(change, d.stm)
    assert isinstance(alter, AlterTopicConfigs)
    assert d(alter).ok
    assert d.stm.topics.get("t").configs == (("retention.ms", "1000"),)  # type: ignore[union-attr]
    assert alter_command(change, d.stm) is None  # nothing would change: no proposal
    bad = alter_command(ConfigChange("t", ((ConfigOp.SET, "retention.ms", "x"),), False), d.stm)
    assert isinstance(bad, AlterOutcome) and bad.error_code == ErrorCode.INVALID_CONFIG
    gone = alter_command(ConfigChange("nope", (), False), d.stm)
    assert isinstance(gone, AlterOutcome)
    assert gone.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def test_internal_topic_cannot_be_grown_or_reconfigured() -> None:
    d = Driver(3)
    cmd = create_command(TopicSpec("__consumer_offsets", 2, ()), -1, d.stm, ID)
    assert isinstance(cmd, CreateTopic) and d(cmd).ok
    grow = grow_command(Grow("__consumer_offsets", 4), d.stm)
    assert isinstance(grow, GrowOutcome) and grow.error_code == ErrorCode.INVALID_REQUEST
    alter = alter_command(ConfigChange("__consumer_offsets",
                                       ((ConfigOp.SET, "retention.ms", "1"),), False), d.stm)
    assert isinstance(alter, AlterOutcome) and alter.error_code == ErrorCode.INVALID_REQUEST


def _request(topic: wire.CreatableTopic) -> wire.CreateTopicsRequest:
    return wire.CreateTopicsRequest(topics=(topic,))


def test_create_topics_plan_passes_assignments_in_partition_order() -> None:
    ra = wire.CreatableReplicaAssignment
    specs, errors = create_topics.plan(_request(wire.CreatableTopic(
        "t", -1, -1, (ra(1, (3, 1)), ra(0, (1, 2))))), 1, replicated=True)
    assert not errors
    assert specs == [TopicSpec("t", 2, (), ((1, 2), (3, 1)))]


@pytest.mark.parametrize(("topic", "code"), [
    (wire.CreatableTopic("t", 2, -1, (wire.CreatableReplicaAssignment(0, (1,)),)),
     ErrorCode.INVALID_REQUEST),
    (wire.CreatableTopic("t", -1, 1, (wire.CreatableReplicaAssignment(0, (1,)),)),
     ErrorCode.INVALID_REQUEST),
    (wire.CreatableTopic("t", -1, -1, (wire.CreatableReplicaAssignment(1, (1,)),)),
     ErrorCode.INVALID_REPLICA_ASSIGNMENT),
])
def test_create_topics_plan_refuses_bad_assignment_shapes(topic: wire.CreatableTopic,
                                                         code: ErrorCode) -> None:
    specs, errors = create_topics.plan(_request(topic), 1, replicated=True)
    assert not specs and errors["t"][0] == code


def test_create_topics_response_reports_the_replication_factor() -> None:
    req = _request(wire.CreatableTopic("t", 2, -1))
    info = TopicInfo("t", ID, (0, 0), (), replicated=True)
    resp = create_topics.build(req, {}, {"t": CreateOutcome(ErrorCode.NONE, None, info, 3)})
    (t,) = resp.topics
    assert (t.num_partitions, t.replication_factor) == (2, 3)
