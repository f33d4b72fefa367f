"""ControllerStm: every command's success and each of its refusals, decided against the applied
state in log order."""

from __future__ import annotations

import uuid

import pytest

from redshank.cluster.controller import (
    PRODUCER_ID_BLOCK,
    AllocateProducerIds,
    AlterTopicConfigs,
    Applied,
    Assignment,
    BootstrapCluster,
    Command,
    ControllerDecodeError,
    ControllerStm,
    CreatePartitions,
    CreateTopic,
    DecommissionNode,
    DeleteTopic,
    NetAddress,
    NodeState,
    RegisterNode,
    Replica,
    SetPreferredReplica,
    place,
)
from redshank.cluster.kafka.topic_configs import ConfigOp
from redshank.cluster.kafka.topic_table import CoreId, TopicPartition
from redshank.cluster.raft.types import Index, NodeId
from redshank.protocol.error_codes import ErrorCode

CLUSTER = uuid.UUID(int=0xC1)


def node(n: int, cores: int = 2, incarnation: int | None = None) -> RegisterNode:
    return RegisterNode(NodeId(n), uuid.UUID(int=incarnation if incarnation is not None else n),
                        NetAddress(f"10.0.0.{n}", 33145), NetAddress(f"10.0.0.{n}", 9092), cores)


def rep(n: int, core: int = 0) -> Replica:
    return Replica(NodeId(n), CoreId(core))


class Driver:
    """An stm and the next log index."""

    def __init__(self, nodes: int = 3) -> None:
        self.stm = ControllerStm()
        self._index = iter(range(1, 1 << 30))
        if nodes:
            assert self(BootstrapCluster(CLUSTER, tuple(node(i) for i in range(1, nodes + 1)))).ok

    def __call__(self, cmd: Command) -> Applied:
        return self.stm.apply(Index(next(self._index)), cmd)

    def create(self, name: str, partitions: int = 3, rf: int = 3,
               configs: tuple[tuple[str, str], ...] = ()) -> Applied:
        assignments = place(partitions, rf, self.stm.members.active_cores(),
                            (a for _tp, a in self.stm.topics.assignments()))
        assert isinstance(assignments, tuple)
        return self(CreateTopic(name, uuid.uuid5(CLUSTER, name), partitions, rf, configs,
                                assignments))


@pytest.fixture
def d() -> Driver:
    return Driver()


def refused(result: Applied, code: ErrorCode) -> bool:
    return result.error_code == code and bool(result.message)


# --- ordering and bootstrap -------------------------------------------------------------------


def test_indexes_must_increase_and_refusals_are_applied_too() -> None:
    d = Driver(nodes=0)
    assert refused(d.stm.apply(Index(5), DecommissionNode(NodeId(1))), ErrorCode.INVALID_REQUEST)
    assert d.stm.last_applied == 5
    with pytest.raises(ValueError, match="out of order"):
        d.stm.apply(Index(5), DecommissionNode(NodeId(1)))
    assert d.stm.apply(Index(9), BootstrapCluster(CLUSTER, (node(1),))).ok  # gaps are fine
    assert d.stm.last_applied == 9


def test_bootstrap_sets_cluster_and_founding_members() -> None:
    d = Driver(nodes=3)
    assert d.stm.cluster_uuid == CLUSTER
    assert [n.node_id for n in d.stm.members] == [1, 2, 3]
    assert d.stm.members.active_cores() == {1: 2, 2: 2, 3: 2}


def test_commands_before_bootstrap_are_refused() -> None:
    d = Driver(nodes=0)
    for cmd in (node(1), AllocateProducerIds(NodeId(1)), DeleteTopic("t")):
        assert refused(d(cmd), ErrorCode.INVALID_REQUEST)
    assert len(d.stm.members) == 0


