"""The group coordinator's inputs and outputs: requests, results and the effects a call returns.

These are the coordinator's own small values, shaped so a Kafka handler can map every version of
JoinGroup (v0-7), SyncGroup (v0-5), Heartbeat (v0-4), LeaveGroup (v0-5), OffsetCommit (v2-9),
OffsetFetch (v1-9), DescribeGroups, ListGroups and DeleteGroups to and from them. Member metadata
and assignments are opaque bytes: the coordinator never parses the consumer protocol.

Must not know: the wire encoding of any Kafka message, connections, clocks.

Version mapping notes for the handlers (what each field means for old versions):
- JoinGroup v0: no rebalance timeout on the wire -> pass the session timeout (Kafka does).
  `require_known_member_id` = version >= 4 (KIP-394 MEMBER_ID_REQUIRED handshake).
- LeaveGroup v0-2: one member id -> one `LeaveMember`; answer the top-level error if it is not
  NONE, else that member's error (Kafka's LeaveGroupResponse does the same for v0-2).
- OffsetCommit v9 `generation_id_or_member_epoch` is `generation_id` for classic groups.
  `retention_time_ms` only exists in v2-4 (-1 = broker default).
- OffsetFetch v1-7 is one `OffsetFetchGroup` (its group error is the v2-7 top-level error);
  v8+ is several. `topics=None` (v2+) = every committed partition.
- OffsetCommit results come per partition in request order; the handler regroups them by topic.
- Multi-group requests (OffsetFetch v8+, DescribeGroups, DeleteGroups) and ListGroups span
  coordinators: split by `partition_for(group_id, n)`, ask each owner, merge the answers.
- TxnOffsetCommit (v0-4; KIP-98) answers like OffsetCommit (`OffsetCommitResult`); v0-2 carry
  no generation, member or instance id (the defaults: not checked). Its offsets stay pending
  per producer id until a `TxnMarkerRequest` (the WriteTxnMarkers COMMIT/ABORT marker for this
  `__consumer_offsets` partition) settles them.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable
from typing import TypeAlias

from redshank.cluster.kafka.topic_table import TopicPartition
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.fast_dataclass import dataclass

__all__ = [
    "NO_GENERATION",
    "NO_LEADER_EPOCH",
    "NO_OFFSET",
    "NO_PRODUCER_ID",
    "Append",
    "Completion",
    "DeleteGroupsRequest",
    "DeleteGroupsResult",
    "DescribeGroupsRequest",
    "DescribeGroupsResult",
    "DescribedGroup",
    "DescribedMember",
    "GroupDeletion",
    "GroupListing",
    "GroupRecord",
    "GroupResult",
    "GroupState",
    "HeartbeatRequest",
    "HeartbeatResult",
    "JoinGroupRequest",
    "JoinGroupResult",
    "JoinedMember",
    "LeaveGroupRequest",
    "LeaveGroupResult",
    "LeaveMember",
    "LeaveMemberResult",
    "ListGroupsRequest",
    "ListGroupsResult",
    "OffsetCommitPartition",
    "OffsetCommitRequest",
    "OffsetCommitResult",
    "OffsetDeleteRequest",
    "OffsetDeleteResult",
    "OffsetFetchGroup",
    "OffsetFetchGroupResult",
    "OffsetFetchRequest",
    "OffsetFetchResult",
    "Output",
    "PartitionError",
    "PartitionOffset",
    "Protocol",
    "SyncGroupRequest",
    "SyncGroupResult",
    "Token",
    "TopicPartition",
    "TxnMarker",
    "TxnMarkerRequest",
    "TxnMarkerResult",
    "TxnOffsetCommitRequest",
]

# Chosen by the caller (e.g. (connection id, correlation id)); the coordinator only hands it back.
Token: TypeAlias = Hashable

NO_GENERATION = -1  # OffsetCommit from a group not managed by the coordinator ("simple" commit)
NO_OFFSET = -1  # OffsetFetch answer for a partition with no committed offset
NO_LEADER_EPOCH = -1
NO_PRODUCER_ID = -1  # a record of no transaction (Kafka's RecordBatch.NO_PRODUCER_ID)


class GroupState(enum.Enum):
    """Kafka's classic group states; the values are what DescribeGroups/ListGroups send."""

    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


# ---------------------------------------------------------------------------------------------
# Requests. Every request carries the caller's token; its result comes back exactly once, in the
# Output of this call or of a later call (tick, on_persisted, another member's request, resign).


@dataclass(frozen=True, slots=True)
class Protocol:
    """One (assignor name, member metadata) pair of a JoinGroup, in preference order."""

    name: str
    metadata: bytes


