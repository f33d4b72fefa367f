"""The controller's commands and their encoding: one command is one Kafka record batch.

Concern: what can be proposed to Raft group 0 (frozen dataclasses, decided only when applied in
log order by `ControllerStm`) and how each becomes the one record batch that is one Raft entry
(ARCHITECTURE.md section 4). Must not know: whether a command will be accepted, the tables,
Raft, sockets, clocks (a batch's timestamp is the caller's argument).

The batch holds exactly one record, uncompressed, not transactional, not control:

    key   = command_type int16 | version int16      (4 bytes; every command is version 0 today)
    value = the payload below, all big-endian; string = int16 length + UTF-8 (-1: null);
            uuid = 16 bytes; [x] = int32 count then that many x; bool = int8 0/1

    +------+---------------------+----------------------------------------------------------+
    | type | command             | payload (version 0)                                      |
    +------+---------------------+----------------------------------------------------------+
    |  1   | BootstrapCluster    | cluster_uuid uuid | nodes [RegisterNode payload]         |
    |  2   | RegisterNode        | node_id int32 | incarnation uuid | rpc_host string       |
    |      |                     | rpc_port int32 | kafka_host string | kafka_port int32    |
    |      |                     | cores int32                                              |
    |  3   | DecommissionNode    | node_id int32                                            |
    |  4   | CreateTopic         | name string | topic_id uuid | partitions int32           |
    |      |                     | replication_factor int16                                 |
    |      |                     | configs [key string | value string]                      |
    |      |                     | assignments [[node_id int32 | core int32]]               |
    |  5   | DeleteTopic         | name string | has_id bool [| topic_id uuid]              |
    |  6   | CreatePartitions    | name string | new_total int32 | assignments (as in 4)    |
    |  7   | AlterTopicConfigs   | name string | replace bool                               |
    |      |                     | ops [op int8 (ConfigOp) | key string                     |
    |      |                     |      | value nullable string]                            |
    |  8   | AllocateProducerIds | node_id int32                                            |
    |  9   | SetPreferredReplica | topic string | partition int32 | node_id int32           |
    +------+---------------------+----------------------------------------------------------+

A decoder refuses anything else (another batch shape, an unknown type or version, a truncated
payload or trailing bytes) with `ControllerDecodeError`; a newer version is a new row, and the
decoder keeps reading the old ones.
"""

from __future__ import annotations

import enum
import itertools
import struct
import uuid
from collections.abc import Callable
from typing import TypeAlias

from redshank.cluster.controller._codec import ControllerDecodeError, Reader, Writer
from redshank.cluster.controller.members_table import NetAddress
from redshank.cluster.controller.types import Assignment, Replica
from redshank.cluster.kafka.topic_configs import ConfigOp
from redshank.cluster.kafka.topic_table import CoreId
from redshank.cluster.raft.types import NodeId
from redshank.protocol.errors import DecodeError
from redshank.protocol.fast_dataclass import dataclass
from redshank.protocol.record_batch import parse_header
from redshank.protocol.records import BatchBuilder, iter_records

__all__ = [
    "PRODUCER_ID_BLOCK",
    "AllocateProducerIds",
    "AlterTopicConfigs",
    "BootstrapCluster",
    "Command",
    "CommandType",
    "CreatePartitions",
    "CreateTopic",
    "DecommissionNode",
    "DeleteTopic",
    "RegisterNode",
    "SetPreferredReplica",
    "decode_command",
    "encode_command",
]

PRODUCER_ID_BLOCK = 1000  # ids per AllocateProducerIds (the single-node controller's block)
_KEY = struct.Struct(">hh")

Configs: TypeAlias = tuple[tuple[str, str], ...]
ConfigOps: TypeAlias = tuple[tuple[ConfigOp, str, str | None], ...]


class CommandType(enum.IntEnum):
    BOOTSTRAP_CLUSTER = 1
    REGISTER_NODE = 2
    DECOMMISSION_NODE = 3
    CREATE_TOPIC = 4
    DELETE_TOPIC = 5
    CREATE_PARTITIONS = 6
    ALTER_TOPIC_CONFIGS = 7
    ALLOCATE_PRODUCER_IDS = 8
    SET_PREFERRED_REPLICA = 9


@dataclass(frozen=True, slots=True)
class RegisterNode:
    """A node joins, or a known node (same id and incarnation) restarts with new addresses or
    more cores."""

    node_id: NodeId
    incarnation: uuid.UUID
    rpc_addr: NetAddress
    kafka_addr: NetAddress
    cores: int


@dataclass(frozen=True, slots=True)
class BootstrapCluster:
    """The first command of a cluster's controller log: its id and founding members."""

    cluster_uuid: uuid.UUID
    nodes: tuple[RegisterNode, ...]


@dataclass(frozen=True, slots=True)
class DecommissionNode:
    node_id: NodeId


