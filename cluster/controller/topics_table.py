"""The cluster's topics and partition assignments as the controller log has made them.

Concern: the in-memory view (`_table`) of topics (name -> id, replication factor, configs) and of
their partitions' replicas, each a (node, core) pair with the first replica the preferred leader.
Derived from topic commands applied by `ControllerStm` (and rebuilt from its snapshot). Must not
know: how commands are encoded, placement policy, Raft, sockets, clocks.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from redshank.cluster.controller.types import Assignment
from redshank.cluster.kafka.topic_table import CoreId, TopicPartition
from redshank.cluster.raft.types import NodeId
from redshank.protocol.fast_dataclass import dataclass

__all__ = ["TopicMetadata", "TopicsTable"]


@dataclass(frozen=True, slots=True)
class TopicMetadata:
    name: str
    topic_id: uuid.UUID
    replication_factor: int
    configs: tuple[tuple[str, str], ...]  # sorted by name; only the set ones
    assignments: tuple[Assignment, ...]  # index = partition

    @property
    def partitions(self) -> int:
        return len(self.assignments)

    def cores_on(self, node_id: NodeId) -> dict[int, CoreId]:
        """Partition -> core of the replicas this node hosts (the node's shard table)."""
        return {p: r.core for p, a in enumerate(self.assignments) for r in a
                if r.node_id == node_id}


class TopicsTable:
    """Topics by name (and id). Created empty by `ControllerStm` (or filled by its `restore`),
    changed only by it while applying commands; lives as long as its stm."""

    def __init__(self) -> None:
        self._by_name: dict[str, TopicMetadata] = {}
        self._by_id: dict[uuid.UUID, str] = {}

    def get(self, name: str) -> TopicMetadata | None:
        return self._by_name.get(name)

    def by_id(self, topic_id: uuid.UUID) -> TopicMetadata | None:
        name = self._by_id.get(topic_id)
        return None if name is None else self._by_name[name]

    def put(self, topic: TopicMetadata) -> None:
        """Add a topic or replace the one of that name (its id must not change)."""
        old = self._by_name.get(topic.name)
        assert old is None or old.topic_id == topic.topic_id, "a topic's id never changes"
        self._by_name[topic.name] = topic
        self._by_id[topic.topic_id] = topic.name

    def remove(self, name: str) -> TopicMetadata | None:
        topic = self._by_name.pop(name, None)
        if topic is not None:
            del self._by_id[topic.topic_id]
        return topic

    def replicas(self, tp: TopicPartition) -> Assignment | None:
        topic = self._by_name.get(tp.topic)
        if topic is None or not 0 <= tp.partition < topic.partitions:
            return None
        return topic.assignments[tp.partition]

    def assignments(self) -> Iterator[tuple[TopicPartition, Assignment]]:
        """Every partition's replicas, topics by name, partitions in order."""
        for topic in self:
            for p, replicas in enumerate(topic.assignments):
                yield TopicPartition(topic.name, p), replicas

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def __iter__(self) -> Iterator[TopicMetadata]:
        return iter([self._by_name[n] for n in sorted(self._by_name)])

    def __len__(self) -> int:
        return len(self._by_name)
