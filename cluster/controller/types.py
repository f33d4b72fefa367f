"""The controller's small vocabulary: where a replica lives.

Pure data. `NodeId` is Raft's and `CoreId` the topic table's (one vocabulary); this adds only
the pair. Must not know anything else.
"""

from __future__ import annotations

from typing import NamedTuple

from redshank.cluster.kafka.topic_table import CoreId
from redshank.cluster.raft.types import NodeId

__all__ = ["Assignment", "Replica"]


class Replica(NamedTuple):
    """Where one replica of a partition lives: a node and one of its cores (Redpanda's
    `broker_shard`)."""

    node_id: NodeId
    core: CoreId


# A partition's replicas; the first is the preferred leader.
Assignment = tuple[Replica, ...]