@pytest.mark.parametrize(("cmd", "code"), [
    (BootstrapCluster(CLUSTER, ()), ErrorCode.INVALID_REQUEST),
    (BootstrapCluster(CLUSTER, (node(1), node(1, incarnation=9))),
     ErrorCode.DUPLICATE_BROKER_REGISTRATION),
    (BootstrapCluster(CLUSTER, (node(1), node(2, incarnation=1))),
     ErrorCode.DUPLICATE_BROKER_REGISTRATION),
    (BootstrapCluster(CLUSTER, (node(1, cores=0),)), ErrorCode.INVALID_REQUEST),
])
def test_bootstrap_refusals(cmd: BootstrapCluster, code: ErrorCode) -> None:
    d = Driver(nodes=0)
    assert refused(d(cmd), code)
    assert d.stm.cluster_uuid is None and len(d.stm.members) == 0


def test_second_bootstrap_is_refused(d: Driver) -> None:
    assert refused(d(BootstrapCluster(CLUSTER, (node(7),))), ErrorCode.INVALID_REQUEST)
    assert refused(d(BootstrapCluster(uuid.UUID(int=2), (node(7),))),
                   ErrorCode.INCONSISTENT_CLUSTER_ID)
    assert d.stm.members.get(NodeId(7)) is None


# --- members ----------------------------------------------------------------------------------


def test_register_new_node_and_restart_with_new_address_and_more_cores(d: Driver) -> None:
    assert d(node(4)).ok
    moved = RegisterNode(NodeId(4), uuid.UUID(int=4), NetAddress("h4", 1), NetAddress("h4", 2), 8)
    assert d(moved).ok
    info = d.stm.members.get(NodeId(4))
    assert info is not None and info.cores == 8 and info.rpc_addr == NetAddress("h4", 1)
    assert info.state == NodeState.ACTIVE


@pytest.mark.parametrize(("cmd", "code"), [
    (node(0), ErrorCode.INVALID_REQUEST),  # ids start at 1
    (node(4, cores=0), ErrorCode.INVALID_REQUEST),
    (RegisterNode(NodeId(4), uuid.UUID(int=4), NetAddress("", 1), NetAddress("h", 2), 1),
     ErrorCode.INVALID_REQUEST),
    (RegisterNode(NodeId(4), uuid.UUID(int=4), NetAddress("h", 1), NetAddress("h", 70000), 1),
     ErrorCode.INVALID_REQUEST),
    (node(2, incarnation=99), ErrorCode.DUPLICATE_BROKER_REGISTRATION),  # id taken by another
    (node(4, incarnation=2), ErrorCode.DUPLICATE_BROKER_REGISTRATION),  # incarnation is node 2
    (node(2, cores=1), ErrorCode.INVALID_REQUEST),  # cores never shrink
])
def test_register_refusals(d: Driver, cmd: RegisterNode, code: ErrorCode) -> None:
    before = d.stm.snapshot()
    assert refused(d(cmd), code)
    assert d.stm.snapshot()[14:] == before[14:]  # only last_applied moved (after version, crc)


def test_decommission(d: Driver) -> None:
    assert d(node(4)).ok
    assert d(DecommissionNode(NodeId(4))).ok
    info = d.stm.members.get(NodeId(4))
    assert info is not None and info.state == NodeState.DECOMMISSIONED
    assert NodeId(4) not in d.stm.members.active_cores()
    assert d(DecommissionNode(NodeId(4))).ok  # idempotent
    # Its id is not reused, not even by the same incarnation.
    assert refused(d(node(4)), ErrorCode.DUPLICATE_BROKER_REGISTRATION)
    assert refused(d(AllocateProducerIds(NodeId(4))), ErrorCode.BROKER_ID_NOT_REGISTERED)


def test_decommission_refusals() -> None:
    d = Driver(nodes=3)
    assert refused(d(DecommissionNode(NodeId(9))), ErrorCode.BROKER_ID_NOT_REGISTERED)
    assert d.create("t", rf=3).ok
    assert refused(d(DecommissionNode(NodeId(1))), ErrorCode.INVALID_REPLICATION_FACTOR)
    assert d(DeleteTopic("t")).ok
    assert d(DecommissionNode(NodeId(1))).ok
    assert d(DecommissionNode(NodeId(2))).ok
    assert refused(d(DecommissionNode(NodeId(3))), ErrorCode.INVALID_REQUEST)  # the last one


