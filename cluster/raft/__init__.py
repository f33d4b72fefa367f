"""Raft per partition: a sans-IO core plus Redpanda's replication path around it."""

from redshank.cluster.raft.consensus import Consensus, Io
from redshank.cluster.raft.flush_debouncer import FlushDebouncer
from redshank.cluster.raft.heartbeat_manager import GroupId, HeartbeatManager, NodeHeartbeat
from redshank.cluster.raft.log import MemoryLog, RaftLog
from redshank.cluster.raft.offset_translator import Offset, OffsetTranslator
from redshank.cluster.raft.raft import RaftConfig, RaftCore
from redshank.cluster.raft.recovery_stm import RecoveryStm
from redshank.cluster.raft.replicate_batcher import Acks, ReplicateBatcher, ReplicateRequest
from redshank.cluster.raft.replicate_entries_stm import (
    ReplicateEntriesStm,
    ReplicateError,
    ReplicateResult,
)
from redshank.cluster.raft.types import (
    NO_NODE,
    Config,
    Entry,
    EntryKind,
    HardState,
    Index,
    Message,
    MessageType,
    NodeId,
    Notice,
    NoticeKind,
    PersistMark,
    ProposeError,
    Ready,
    Role,
    Term,
)
from redshank.cluster.raft.wire import (
    WIRE_VERSION,
    RaftWireError,
    decode_message,
    decode_node_heartbeat,
    encode_message,
    encode_node_heartbeat,
)

__all__ = [
    "NO_NODE", "WIRE_VERSION", "Acks", "Config", "Consensus", "Entry", "EntryKind",
    "FlushDebouncer", "GroupId", "HardState", "HeartbeatManager", "Index", "Io", "MemoryLog",
    "Message", "MessageType", "NodeHeartbeat", "NodeId", "Notice", "NoticeKind", "Offset",
    "OffsetTranslator", "PersistMark", "ProposeError", "RaftConfig", "RaftCore", "RaftLog",
    "RaftWireError", "Ready", "RecoveryStm", "ReplicateBatcher", "ReplicateEntriesStm",
    "ReplicateError", "ReplicateRequest", "ReplicateResult", "Role", "Term", "decode_message",
    "decode_node_heartbeat", "encode_message", "encode_node_heartbeat",
]
