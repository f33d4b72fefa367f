"""The controller state machine: committed commands of Raft group 0, applied in log order.

Concern: deciding each command against the state the log has built so far and applying it to the
tables (members, topics and assignments, the producer-id high-water mark), deterministically:
every replica applying the same log reaches the same state, and two proposals that raced are
decided by their order in the log, not by what their proposers saw (a proposer's checks are
advisory; these are the ones that count). Refusals are values carrying Kafka error codes.
Must not know: Raft, how entries are stored or decoded, sockets, clocks, randomness (topic ids
and placements come inside the commands).
"""

from __future__ import annotations

import dataclasses
import uuid

from redshank.cluster.controller.commands import (
    PRODUCER_ID_BLOCK,
    AllocateProducerIds,
    AlterTopicConfigs,
    BootstrapCluster,
    Command,
    CreatePartitions,
    CreateTopic,
    DecommissionNode,
    DeleteTopic,
    RegisterNode,
    SetPreferredReplica,
)
from redshank.cluster.controller.members_table import MembersTable, NodeInfo, NodeState
from redshank.cluster.controller.placement import check_assignments
from redshank.cluster.controller.snapshot import (
    ControllerSnapshot,
    decode_snapshot,
    encode_snapshot,
)
from redshank.cluster.controller.topics_table import TopicMetadata, TopicsTable
from redshank.cluster.kafka.handlers.create_topics import MAX_PARTITIONS
from redshank.cluster.kafka.topic_configs import ConfigChange, ConfigOp, ConfigRefused, apply_change
from redshank.cluster.kafka.topic_table import validate_topic_name
from redshank.cluster.raft.types import Index
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.fast_dataclass import dataclass

__all__ = ["Applied", "ControllerStm"]

_NIL_UUID = uuid.UUID(int=0)
_PORT_MAX = 0xFFFF


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying one command did: NONE, or the refusal's Kafka error code and why."""

    error_code: ErrorCode = ErrorCode.NONE
    message: str | None = None
    producer_ids: range | None = None  # AllocateProducerIds: the block handed out

    @property
    def ok(self) -> bool:
        return self.error_code == ErrorCode.NONE


def _refuse(code: ErrorCode, message: str) -> Applied:
    return Applied(code, message)


_OK = Applied()


