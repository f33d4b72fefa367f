"""The cluster's members as the controller log has made them: node id -> addresses, cores, state.

Concern: the in-memory view (`_table`) of registered nodes, derived from `RegisterNode`,
`DecommissionNode` and `BootstrapCluster` commands applied by `ControllerStm` (and rebuilt from
its snapshot). Must not know: how commands are encoded, Raft, sockets, clocks.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterator
from typing import NamedTuple

from redshank.cluster.raft.types import NodeId
from redshank.protocol.fast_dataclass import dataclass

__all__ = ["MembersTable", "NetAddress", "NodeInfo", "NodeState"]


class NodeState(enum.IntEnum):
    ACTIVE = 0
    # Takes no new replicas and no producer-id blocks; its id is never registered again (a
    # decommissioned node that comes back must join under a new id, as in Redpanda).
    DECOMMISSIONED = 1


class NetAddress(NamedTuple):
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class NodeInfo:
    node_id: NodeId
    # Who registered this id: a node started with empty disks has a new incarnation, so an id
    # reused by a different machine (or a wiped one) is told apart from a restart.
    incarnation: uuid.UUID
    rpc_addr: NetAddress  # internal RPC: core c listens on rpc_addr.port + c
    kafka_addr: NetAddress
    cores: int
    state: NodeState = NodeState.ACTIVE

    @property
    def active(self) -> bool:
        return self.state == NodeState.ACTIVE


class MembersTable:
    """Registered nodes by id. Created empty by `ControllerStm` (or filled by its `restore`),
    changed only by it while applying commands; lives as long as its stm."""

    def __init__(self) -> None:
        self._nodes: dict[NodeId, NodeInfo] = {}

    def get(self, node_id: NodeId) -> NodeInfo | None:
        return self._nodes.get(node_id)

    def put(self, info: NodeInfo) -> None:
        self._nodes[info.node_id] = info

    def by_incarnation(self, incarnation: uuid.UUID) -> NodeInfo | None:
        return next((n for n in self._nodes.values() if n.incarnation == incarnation), None)

    def active_cores(self) -> dict[NodeId, int]:
        """Node id -> core count of the nodes that may take new replicas (placement's input)."""
        return {n.node_id: n.cores for n in self if n.active}

    def __iter__(self) -> Iterator[NodeInfo]:
        """Every node, decommissioned ones included, by id."""
        return iter(sorted(self._nodes.values(), key=lambda n: n.node_id))

    def __len__(self) -> int:
        return len(self._nodes)
