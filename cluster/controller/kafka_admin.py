"""Kafka admin requests as controller commands: what a proposer puts in the log, or why not.

Concern: turning one topic of a CreateTopics, CreatePartitions or (Incremental)AlterConfigs
request into the command proposed to group 0, against the state the proposer's `ControllerStm`
holds now (the replication factor a topic gets when the client leaves it to the cluster, the
placement of its partitions, the configs a change would leave), and the answers Kafka clients
expect for refusals. These checks are advisory, as the module docstring of `controller_stm`
says: the stm decides again when it applies. Also what a node tells Kafka clients of a
controller topic (`topic_info`). Must not know: Raft, actors, sockets, clocks, randomness (the
topic id is the caller's).
"""

from __future__ import annotations

import uuid

from redshank.cluster.controller.commands import AlterTopicConfigs, CreatePartitions, CreateTopic
from redshank.cluster.controller.controller_stm import ControllerStm
from redshank.cluster.controller.placement import (
    PlacementRefused,
    default_replication_factor,
    place,
    place_explicit,
)
from redshank.cluster.controller.topics_table import TopicMetadata
from redshank.cluster.kafka.handlers._alter import AlterOutcome
from redshank.cluster.kafka.handlers.create_partitions import Grow, GrowOutcome
from redshank.cluster.kafka.handlers.create_topics import MAX_PARTITIONS, CreateOutcome, TopicSpec
from redshank.cluster.kafka.topic_configs import ConfigChange, ConfigRefused, apply_change
from redshank.cluster.kafka.topic_table import TopicInfo
from redshank.cluster.raft.types import NodeId
from redshank.protocol.error_codes import ErrorCode

__all__ = ["INTERNAL_TOPICS", "alter_command", "create_command", "grow_command",
           "replication_factor", "topic_info"]

# Topics whose partition count and configs belong to the broker (the group and transaction
# coordinators').
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state"})


def replication_factor(asked: int, stm: ControllerStm) -> int:
    """The replication factor of a new topic: `asked`, or (-1) the cluster default over the
    active members."""
    return default_replication_factor(len(stm.members.active_cores())) if asked == -1 else asked


def create_command(spec: TopicSpec, asked_rf: int, stm: ControllerStm, topic_id: uuid.UUID
                   ) -> CreateTopic | CreateOutcome:
    """The `CreateTopic` for `spec` (placed by the controller, or over the brokers the client
    named in `spec.assignments`), or the refusal to answer."""
    if stm.topics.get(spec.name) is not None:
        return CreateOutcome(ErrorCode.TOPIC_ALREADY_EXISTS,
                             f"topic {spec.name!r} already exists", None, -1)
    active = stm.members.active_cores()
    existing = [a for _, a in stm.topics.assignments()]
    if spec.assignments is not None:
        placed = place_explicit(spec.assignments, active, existing)
    else:
        placed = place(spec.partitions, replication_factor(asked_rf, stm), active, existing)
    if isinstance(placed, PlacementRefused):
        return CreateOutcome(placed.error_code, placed.message, None, -1)
    rf = len(placed[0])
    return CreateTopic(spec.name, topic_id, len(placed), rf, spec.configs, placed)


def grow_command(grow: Grow, stm: ControllerStm) -> CreatePartitions | GrowOutcome:
    """The `CreatePartitions` for `grow` of a controller topic, or the refusal to answer (the
    same codes as the single-node path: `create_partitions.decide`)."""
    topic = stm.topics.get(grow.name)
    if topic is None:
        return GrowOutcome(grow.name, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                           f"topic {grow.name!r} does not exist")
    if grow.name in INTERNAL_TOPICS:
        return GrowOutcome(grow.name, ErrorCode.INVALID_REQUEST,
                           f"internal topic {grow.name!r} cannot be grown")
    if not topic.partitions < grow.count <= MAX_PARTITIONS:
        return GrowOutcome(grow.name, ErrorCode.INVALID_PARTITIONS,
                           f"topic {grow.name!r} has {topic.partitions} partitions: the count "
                           f"can only grow, to at most {MAX_PARTITIONS}; {grow.count} asked")
    more = grow.count - topic.partitions
    active = stm.members.active_cores()
    existing = [a for _, a in stm.topics.assignments()]
    if grow.assignments is not None:
        if len(grow.assignments) != more:
            return GrowOutcome(grow.name, ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                               f"{len(grow.assignments)} replica lists for {more} new partitions")
        if any(len(a) != topic.replication_factor for a in grow.assignments):
            return GrowOutcome(grow.name, ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                               f"every new partition of {grow.name!r} needs "
                               f"{topic.replication_factor} replicas (its replication factor)")
        placed = place_explicit(grow.assignments, active, existing)
    else:
        placed = place(more, topic.replication_factor, active, existing)
    if isinstance(placed, PlacementRefused):
        return GrowOutcome(grow.name, placed.error_code, placed.message)
    return CreatePartitions(grow.name, grow.count, placed)


def alter_command(change: ConfigChange, stm: ControllerStm
                  ) -> AlterTopicConfigs | AlterOutcome | None:
    """The `AlterTopicConfigs` for `change`, the refusal to answer, or None when the change
    would leave the configs as they are (answered NONE without a proposal)."""
    topic = stm.topics.get(change.topic)
    if topic is None:
        return AlterOutcome(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                            f"topic {change.topic!r} does not exist")
    if change.topic in INTERNAL_TOPICS:
        return AlterOutcome(ErrorCode.INVALID_REQUEST,
                            f"internal topic {change.topic!r} keeps its configs")
    after = apply_change(topic.configs, change)
    if isinstance(after, ConfigRefused):
        return AlterOutcome(after.error_code, after.message)
    if after == topic.configs:
        return None
    return AlterTopicConfigs(change.topic, change.ops, change.replace)


def topic_info(topic: TopicMetadata, node: NodeId) -> TopicInfo:
    """A controller topic as this node's request paths know topics: the cores of the replicas
    it hosts (core 0 for the others, which it does not serve), its configs."""
    here = topic.cores_on(node)
    return TopicInfo(topic.name, topic.topic_id,
                     tuple(int(here.get(p, 0)) for p in range(topic.partitions)),
                     topic.configs, replicated=True)
