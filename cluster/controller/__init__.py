"""The controller (Raft group 0), sans-IO: commands, their encoding, the state machine that
applies them, the tables it keeps, replica placement and snapshots (ARCHITECTURE.md section 6)."""

from ._codec import ControllerDecodeError
from .commands import (
    PRODUCER_ID_BLOCK,
    AllocateProducerIds,
    AlterTopicConfigs,
    BootstrapCluster,
    Command,
    CommandType,
    CreatePartitions,
    CreateTopic,
    DecommissionNode,
    DeleteTopic,
    RegisterNode,
    SetPreferredReplica,
    decode_command,
    encode_command,
)
from .controller_stm import Applied, ControllerStm
from .members_table import MembersTable, NetAddress, NodeInfo, NodeState
from .placement import (
    PlacementRefused,
    check_assignments,
    default_replication_factor,
    place,
    place_explicit,
)
from .snapshot import SNAPSHOT_VERSION, ControllerSnapshot, decode_snapshot, encode_snapshot
from .topics_table import TopicMetadata, TopicsTable
from .types import Assignment, Replica

__all__ = [
    "PRODUCER_ID_BLOCK",
    "SNAPSHOT_VERSION",
    "AllocateProducerIds",
    "AlterTopicConfigs",
    "Applied",
    "Assignment",
    "BootstrapCluster",
    "Command",
    "CommandType",
    "ControllerDecodeError",
    "ControllerSnapshot",
    "ControllerStm",
    "CreatePartitions",
    "CreateTopic",
    "DecommissionNode",
    "DeleteTopic",
    "MembersTable",
    "NetAddress",
    "NodeInfo",
    "NodeState",
    "PlacementRefused",
    "RegisterNode",
    "Replica",
    "SetPreferredReplica",
    "TopicMetadata",
    "TopicsTable",
    "check_assignments",
    "decode_command",
    "decode_snapshot",
    "default_replication_factor",
    "encode_command",
    "encode_snapshot",
    "place",
    "place_explicit",
]