@dataclass(frozen=True, slots=True)
class JoinGroupRequest:
    token: Token
    group_id: str
    member_id: str  # "" = unknown member
    protocol_type: str
    protocols: tuple[Protocol, ...]
    session_timeout_ms: int
    rebalance_timeout_ms: int
    client_id: str = ""
    client_host: str = ""
    group_instance_id: str | None = None  # v5+, static membership (KIP-345)
    require_known_member_id: bool = True  # v4+
    reason: str | None = None  # v8+, for logs only


@dataclass(frozen=True, slots=True)
class SyncGroupRequest:
    token: Token
    group_id: str
    generation_id: int
    member_id: str
    assignments: tuple[tuple[str, bytes], ...] = ()  # (member id, assignment); leader only
    group_instance_id: str | None = None  # v3+
    protocol_type: str | None = None  # v5+
    protocol_name: str | None = None  # v5+


@dataclass(frozen=True, slots=True)
class HeartbeatRequest:
    token: Token
    group_id: str
    generation_id: int
    member_id: str
    group_instance_id: str | None = None  # v3+


@dataclass(frozen=True, slots=True)
class LeaveMember:
    member_id: str  # "" with an instance id = administrative removal of a static member
    group_instance_id: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class LeaveGroupRequest:
    token: Token
    group_id: str
    members: tuple[LeaveMember, ...]


@dataclass(frozen=True, slots=True)
class OffsetCommitPartition:
    topic: str
    partition: int
    offset: int
    leader_epoch: int = NO_LEADER_EPOCH  # v6+
    metadata: str | None = ""


@dataclass(frozen=True, slots=True)
class OffsetCommitRequest:
    token: Token
    group_id: str
    partitions: tuple[OffsetCommitPartition, ...]
    generation_id: int = NO_GENERATION
    member_id: str = ""
    group_instance_id: str | None = None  # v7+
    retention_time_ms: int = -1  # v2-4 only; -1 = the broker's offsets retention


@dataclass(frozen=True, slots=True)
class OffsetFetchGroup:
    group_id: str
    topics: tuple[tuple[str, tuple[int, ...]], ...] | None = None  # None = every partition
    # v9 (KIP-848) fields; a classic group ignores them, as Kafka does.
    member_id: str | None = None
    member_epoch: int = -1


@dataclass(frozen=True, slots=True)
class OffsetFetchRequest:
    token: Token
    groups: tuple[OffsetFetchGroup, ...]
    # v7+ (KIP-447): a partition with pending transactional offsets answers
    # UNSTABLE_OFFSET_COMMIT instead of its last committed offset (the client retries).
    require_stable: bool = False


@dataclass(frozen=True, slots=True)
class DescribeGroupsRequest:
    token: Token
    group_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ListGroupsRequest:
    token: Token
    states_filter: tuple[str, ...] = ()  # v4+, e.g. ("Stable",); matched case-insensitively
    types_filter: tuple[str, ...] = ()  # v5+, ("classic",) or ("consumer",)


@dataclass(frozen=True, slots=True)
class DeleteGroupsRequest:
    token: Token
    group_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class OffsetDeleteRequest:
    """OffsetDelete (KIP-496): drop the group's committed offsets of these partitions."""

    token: Token
    group_id: str
    partitions: tuple[TopicPartition, ...]


@dataclass(frozen=True, slots=True)
class TxnOffsetCommitRequest:
    """TxnOffsetCommit (KIP-98): offsets committed as part of `producer_id`'s transaction,
    written at once (a transactional batch) but pending, invisible to OffsetFetch, until the
    marker on this partition commits them (or drops them: abort)."""

    token: Token
    transactional_id: str
    group_id: str
    producer_id: int
    producer_epoch: int
    partitions: tuple[OffsetCommitPartition, ...]
    generation_id: int = NO_GENERATION  # v3+
    member_id: str = ""  # v3+
    group_instance_id: str | None = None  # v3+


@dataclass(frozen=True, slots=True)
class TxnMarker:
    """A COMMIT or ABORT control record of `producer_id`'s transaction on this partition: in an
    `Append` the marker to write, in a replay the marker read (its place in log order decides
    which of the producer's pending offsets it settles: those written before it)."""

    producer_id: int
    producer_epoch: int
    committed: bool
    coordinator_epoch: int


@dataclass(frozen=True, slots=True)
class TxnMarkerRequest:
    """WriteTxnMarkers for this `__consumer_offsets` partition: append the marker (acks=all),
    then settle `producer_id`'s pending offsets in every group of the partition. A retried
    marker with nothing pending is appended again and settles nothing (as Kafka)."""

    token: Token
    marker: TxnMarker


# ---------------------------------------------------------------------------------------------
# Results.


@dataclass(frozen=True, slots=True)
class JoinedMember:
    """A member as the leader sees it in its JoinGroup response."""

    member_id: str
    group_instance_id: str | None
    metadata: bytes


@dataclass(frozen=True, slots=True)
class JoinGroupResult:
    error: ErrorCode
    member_id: str = ""
    generation_id: int = NO_GENERATION
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str = ""
    members: tuple[JoinedMember, ...] = ()  # only for the leader