@dataclass(frozen=True, slots=True)
class CreateTopic:
    """`assignments` come from `placement.place`, run by the proposer; `partitions` must equal
    their count (both are on the wire so a mismatch is refused rather than guessed)."""

    name: str
    topic_id: uuid.UUID
    partitions: int
    replication_factor: int
    configs: Configs
    assignments: tuple[Assignment, ...]


@dataclass(frozen=True, slots=True)
class DeleteTopic:
    """`topic_id`, when given, must be the topic's: a delete meant for a topic that was since
    deleted and created again under the same name deletes nothing."""

    name: str
    topic_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class CreatePartitions:
    """Grow `name` to `new_total` partitions; `assignments` are the new partitions' replicas."""

    name: str
    new_total: int
    assignments: tuple[Assignment, ...]


@dataclass(frozen=True, slots=True)
class AlterTopicConfigs:
    """The ops of one topic's AlterConfigs (`replace`: KIP-133, the set becomes exactly the ops)
    or IncrementalAlterConfigs (KIP-339: set, delete, append, subtract), applied to the configs
    the topic has when the command is applied (`topic_configs.apply_change`), so two racing
    appends both land."""

    name: str
    ops: ConfigOps
    replace: bool = False

    @classmethod
    def of(cls, name: str, set: Configs = (), delete: tuple[str, ...] = ()) -> AlterTopicConfigs:
        """Set some keys and delete others."""
        ops: list[tuple[ConfigOp, str, str | None]] = [(ConfigOp.SET, k, v) for k, v in set]
        ops += [(ConfigOp.DELETE, k, None) for k in delete]
        return cls(name, tuple(ops))


@dataclass(frozen=True, slots=True)
class AllocateProducerIds:
    """A block of `PRODUCER_ID_BLOCK` producer ids for `node_id` to hand out (InitProducerId),
    unique cluster-wide because blocks are cut in log order."""

    node_id: NodeId


@dataclass(frozen=True, slots=True)
class SetPreferredReplica:
    """Make `node_id`'s replica the partition's first, its preferred leader (leadership moves
    when the partition's Raft group acts on it)."""

    topic: str
    partition: int
    node_id: NodeId


Command: TypeAlias = (BootstrapCluster | RegisterNode | DecommissionNode | CreateTopic
                      | DeleteTopic | CreatePartitions | AlterTopicConfigs | AllocateProducerIds
                      | SetPreferredReplica)


# ---------------------------------------------------------------------------------------------
# Fields shared with the snapshot.


def write_assignments(w: Writer, assignments: tuple[Assignment, ...]) -> None:
    w.i32(len(assignments))
    for replicas in assignments:
        w.i32(len(replicas))
        for r in replicas:
            w.i32(r.node_id)
            w.i32(r.core)


def read_assignments(r: Reader) -> tuple[Assignment, ...]:
    return tuple(tuple(Replica(NodeId(r.i32()), CoreId(r.i32())) for _ in range(r.count()))
                 for _ in range(r.count()))


def write_configs(w: Writer, configs: Configs) -> None:
    w.i32(len(configs))
    for key, value in configs:
        w.string(key)
        w.string(value)


def read_configs(r: Reader) -> Configs:
    return tuple((r.string(), r.string()) for _ in range(r.count()))


def write_node(w: Writer, c: RegisterNode) -> None:
    w.i32(c.node_id)
    w.uuid(c.incarnation)
    w.string(c.rpc_addr.host)
    w.i32(c.rpc_addr.port)
    w.string(c.kafka_addr.host)
    w.i32(c.kafka_addr.port)
    w.i32(c.cores)


def read_node(r: Reader) -> RegisterNode:
    node_id = NodeId(r.i32())
    incarnation = r.uuid()
    rpc = NetAddress(r.string(), r.i32())
    kafka = NetAddress(r.string(), r.i32())
    return RegisterNode(node_id, incarnation, rpc, kafka, r.i32())


# ---------------------------------------------------------------------------------------------
# Payloads, version 0.