class ControllerStm:
    """The controller's applied state on one node. Lives on the core that hosts the node's
    replica of Raft group 0, created (empty) by that host, which feeds it every committed
    command in log order (`apply`) or a snapshot (`restore`); ends with its host (a restarted
    node restores its last snapshot and replays the log after it). The tables are read-only to
    everyone else."""

    def __init__(self) -> None:
        self.last_applied = Index(0)
        self.cluster_uuid: uuid.UUID | None = None
        self.members = MembersTable()
        self.topics = TopicsTable()
        # The first producer id no block has taken yet (the high-water mark).
        self.next_producer_id = 0

    def apply(self, index: Index, command: Command) -> Applied:
        """Apply the committed `command` at log `index` (above every index applied before; the
        host skips entries a restored snapshot already holds)."""
        if index <= self.last_applied:
            raise ValueError(f"index {index} applied out of order (last {self.last_applied})")
        self.last_applied = index
        if isinstance(command, BootstrapCluster):
            return self._bootstrap(command)
        if self.cluster_uuid is None:
            return _refuse(ErrorCode.INVALID_REQUEST, "the cluster is not bootstrapped yet")
        if isinstance(command, RegisterNode):
            return self._register(command)
        if isinstance(command, DecommissionNode):
            return self._decommission(command)
        if isinstance(command, CreateTopic):
            return self._create_topic(command)
        if isinstance(command, DeleteTopic):
            return self._delete_topic(command)
        if isinstance(command, CreatePartitions):
            return self._create_partitions(command)
        if isinstance(command, AlterTopicConfigs):
            return self._alter_configs(command)
        if isinstance(command, AllocateProducerIds):
            return self._allocate_producer_ids(command)
        return self._set_preferred_replica(command)

    # --- members ---------------------------------------------------------------------------

    def _bootstrap(self, c: BootstrapCluster) -> Applied:
        if self.cluster_uuid is not None:
            if c.cluster_uuid != self.cluster_uuid:
                return _refuse(ErrorCode.INCONSISTENT_CLUSTER_ID,
                               f"cluster {self.cluster_uuid} cannot become {c.cluster_uuid}")
            return _refuse(ErrorCode.INVALID_REQUEST, "the cluster is already bootstrapped")
        if not c.nodes:
            return _refuse(ErrorCode.INVALID_REQUEST, "a cluster starts with at least one node")
        if (len({n.node_id for n in c.nodes}) != len(c.nodes)
                or len({n.incarnation for n in c.nodes}) != len(c.nodes)):
            return _refuse(ErrorCode.DUPLICATE_BROKER_REGISTRATION,
                           "a node id or incarnation is named more than once")
        for node in c.nodes:
            why = _invalid_node(node)
            if why is not None:
                return _refuse(ErrorCode.INVALID_REQUEST, why)
        self.cluster_uuid = c.cluster_uuid
        for node in c.nodes:
            self.members.put(_node_info(node))
        return _OK

    def _register(self, c: RegisterNode) -> Applied:
        why = _invalid_node(c)
        if why is not None:
            return _refuse(ErrorCode.INVALID_REQUEST, why)
        known = self.members.get(c.node_id)
        if known is None:
            other = self.members.by_incarnation(c.incarnation)
            if other is not None:
                return _refuse(ErrorCode.DUPLICATE_BROKER_REGISTRATION,
                               f"incarnation {c.incarnation} is node {other.node_id}")
            self.members.put(_node_info(c))
            return _OK
        if known.incarnation != c.incarnation:
            return _refuse(ErrorCode.DUPLICATE_BROKER_REGISTRATION,
                           f"node {c.node_id} is registered by incarnation {known.incarnation}")
        if not known.active:
            return _refuse(ErrorCode.DUPLICATE_BROKER_REGISTRATION,
                           f"node {c.node_id} is decommissioned; join under a new id")
        if c.cores < known.cores:
            return _refuse(ErrorCode.INVALID_REQUEST,
                           f"node {c.node_id} had {known.cores} cores; replicas live on them, "
                           f"so it cannot restart with {c.cores}")
        self.members.put(_node_info(c))
        return _OK

    def _decommission(self, c: DecommissionNode) -> Applied:
        known = self.members.get(c.node_id)
        if known is None:
            return _refuse(ErrorCode.BROKER_ID_NOT_REGISTERED, f"no node {c.node_id}")
        if not known.active:
            return _OK
        remaining = len(self.members.active_cores()) - 1
        if remaining == 0:
            return _refuse(ErrorCode.INVALID_REQUEST, f"node {c.node_id} is the last active one")
        widest = max(self.topics, key=lambda t: t.replication_factor, default=None)
        if widest is not None and widest.replication_factor > remaining:
            return _refuse(ErrorCode.INVALID_REPLICATION_FACTOR,
                           f"topic {widest.name!r} has {widest.replication_factor} replicas; "
                           f"{remaining} nodes would remain")
        self.members.put(dataclasses.replace(known, state=NodeState.DECOMMISSIONED))
        return _OK

    def _allocate_producer_ids(self, c: AllocateProducerIds) -> Applied:
        known = self.members.get(c.node_id)
        if known is None or not known.active:
            return _refuse(ErrorCode.BROKER_ID_NOT_REGISTERED,
                           f"node {c.node_id} is not an active member")
        first = self.next_producer_id
        self.next_producer_id += PRODUCER_ID_BLOCK
        return Applied(producer_ids=range(first, self.next_producer_id))

    # --- topics ----------------------------------------------------------------------------

    def _create_topic(self, c: CreateTopic) -> Applied:
        why = validate_topic_name(c.name)
        if why is not None:
            return _refuse(ErrorCode.INVALID_TOPIC_EXCEPTION, why)
        if self.topics.get(c.name) is not None:
            return _refuse(ErrorCode.TOPIC_ALREADY_EXISTS, f"topic {c.name!r} already exists")
        if c.topic_id == _NIL_UUID or self.topics.by_id(c.topic_id) is not None:
            return _refuse(ErrorCode.INVALID_REQUEST, f"topic id {c.topic_id} is taken")
        if not 1 <= c.partitions <= MAX_PARTITIONS:
            return _refuse(ErrorCode.INVALID_PARTITIONS,
                           f"{c.partitions} partitions: from 1 to {MAX_PARTITIONS}")
        nodes = self.members.active_cores()
        if not 1 <= c.replication_factor <= len(nodes):
            return _refuse(ErrorCode.INVALID_REPLICATION_FACTOR,
                           f"replication factor {c.replication_factor} with {len(nodes)} "
                           "active nodes")
        configs = _initial_configs(c)
        if isinstance(configs, ConfigRefused):
            return _refuse(ErrorCode(configs.error_code), configs.message)
        if len(c.assignments) != c.partitions:
            return _refuse(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                           f"{len(c.assignments)} assignments for {c.partitions} partitions")
        refused = check_assignments(c.assignments, c.replication_factor, nodes)
        if refused is not None:
            return _refuse(refused.error_code, refused.message)
        self.topics.put(TopicMetadata(c.name, c.topic_id, c.replication_factor, configs,
                                      c.assignments))
        return _OK

    def _delete_topic(self, c: DeleteTopic) -> Applied:
        topic = self.topics.get(c.name)
        if topic is None:
            return _refuse(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"no topic {c.name!r}")
        if c.topic_id is not None and c.topic_id != topic.topic_id:
            return _refuse(ErrorCode.UNKNOWN_TOPIC_ID,
                           f"topic {c.name!r} is {topic.topic_id}, not {c.topic_id}")
        self.topics.remove(c.name)
        return _OK

    def _create_partitions(self, c: CreatePartitions) -> Applied:
        topic = self.topics.get(c.name)
        if topic is None:
            return _refuse(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"no topic {c.name!r}")
        if not topic.partitions < c.new_total <= MAX_PARTITIONS:
            return _refuse(ErrorCode.INVALID_PARTITIONS,
                           f"topic {c.name!r} has {topic.partitions} partitions: the count can "
                           f"only grow, to at most {MAX_PARTITIONS}; {c.new_total} asked")
        if len(c.assignments) != c.new_total - topic.partitions:
            return _refuse(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                           f"{len(c.assignments)} assignments for "
                           f"{c.new_total - topic.partitions} new partitions")
        refused = check_assignments(c.assignments, topic.replication_factor,
                                    self.members.active_cores())
        if refused is not None:
            return _refuse(refused.error_code, refused.message)
        self.topics.put(dataclasses.replace(topic,
                                            assignments=topic.assignments + c.assignments))
        return _OK

    def _alter_configs(self, c: AlterTopicConfigs) -> Applied:
        topic = self.topics.get(c.name)
        if topic is None:
            return _refuse(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"no topic {c.name!r}")
        if c.replace and any(op != ConfigOp.SET for op, _k, _v in c.ops):
            return _refuse(ErrorCode.INVALID_REQUEST, "a replacing alter only sets keys")
        after = apply_change(topic.configs, ConfigChange(c.name, c.ops, c.replace))
        if isinstance(after, ConfigRefused):
            return _refuse(ErrorCode(after.error_code), after.message)
        self.topics.put(dataclasses.replace(topic, configs=after))
        return _OK

    def _set_preferred_replica(self, c: SetPreferredReplica) -> Applied:
        topic = self.topics.get(c.topic)
        if topic is None or not 0 <= c.partition < topic.partitions:
            return _refuse(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                           f"no partition {c.topic}/{c.partition}")
        replicas = topic.assignments[c.partition]
        first = [r for r in replicas if r.node_id == c.node_id]
        if not first:
            return _refuse(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                           f"node {c.node_id} has no replica of {c.topic}/{c.partition}")
        reordered = tuple(first + [r for r in replicas if r.node_id != c.node_id])
        assignments = list(topic.assignments)
        assignments[c.partition] = reordered
        self.topics.put(dataclasses.replace(topic, assignments=tuple(assignments)))
        return _OK

    # --- snapshot --------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """The applied state up to `last_applied`, as `snapshot.py` lays it out."""
        return encode_snapshot(ControllerSnapshot(
            self.last_applied, self.cluster_uuid, self.next_producer_id,
            tuple(self.members), tuple(self.topics)))

    def restore(self, raw: bytes) -> None:
        """Replace the whole state with a snapshot's (a `ControllerDecodeError` leaves the state
        as it was); apply continues after its `last_applied`."""
        s = decode_snapshot(raw)
        members = MembersTable()
        for node in s.nodes:
            members.put(node)
        topics = TopicsTable()
        for topic in s.topics:
            topics.put(topic)
        self.last_applied = s.last_applied
        self.cluster_uuid = s.cluster_uuid
        self.next_producer_id = s.next_producer_id
        self.members = members
        self.topics = topics


def _invalid_node(c: RegisterNode) -> str | None:
    if c.node_id < 1:
        return f"node id {c.node_id}: ids start at 1"
    if c.cores < 1:
        return f"node {c.node_id} has {c.cores} cores"
    for addr in (c.rpc_addr, c.kafka_addr):
        if not addr.host or not 0 < addr.port <= _PORT_MAX:
            return f"node {c.node_id} address {addr} is not a host and port"
    return None


def _node_info(c: RegisterNode) -> NodeInfo:
    return NodeInfo(c.node_id, c.incarnation, c.rpc_addr, c.kafka_addr, c.cores)


def _initial_configs(c: CreateTopic) -> tuple[tuple[str, str], ...] | ConfigRefused:
    """A new topic's configs, validated as an AlterConfigs that replaces an empty set (one set
    of rules: topic_configs); a key named twice is refused as CreateTopics does."""
    keys = [k for k, _v in c.configs]
    if len(set(keys)) != len(keys):
        return ConfigRefused(ErrorCode.INVALID_CONFIG, "a topic config is named more than once")
    ops = tuple((ConfigOp.SET, k, v) for k, v in c.configs)
    return apply_change((), ConfigChange(c.name, ops, replace=True))
