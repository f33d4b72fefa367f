"""The controller state as one versioned blob: what `ControllerStm.snapshot` writes and
`ControllerStm.restore` reads, so a node can skip replaying the log up to `last_applied`.

Concern: the byte layout of the applied state. Must not know: where snapshots are stored or sent,
Raft, how the state is used. All big-endian; field encodings as in `commands.py`:

    +---------------------------------------------------------------------------------+
    | version int16 = 1 | crc uint32 (zlib CRC-32 of everything after it)             |
    | last_applied int64 | has_cluster bool [| cluster_uuid uuid]                     |
    | next_producer_id int64                                                          |
    | nodes  [RegisterNode payload | state int8 (members_table.NodeState)]            |
    | topics [name string | topic_id uuid | replication_factor int16                  |
    |         | configs [key string | value string]                                   |
    |         | assignments [[node_id int32 | core int32]]]                           |
    +---------------------------------------------------------------------------------+

Nodes are in id order and topics in name order, so equal states give equal bytes (the tests
compare replicas by their snapshots).
"""

from __future__ import annotations

import struct
import uuid
import zlib

from redshank.cluster.controller._codec import ControllerDecodeError, Reader, Writer
from redshank.cluster.controller.commands import (
    RegisterNode,
    read_assignments,
    read_configs,
    read_node,
    write_assignments,
    write_configs,
    write_node,
)
from redshank.cluster.controller.members_table import NodeInfo, NodeState
from redshank.cluster.controller.topics_table import TopicMetadata
from redshank.cluster.raft.types import Index
from redshank.protocol.fast_dataclass import dataclass

__all__ = ["SNAPSHOT_VERSION", "ControllerSnapshot", "decode_snapshot", "encode_snapshot"]

SNAPSHOT_VERSION = 1
_HEAD = struct.Struct(">hI")


@dataclass(frozen=True, slots=True)
class ControllerSnapshot:
    last_applied: Index
    cluster_uuid: uuid.UUID | None
    next_producer_id: int
    nodes: tuple[NodeInfo, ...]
    topics: tuple[TopicMetadata, ...]


def encode_snapshot(s: ControllerSnapshot) -> bytes:
    w = Writer()
    w.i64(s.last_applied)
    w.i8(s.cluster_uuid is not None)
    if s.cluster_uuid is not None:
        w.uuid(s.cluster_uuid)
    w.i64(s.next_producer_id)
    w.i32(len(s.nodes))
    for n in sorted(s.nodes, key=lambda n: n.node_id):
        write_node(w, RegisterNode(n.node_id, n.incarnation, n.rpc_addr, n.kafka_addr, n.cores))
        w.i8(n.state)
    w.i32(len(s.topics))
    for t in sorted(s.topics, key=lambda t: t.name):
        w.string(t.name)
        w.uuid(t.topic_id)
        w.i16(t.replication_factor)
        write_configs(w, t.configs)
        write_assignments(w, t.assignments)
    body = w.done()
    return _HEAD.pack(SNAPSHOT_VERSION, zlib.crc32(body)) + body


def _read_node(r: Reader) -> NodeInfo:
    c = read_node(r)
    raw = r.i8()
    try:
        state = NodeState(raw)
    except ValueError:
        raise ControllerDecodeError(f"unknown node state {raw}") from None
    return NodeInfo(c.node_id, c.incarnation, c.rpc_addr, c.kafka_addr, c.cores, state)


def _read_topic(r: Reader) -> TopicMetadata:
    return TopicMetadata(r.string(), r.uuid(), r.i16(), read_configs(r), read_assignments(r))


def decode_snapshot(raw: bytes) -> ControllerSnapshot:
    """Raises only `ControllerDecodeError` (unknown version, bad CRC, truncated, trailing bytes,
    a node, topic name or topic id listed twice)."""
    if len(raw) < _HEAD.size:
        raise ControllerDecodeError(f"snapshot of {len(raw)} bytes")
    version, crc = _HEAD.unpack_from(raw)
    if version != SNAPSHOT_VERSION:
        raise ControllerDecodeError(f"unknown snapshot version {version}")
    body = raw[_HEAD.size:]
    if zlib.crc32(body) != crc:
        raise ControllerDecodeError("snapshot fails its CRC")
    r = Reader(body)
    last_applied = Index(r.i64())
    cluster_uuid = r.uuid() if r.flag() else None
    next_producer_id = r.i64()
    nodes = tuple(_read_node(r) for _ in range(r.count()))
    topics = tuple(_read_topic(r) for _ in range(r.count()))
    r.end()
    if len({n.node_id for n in nodes}) != len(nodes):
        raise ControllerDecodeError("a node id appears twice")
    if (len({t.name for t in topics}) != len(topics)
            or len({t.topic_id for t in topics}) != len(topics)):
        raise ControllerDecodeError("a topic name or id appears twice")
    return ControllerSnapshot(last_applied, cluster_uuid, next_producer_id, nodes, topics)