@dataclass(frozen=True, slots=True)
class SyncGroupResult:
    error: ErrorCode
    assignment: bytes = b""
    protocol_type: str | None = None
    protocol_name: str | None = None


@dataclass(frozen=True, slots=True)
class HeartbeatResult:
    error: ErrorCode


@dataclass(frozen=True, slots=True)
class LeaveMemberResult:
    member_id: str
    group_instance_id: str | None
    error: ErrorCode


@dataclass(frozen=True, slots=True)
class LeaveGroupResult:
    error: ErrorCode
    members: tuple[LeaveMemberResult, ...] = ()


@dataclass(frozen=True, slots=True)
class PartitionError:
    topic: str
    partition: int
    error: ErrorCode


@dataclass(frozen=True, slots=True)
class OffsetCommitResult:
    partitions: tuple[PartitionError, ...]


@dataclass(frozen=True, slots=True)
class PartitionOffset:
    topic: str
    partition: int
    offset: int  # NO_OFFSET when nothing is committed
    leader_epoch: int = NO_LEADER_EPOCH
    metadata: str | None = ""
    error: ErrorCode = ErrorCode.NONE


@dataclass(frozen=True, slots=True)
class OffsetFetchGroupResult:
    group_id: str
    error: ErrorCode
    partitions: tuple[PartitionOffset, ...] = ()


@dataclass(frozen=True, slots=True)
class OffsetFetchResult:
    groups: tuple[OffsetFetchGroupResult, ...]


@dataclass(frozen=True, slots=True)
class DescribedMember:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes  # only while Stable, as Kafka
    assignment: bytes  # only while Stable, as Kafka


@dataclass(frozen=True, slots=True)
class DescribedGroup:
    group_id: str
    error: ErrorCode
    state: str = GroupState.DEAD.value
    protocol_type: str = ""
    protocol_name: str = ""  # "protocol_data" on the wire; only while Stable
    members: tuple[DescribedMember, ...] = ()


@dataclass(frozen=True, slots=True)
class DescribeGroupsResult:
    groups: tuple[DescribedGroup, ...]


@dataclass(frozen=True, slots=True)
class GroupListing:
    group_id: str
    protocol_type: str
    state: str
    group_type: str = "classic"


@dataclass(frozen=True, slots=True)
class ListGroupsResult:
    error: ErrorCode
    groups: tuple[GroupListing, ...] = ()


@dataclass(frozen=True, slots=True)
class GroupDeletion:
    group_id: str
    error: ErrorCode


@dataclass(frozen=True, slots=True)
class DeleteGroupsResult:
    results: tuple[GroupDeletion, ...]


@dataclass(frozen=True, slots=True)
class OffsetDeleteResult:
    """A group-level error (then no partitions), or one answer per asked partition."""

    error: ErrorCode
    partitions: tuple[PartitionError, ...] = ()


@dataclass(frozen=True, slots=True)
class TxnMarkerResult:
    """NONE once the marker is committed and applied; NOT_LEADER_OR_FOLLOWER when this replica
    does not serve the partition (or is still replaying it), or the append's error (retriable:
    the transaction coordinator writes the marker again)."""

    error: ErrorCode


GroupResult: TypeAlias = (
    JoinGroupResult
    | SyncGroupResult
    | HeartbeatResult
    | LeaveGroupResult
    | OffsetCommitResult
    | OffsetFetchResult
    | DescribeGroupsResult
    | ListGroupsResult
    | DeleteGroupsResult
    | OffsetDeleteResult
    | TxnMarkerResult
)


# ---------------------------------------------------------------------------------------------
# Effects.


@dataclass(frozen=True, slots=True)
class GroupRecord:
    """One `__consumer_offsets` record: the latest value per key wins; None = tombstone.

    `producer_id` is set on replay for a record read from a transactional batch (a
    TxnOffsetCommit: pending until that producer's marker); an `Append` names its batch's
    producer itself."""

    key: bytes
    value: bytes | None
    producer_id: int = NO_PRODUCER_ID


@dataclass(frozen=True, slots=True)
class Append:
    """Records to append to the group's `__consumer_offsets` partition as one batch, in order.

    The host appends every Append in the order returned and reports each outcome with
    `on_persisted(append_id, error, now_ms)`, in the same order. With `producer_id` set the
    batch is transactional (its header carries the producer id and epoch, no sequence); with
    `marker` set (and no records) it is that marker's control batch (transactional + control
    attributes, the marker's producer id and epoch, one control record).
    """

    append_id: int
    records: tuple[GroupRecord, ...]
    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = -1
    marker: TxnMarker | None = None


@dataclass(frozen=True, slots=True)
class Completion:
    token: Token
    result: GroupResult


@dataclass(frozen=True, slots=True)
class Output:
    completions: tuple[Completion, ...] = ()
    appends: tuple[Append, ...] = ()
