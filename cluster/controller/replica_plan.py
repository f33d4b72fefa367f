"""Which partition replicas a node must host, derived from the controller's tables.

Concern: a pure function of the topics and members tables and a node id: for every partition
with a replica on that node, the core it is assigned to there, its Raft group id, its voters and
where each voter's replica listens (the RPC address of its node, plus its core: `rpc_addr.port +
core`). The controller backend diffs two such plans to open and close replicas
(`replica_changes`; the simulator's cluster seeds call the same two functions).

Group ids. A partition's Raft group id is the first 63 bits of
blake2b-64(topic_id bytes || partition as u32 big-endian), with 0 excluded (group 0 is the
controller): every node computes the same id from the replicated state alone, with no counter to
replicate, and a recreated topic (new id) gets new groups, so stale traffic of the old one can
never reach it. Must not know: actors, sockets, logs, how replicas are opened.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Mapping

from redshank.cluster.controller.members_table import MembersTable
from redshank.cluster.controller.topics_table import TopicsTable
from redshank.cluster.kafka.topic_table import CoreId
from redshank.cluster.raft.heartbeat_manager import GroupId
from redshank.cluster.raft.types import NodeId
from redshank.protocol.fast_dataclass import dataclass

__all__ = ["ReplicaPlan", "group_id", "is_replica_directory", "node_replicas", "replica_changes",
           "replica_directory"]

_GROUP_MASK = (1 << 63) - 1
_REPLICA_DIR = re.compile(r"-\d+-[0-9a-f]{16}$")


def group_id(topic_id: uuid.UUID, partition: int) -> GroupId:
    """The Raft group id of a partition (module docstring)."""
    digest = hashlib.blake2b(topic_id.bytes + partition.to_bytes(4, "big"), digest_size=8)
    return GroupId(int.from_bytes(digest.digest(), "big") & _GROUP_MASK or 1)


def replica_directory(topic: str, partition: int, topic_id: uuid.UUID) -> str:
    """The name of a partition replica's directory (under the node's `kafka/`):
    `<topic>-<partition>-<group id, 16 hex digits>`. The group id (so the topic id) is in the
    name, as Redpanda puts the partition's revision in its: a replica of a topic created again
    under the same name never opens what a replica of the deleted one left on this node (its
    `Drop` missed while the node was down, or the removal undone by a power loss: a removed
    directory is not fsynced). Stale directories are left, not reused."""
    return f"{topic}-{partition}-{int(group_id(topic_id, partition)):016x}"


def is_replica_directory(name: str) -> bool:
    """`name` (under a node's `kafka/`) is a replica's directory as `replica_directory` names
    them (a single-node partition's is `<topic>-<partition>`)."""
    return _REPLICA_DIR.search(name) is not None


@dataclass(frozen=True, slots=True)
class ReplicaPlan:
    """One replica a node hosts: on `core`, in group `group` with `voters`; `routes` gives each
    voter's replica RPC address (host, port), this node's own included; `preferred` is the
    assignment's first replica's node, where leadership goes back to."""

    topic: str
    partition: int
    topic_id: uuid.UUID
    configs: tuple[tuple[str, str], ...]
    core: CoreId
    group: GroupId
    voters: frozenset[NodeId]
    routes: tuple[tuple[NodeId, str, int], ...]
    preferred: NodeId

    @property
    def directory(self) -> str:
        """Its directory's name under the node's `kafka/` (`replica_directory`)."""
        return replica_directory(self.topic, self.partition, self.topic_id)


def node_replicas(topics: TopicsTable, members: MembersTable, node: NodeId
                  ) -> dict[GroupId, ReplicaPlan]:
    """Every replica `node` hosts, by group. A voter whose node is not in the members table has
    no route (its messages are dropped until it registers)."""
    out: dict[GroupId, ReplicaPlan] = {}
    for topic in topics:
        for p, assignment in enumerate(topic.assignments):
            mine = [r for r in assignment if r.node_id == node]
            if not mine:
                continue
            routes = []
            for r in assignment:
                info = members.get(r.node_id)
                if info is not None:
                    routes.append((r.node_id, info.rpc_addr.host, info.rpc_addr.port + r.core))
            group = group_id(topic.topic_id, p)
            out[group] = ReplicaPlan(topic.name, p, topic.topic_id, topic.configs, mine[0].core,
                                     group, frozenset(r.node_id for r in assignment),
                                     tuple(routes), assignment[0].node_id)
    return out


def replica_changes(hosted: Mapping[GroupId, ReplicaPlan], want: Mapping[GroupId, ReplicaPlan]
                    ) -> tuple[list[ReplicaPlan], list[ReplicaPlan]]:
    """What reconciling `hosted` (the plans a node opened) with `want` (`node_replicas` now)
    takes: the replicas to drop (their group gone: a deleted topic), then the ones to open or
    refresh (new, or their plan changed: routes, configs), in a stable order."""
    drops = [plan for group, plan in hosted.items() if group not in want]
    ensures = [plan for group, plan in want.items() if hosted.get(group) != plan]
    return drops, ensures