def test_producer_id_blocks_are_disjoint_in_log_order(d: Driver) -> None:
    blocks = [d(AllocateProducerIds(NodeId(n))).producer_ids for n in (1, 2, 1, 3)]
    assert blocks == [range(i * PRODUCER_ID_BLOCK, (i + 1) * PRODUCER_ID_BLOCK) for i in range(4)]
    assert d.stm.next_producer_id == 4 * PRODUCER_ID_BLOCK
    assert refused(d(AllocateProducerIds(NodeId(9))), ErrorCode.BROKER_ID_NOT_REGISTERED)
    assert d.stm.next_producer_id == 4 * PRODUCER_ID_BLOCK


# --- topics -----------------------------------------------------------------------------------


def test_create_topic(d: Driver) -> None:
    assert d.create("t", partitions=4, rf=2, configs=(("retention.ms", "1000"),
                                                      ("cleanup.policy", "compact"))).ok
    t = d.stm.topics.get("t")
    assert t is not None and t.partitions == 4 and t.replication_factor == 2
    assert t.topic_id == uuid.uuid5(CLUSTER, "t")
    assert d.stm.topics.by_id(t.topic_id) == t
    assert t.configs == (("cleanup.policy", "compact"), ("retention.ms", "1000"))  # sorted
    assert all(len(a) == 2 for a in t.assignments)
    assert d.stm.topics.replicas(TopicPartition("t", 3)) == t.assignments[3]
    assert d.stm.topics.replicas(TopicPartition("t", 4)) is None


T_ID = uuid.UUID(int=7)


def _create(name: str = "t", topic_id: uuid.UUID = T_ID, partitions: int = 2,
            rf: int = 2, configs: tuple[tuple[str, str], ...] = (),
            assignments: tuple[Assignment, ...] | None = None) -> CreateTopic:
    if assignments is None:
        assignments = ((rep(1), rep(2)), (rep(2, 1), rep(3)))
    return CreateTopic(name, topic_id, partitions, rf, configs, assignments)


@pytest.mark.parametrize(("cmd", "code"), [
    (_create(name="bad name"), ErrorCode.INVALID_TOPIC_EXCEPTION),
    (_create(name=""), ErrorCode.INVALID_TOPIC_EXCEPTION),
    (_create(name="taken"), ErrorCode.TOPIC_ALREADY_EXISTS),
    (_create(topic_id=uuid.uuid5(CLUSTER, "taken")), ErrorCode.INVALID_REQUEST),
    (_create(topic_id=uuid.UUID(int=0)), ErrorCode.INVALID_REQUEST),
    (_create(partitions=0, assignments=()), ErrorCode.INVALID_PARTITIONS),
    (_create(partitions=10_001), ErrorCode.INVALID_PARTITIONS),
    (_create(rf=0), ErrorCode.INVALID_REPLICATION_FACTOR),
    (_create(rf=4), ErrorCode.INVALID_REPLICATION_FACTOR),  # 3 active nodes
    (_create(configs=(("no.such", "1"),)), ErrorCode.INVALID_CONFIG),
    (_create(configs=(("retention.ms", "soon"),)), ErrorCode.INVALID_CONFIG),
    (_create(configs=(("retention.ms", "1"), ("retention.ms", "2"))), ErrorCode.INVALID_CONFIG),
    (_create(assignments=((rep(1), rep(2)),)), ErrorCode.INVALID_REPLICA_ASSIGNMENT),
    (_create(assignments=((rep(1), rep(2)), (rep(3),))), ErrorCode.INVALID_REPLICA_ASSIGNMENT),
    (_create(assignments=((rep(1), rep(1, 1)), (rep(2), rep(3)))),
     ErrorCode.INVALID_REPLICA_ASSIGNMENT),  # one node twice
    (_create(assignments=((rep(1), rep(9)), (rep(2), rep(3)))),
     ErrorCode.INVALID_REPLICA_ASSIGNMENT),  # no node 9
    (_create(assignments=((rep(1), rep(2, 2)), (rep(2), rep(3)))),
     ErrorCode.INVALID_REPLICA_ASSIGNMENT),  # node 2 has cores 0 and 1
])
def test_create_topic_refusals(d: Driver, cmd: CreateTopic, code: ErrorCode) -> None:
    assert d.create("taken").ok
    names = d.stm.topics.names()
    assert refused(d(cmd), code)
    assert d.stm.topics.names() == names


