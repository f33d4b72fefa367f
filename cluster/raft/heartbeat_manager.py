"""Node-level heartbeats: one message per node pair carries the heartbeats of every group
(Redpanda's `heartbeat_manager`), and a group's heartbeat to a follower is dropped when an append
to that follower went out in the same interval (the append carries the commit index already).

Must not know transport or timers: the host calls `collect` with each group's outgoing messages
and `flush` once per heartbeat interval.
"""

from __future__ import annotations

from typing import NewType

from redshank.cluster.raft.types import Message, MessageType, NodeId
from redshank.protocol.fast_dataclass import dataclass

GroupId = NewType("GroupId", int)


@dataclass(frozen=True, slots=True)
class NodeHeartbeat:
    src: NodeId
    dst: NodeId
    beats: tuple[tuple[GroupId, Message], ...]


class HeartbeatManager:
    def __init__(self, node: NodeId) -> None:
        self.node = node
        self._beats: dict[NodeId, list[tuple[GroupId, Message]]] = {}
        self._appended: set[tuple[GroupId, NodeId]] = set()
        self.suppressed = 0

    def collect(self, group: GroupId, messages: list[Message]) -> list[Message]:
        """Keep heartbeats (and their responses) for the node-level message; return the rest."""
        rest: list[Message] = []
        for m in messages:
            if m.type in (MessageType.HEARTBEAT, MessageType.HEARTBEAT_RESPONSE):
                self._beats.setdefault(m.dst, []).append((group, m))
            else:
                if m.type == MessageType.APPEND:
                    self._appended.add((group, m.dst))
                rest.append(m)
        return rest

    def flush(self) -> list[NodeHeartbeat]:
        out: list[NodeHeartbeat] = []
        for dst in sorted(self._beats):
            beats = []
            for group, m in self._beats[dst]:
                if m.type == MessageType.HEARTBEAT and (group, dst) in self._appended:
                    self.suppressed += 1
                    continue
                beats.append((group, m))
            if beats:
                out.append(NodeHeartbeat(self.node, dst, tuple(beats)))
        self._beats.clear()
        self._appended.clear()
        return out