def _write(w: Writer, cmd: Command) -> CommandType:
    """Write `cmd`'s payload; return its type."""
    if isinstance(cmd, BootstrapCluster):
        w.uuid(cmd.cluster_uuid)
        w.i32(len(cmd.nodes))
        for node in cmd.nodes:
            write_node(w, node)
        return CommandType.BOOTSTRAP_CLUSTER
    if isinstance(cmd, RegisterNode):
        write_node(w, cmd)
        return CommandType.REGISTER_NODE
    if isinstance(cmd, DecommissionNode):
        w.i32(cmd.node_id)
        return CommandType.DECOMMISSION_NODE
    if isinstance(cmd, CreateTopic):
        w.string(cmd.name)
        w.uuid(cmd.topic_id)
        w.i32(cmd.partitions)
        w.i16(cmd.replication_factor)
        write_configs(w, cmd.configs)
        write_assignments(w, cmd.assignments)
        return CommandType.CREATE_TOPIC
    if isinstance(cmd, DeleteTopic):
        w.string(cmd.name)
        w.i8(cmd.topic_id is not None)
        if cmd.topic_id is not None:
            w.uuid(cmd.topic_id)
        return CommandType.DELETE_TOPIC
    if isinstance(cmd, CreatePartitions):
        w.string(cmd.name)
        w.i32(cmd.new_total)
        write_assignments(w, cmd.assignments)
        return CommandType.CREATE_PARTITIONS
    if isinstance(cmd, AlterTopicConfigs):
        w.string(cmd.name)
        w.i8(cmd.replace)
        w.i32(len(cmd.ops))
        for op, key, value in cmd.ops:
            w.i8(op)
            w.string(key)
            w.string(value)
        return CommandType.ALTER_TOPIC_CONFIGS
    if isinstance(cmd, AllocateProducerIds):
        w.i32(cmd.node_id)
        return CommandType.ALLOCATE_PRODUCER_IDS
    w.string(cmd.topic)
    w.i32(cmd.partition)
    w.i32(cmd.node_id)
    return CommandType.SET_PREFERRED_REPLICA


def _read_bootstrap(r: Reader) -> BootstrapCluster:
    cluster_uuid = r.uuid()
    return BootstrapCluster(cluster_uuid, tuple(read_node(r) for _ in range(r.count())))


def _read_create_topic(r: Reader) -> CreateTopic:
    return CreateTopic(r.string(), r.uuid(), r.i32(), r.i16(), read_configs(r),
                       read_assignments(r))


def _read_delete_topic(r: Reader) -> DeleteTopic:
    name = r.string()
    return DeleteTopic(name, r.uuid() if r.flag() else None)


def _read_config_op(r: Reader) -> tuple[ConfigOp, str, str | None]:
    raw = r.i8()
    try:
        op = ConfigOp(raw)
    except ValueError:
        raise ControllerDecodeError(f"unknown config op {raw}") from None
    return op, r.string(), r.nullable_string()


def _read_alter(r: Reader) -> AlterTopicConfigs:
    name = r.string()
    replace = r.flag()
    return AlterTopicConfigs(name, tuple(_read_config_op(r) for _ in range(r.count())), replace)


_READERS: dict[tuple[int, int], Callable[[Reader], Command]] = {
    (CommandType.BOOTSTRAP_CLUSTER, 0): _read_bootstrap,
    (CommandType.REGISTER_NODE, 0): read_node,
    (CommandType.DECOMMISSION_NODE, 0): lambda r: DecommissionNode(NodeId(r.i32())),
    (CommandType.CREATE_TOPIC, 0): _read_create_topic,
    (CommandType.DELETE_TOPIC, 0): _read_delete_topic,
    (CommandType.CREATE_PARTITIONS, 0): lambda r: CreatePartitions(r.string(), r.i32(),
                                                                  read_assignments(r)),
    (CommandType.ALTER_TOPIC_CONFIGS, 0): _read_alter,
    (CommandType.ALLOCATE_PRODUCER_IDS, 0): lambda r: AllocateProducerIds(NodeId(r.i32())),
    (CommandType.SET_PREFERRED_REPLICA, 0): lambda r: SetPreferredReplica(r.string(), r.i32(),
                                                                         NodeId(r.i32())),
}


# ---------------------------------------------------------------------------------------------
# The batch.


def encode_command(cmd: Command, *, timestamp_ms: int = 0) -> bytes:
    """The one record batch carrying `cmd` (an `EncodeError` if a field does not fit)."""
    w = Writer()
    kind = _write(w, cmd)
    builder = BatchBuilder()
    builder.append(w.done(), key=_KEY.pack(kind, 0), timestamp=timestamp_ms)
    return builder.build()


def decode_command(batch: bytes | bytearray | memoryview) -> Command:
    """The command in `batch`, which must be exactly one batch as `encode_command` makes it.
    Raises only `ControllerDecodeError`."""
    try:
        header = parse_header(batch)
        if header.size != len(batch):
            raise ControllerDecodeError(f"{len(batch)} bytes for a batch of {header.size}")
        if header.is_control or header.is_transactional or header.record_count != 1:
            raise ControllerDecodeError("a command batch holds one plain record")
        records = list(itertools.islice(iter_records(batch), 2))
    except ControllerDecodeError:
        raise
    except DecodeError as exc:
        raise ControllerDecodeError(f"not a command batch: {exc}") from exc
    if len(records) != 1:
        raise ControllerDecodeError(f"a command batch holds one record, not {len(records)}")
    key, value = records[0].key, records[0].value
    if key is None or len(key) != _KEY.size or value is None:
        raise ControllerDecodeError("a command record needs a 4-byte key and a value")
    kind, version = _KEY.unpack(key)
    read = _READERS.get((kind, version))
    if read is None:
        raise ControllerDecodeError(f"unknown command type {kind} version {version}")
    r = Reader(value)
    cmd = read(r)
    r.end()
    return cmd