def test_create_refused_on_a_decommissioned_node_placed_before_it_left(d: Driver) -> None:
    assert d(node(4)).ok
    stale = _create(assignments=((rep(4), rep(1)), (rep(2), rep(3))))  # proposed while 4 lived
    assert d(DecommissionNode(NodeId(4))).ok
    assert refused(d(stale), ErrorCode.INVALID_REPLICA_ASSIGNMENT)


def test_racing_creates_of_one_name_are_decided_by_log_order(d: Driver) -> None:
    first = _create(topic_id=uuid.UUID(int=1))
    second = _create(topic_id=uuid.UUID(int=2))  # proposed concurrently, both saw no topic
    assert d(first).ok
    assert refused(d(second), ErrorCode.TOPIC_ALREADY_EXISTS)
    t = d.stm.topics.get("t")
    assert t is not None and t.topic_id == uuid.UUID(int=1)


def test_delete_topic(d: Driver) -> None:
    assert d.create("t").ok
    topic_id = uuid.uuid5(CLUSTER, "t")
    assert refused(d(DeleteTopic("t", uuid.UUID(int=5))), ErrorCode.UNKNOWN_TOPIC_ID)
    assert d(DeleteTopic("t", topic_id)).ok
    assert d.stm.topics.get("t") is None and d.stm.topics.by_id(topic_id) is None
    assert refused(d(DeleteTopic("t")), ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    # A delete meant for an older topic of the same name leaves the new one alone.
    assert d(_create(topic_id=uuid.UUID(int=77))).ok
    assert refused(d(DeleteTopic("t", topic_id)), ErrorCode.UNKNOWN_TOPIC_ID)
    assert d.stm.topics.get("t") is not None


def test_create_partitions(d: Driver) -> None:
    assert d.create("t", partitions=2, rf=2).ok
    before = d.stm.topics.get("t")
    assert before is not None
    new = ((rep(3), rep(1)), (rep(2, 1), rep(3, 1)))
    assert d(CreatePartitions("t", 4, new)).ok
    after = d.stm.topics.get("t")
    assert after is not None and after.assignments == before.assignments + new
    assert after.topic_id == before.topic_id


@pytest.mark.parametrize(("cmd", "code"), [
    (CreatePartitions("nope", 3, ((rep(1), rep(2)),)), ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
    (CreatePartitions("t", 2, ()), ErrorCode.INVALID_PARTITIONS),
    (CreatePartitions("t", 1, ()), ErrorCode.INVALID_PARTITIONS),
    (CreatePartitions("t", 10_001, ((rep(1), rep(2)),) * 9_999), ErrorCode.INVALID_PARTITIONS),
    (CreatePartitions("t", 4, ((rep(1), rep(2)),)), ErrorCode.INVALID_REPLICA_ASSIGNMENT),
    (CreatePartitions("t", 3, ((rep(1),),)), ErrorCode.INVALID_REPLICA_ASSIGNMENT),  # rf is 2
    (CreatePartitions("t", 3, ((rep(1), rep(1, 1)),)), ErrorCode.INVALID_REPLICA_ASSIGNMENT),
    (CreatePartitions("t", 3, ((rep(1), rep(5)),)), ErrorCode.INVALID_REPLICA_ASSIGNMENT),
])
def test_create_partitions_refusals(d: Driver, cmd: CreatePartitions, code: ErrorCode) -> None:
    assert d.create("t", partitions=2, rf=2).ok
    before = d.stm.topics.get("t")
    assert refused(d(cmd), code)
    assert d.stm.topics.get("t") == before


def test_racing_grows_are_decided_by_log_order(d: Driver) -> None:
    assert d.create("t", partitions=2, rf=1).ok
    a = CreatePartitions("t", 3, ((rep(1),),))
    b = CreatePartitions("t", 3, ((rep(2),),))  # both proposers saw 2 partitions
    assert d(a).ok
    assert refused(d(b), ErrorCode.INVALID_PARTITIONS)


def test_alter_configs_set_delete_append_subtract(d: Driver) -> None:
    assert d.create("t", configs=(("retention.ms", "5"),)).ok
    assert d(AlterTopicConfigs.of("t", set=(("segment.ms", "60000"),),
                                  delete=("retention.ms",))).ok
    t = d.stm.topics.get("t")
    assert t is not None and t.configs == (("segment.ms", "60000"),)
    # Two appends proposed concurrently both land: each applies to the state the log built.
    assert d(AlterTopicConfigs("t", ((ConfigOp.APPEND, "cleanup.policy", "compact"),))).ok
    assert d(AlterTopicConfigs("t", ((ConfigOp.SUBTRACT, "cleanup.policy", "delete"),))).ok
    t = d.stm.topics.get("t")
    assert t is not None and dict(t.configs)["cleanup.policy"] == "compact"
    assert d(AlterTopicConfigs("t", ((ConfigOp.SET, "retention.ms", "9"),), replace=True)).ok
    t = d.stm.topics.get("t")
    assert t is not None and t.configs == (("retention.ms", "9"),)


@pytest.mark.parametrize(("cmd", "code"), [
    (AlterTopicConfigs.of("nope", set=(("retention.ms", "1"),)),
     ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
    (AlterTopicConfigs.of("t", set=(("no.such", "1"),)), ErrorCode.INVALID_CONFIG),
    (AlterTopicConfigs.of("t", set=(("segment.bytes", "1"),)), ErrorCode.INVALID_CONFIG),
    (AlterTopicConfigs("t", ((ConfigOp.APPEND, "retention.ms", "1"),)), ErrorCode.INVALID_CONFIG),
    (AlterTopicConfigs("t", ((ConfigOp.SET, "retention.ms", None),)), ErrorCode.INVALID_REQUEST),
    (AlterTopicConfigs("t", ((ConfigOp.DELETE, "retention.ms", None),), replace=True),
     ErrorCode.INVALID_REQUEST),
])
def test_alter_configs_refusals(d: Driver, cmd: AlterTopicConfigs, code: ErrorCode) -> None:
    assert d.create("t", configs=(("retention.ms", "5"),)).ok
    before = d.stm.topics.get("t")
    assert refused(d(cmd), code)
    assert d.stm.topics.get("t") == before


def test_set_preferred_replica(d: Driver) -> None:
    assert d(_create(assignments=((rep(1), rep(2), ), (rep(2, 1), rep(3))))).ok
    assert d(SetPreferredReplica("t", 0, NodeId(2))).ok
    assert d.stm.topics.replicas(TopicPartition("t", 0)) == (rep(2), rep(1))
    assert d(SetPreferredReplica("t", 0, NodeId(2))).ok  # already first
    assert d.stm.topics.replicas(TopicPartition("t", 0)) == (rep(2), rep(1))
    assert d.stm.topics.replicas(TopicPartition("t", 1)) == (rep(2, 1), rep(3))
    assert refused(d(SetPreferredReplica("t", 2, NodeId(1))),
                   ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    assert refused(d(SetPreferredReplica("x", 0, NodeId(1))),
                   ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    assert refused(d(SetPreferredReplica("t", 1, NodeId(1))),
                   ErrorCode.INVALID_REPLICA_ASSIGNMENT)


def test_node_shard_table_view(d: Driver) -> None:
    assert d(_create(assignments=((rep(1), rep(2)), (rep(2, 1), rep(3))))).ok
    t = d.stm.topics.get("t")
    assert t is not None
    assert t.cores_on(NodeId(2)) == {0: 0, 1: 1}
    assert t.cores_on(NodeId(1)) == {0: 0}
    assert list(d.stm.topics.assignments()) == [(TopicPartition("t", 0), (rep(1), rep(2))),
                                                (TopicPartition("t", 1), (rep(2, 1), rep(3)))]


def test_restore_of_bad_bytes_leaves_state(d: Driver) -> None:
    assert d.create("t").ok
    before = d.stm.snapshot()
    with pytest.raises(ControllerDecodeError):
        d.stm.restore(before[:-1])
    assert d.stm.snapshot() == before
