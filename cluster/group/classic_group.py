"""One classic consumer group's state: members, generation, protocol votes, deadlines, offsets.

Plain data plus the small rules that only look at one group (who leads, which protocol wins, has
everyone rejoined, when is the next deadline). The request logic that moves a group between states
lives in the coordinator.

    Empty --join--> PreparingRebalance --all joined / timeout--> CompletingRebalance
      ^                  ^      |                                  | leader sync persisted
      |                  |      +--no members left--> Empty        v
      +--all left--------+------------member join/leave/expiry---- Stable
    Empty + no offsets --retention/DeleteGroups--> Dead (removed)

Must not know: requests, persistence, clocks (times come in as arguments).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import field

from redshank.cluster.group.api import (
    GroupState,
    JoinedMember,
    Protocol,
    Token,
    TopicPartition,
)
from redshank.cluster.group.group_records import GroupValue, MemberValue, OffsetValue
from redshank.protocol.fast_dataclass import dataclass

__all__ = ["ClassicGroup", "Member", "PendingOffset", "Waiter"]


@dataclass(frozen=True, slots=True)
class PendingOffset:
    """A transactional offset written and not yet settled by its producer's marker."""

    position: int  # its record's place in log order (see `ClassicGroup.offset_positions`)
    value: OffsetValue


@dataclass(frozen=True, slots=True)
class Waiter:
    """A deferred request's token (a wrapper, so any hashable, even None, can be a token)."""

    token: Token


@dataclass(slots=True, eq=False)
class Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    protocol_type: str
    protocols: tuple[Protocol, ...]
    assignment: bytes = b""
    join_waiter: Waiter | None = None  # a JoinGroup waiting for the rebalance to complete
    sync_waiter: Waiter | None = None  # a SyncGroup waiting for the leader's assignment
    # KIP-394: a member that has not completed its first join expires after the (long) new-member
    # timeout even while waiting, so a client that gave up does not hold the rebalance forever.
    is_new: bool = False
    heartbeat_deadline_ms: int = 0

    def metadata_for(self, protocol: str | None) -> bytes:
        for p in self.protocols:
            if p.name == protocol:
                return p.metadata
        return b""

    def matches(self, protocols: tuple[Protocol, ...]) -> bool:
        return self.protocols == protocols

    def vote(self, candidates: set[str]) -> str:
        for p in self.protocols:
            if p.name in candidates:
                return p.name
        raise AssertionError(f"member {self.member_id} supports no candidate protocol")

    def expiry_deadline_ms(self) -> int | None:
        """When this member expires without a heartbeat; None while it waits on us."""
        if self.is_new:
            return self.heartbeat_deadline_ms
        if self.join_waiter is not None or self.sync_waiter is not None:
            return None  # bounded by the rebalance timeout instead, as Kafka
        return self.heartbeat_deadline_ms


@dataclass(slots=True, eq=False)
class ClassicGroup:
    group_id: str
    state: GroupState = GroupState.EMPTY
    state_timestamp_ms: int = -1
    generation_id: int = 0
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str | None = None
    # Insertion order matters: the first member leads, and a new leader is the next one.
    members: dict[str, Member] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)  # instance id -> member id
    # Members told MEMBER_ID_REQUIRED, until they rejoin or expire (member id -> deadline).
    pending_members: dict[str, int] = field(default_factory=dict)
    # Members of this generation that have not sent SyncGroup yet (Kafka's pendingSyncMembers).
    pending_sync: set[str] = field(default_factory=set)
    pending_sync_deadline_ms: int | None = None
    join_deadline_ms: int | None = None  # PreparingRebalance only
    # Initial rebalance delay (group.initial.rebalance.delay.ms): None when not in that phase.
    initial_delay_remaining_ms: int | None = None
    new_member_added: bool = False
    # A leader's SyncGroup is being persisted: followers wait, repeats do not store again.
    assignment_in_flight: bool = False
    offsets: dict[TopicPartition, OffsetValue] = field(default_factory=dict)
    # The log position of each committed offset's record: a transaction's offset that is
    # committed replaces it only if written later (Kafka keeps the most recent record).
    # Entries may outlive their offset; they are read only for keys in `offsets`.
    offset_positions: dict[TopicPartition, int] = field(default_factory=dict)
    # Appends of offsets (regular or transactional) not yet persisted, per partition.
    pending_commits: Counter[TopicPartition] = field(default_factory=Counter)
    # KIP-98: offsets of open transactions, per producer id, persisted but invisible to
    # OffsetFetch until the producer's COMMIT marker (dropped by its ABORT marker).
    pending_txn: dict[int, dict[TopicPartition, PendingOffset]] = field(default_factory=dict)
    # The deadline currently queued in the coordinator's heap (to skip stale heap entries).
    scheduled_deadline_ms: int | None = None

    def has_pending_txn(self, tp: TopicPartition) -> bool:
        """Some open transaction holds an offset of `tp` (OffsetFetch: unstable; retention:
        not expired)."""
        return any(tp in offsets for offsets in self.pending_txn.values())

    # -- membership ------------------------------------------------------------------------

    def transition(self, state: GroupState, now_ms: int) -> None:
        self.state = state
        self.state_timestamp_ms = now_ms

    def add(self, member: Member) -> None:
        if not self.members:
            self.protocol_type = member.protocol_type
        self.members[member.member_id] = member
        if self.leader_id is None:
            self.leader_id = member.member_id
        if member.group_instance_id is not None:
            self.static_members[member.group_instance_id] = member.member_id
        self.pending_members.pop(member.member_id, None)

    def remove(self, member_id: str) -> Member:
        member = self.members.pop(member_id)
        if member.group_instance_id is not None and (
            self.static_members.get(member.group_instance_id) == member_id
        ):
            del self.static_members[member.group_instance_id]
        self.pending_sync.discard(member_id)
        if self.leader_id == member_id:
            self.leader_id = next(iter(self.members), None)
        return member

    def replace_static_member(self, instance_id: str, old_id: str, new_id: str) -> Member:
        """Give a static member a new member id (KIP-345): the old id is fenced from now on."""
        member = self.members[old_id]
        member.member_id = new_id
        # Keep the member's place: order (hence who leads next) survives the id change.
        self.members = {(new_id if k == old_id else k): v for k, v in self.members.items()}
        if self.leader_id == old_id:
            self.leader_id = new_id
        self.static_members[instance_id] = new_id
        if old_id in self.pending_sync:
            self.pending_sync.discard(old_id)
            self.pending_sync.add(new_id)
        return member

    def has_member(self, member_id: str) -> bool:
        return member_id in self.members

    def is_static_fenced(self, instance_id: str | None, member_id: str) -> bool:
        if instance_id is None:
            return False
        current = self.static_members.get(instance_id)
        return current is not None and current != member_id

    def is_leader(self, member_id: str) -> bool:
        return self.leader_id == member_id

    def all_joined(self) -> bool:
        return not self.pending_members and all(
            m.join_waiter is not None for m in self.members.values()
        )

    def max_rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    # -- protocols -------------------------------------------------------------------------

    def supports_protocols(self, protocol_type: str, names: list[str]) -> bool:
        """Kafka's supportsProtocols: the joiner shares a protocol with every current member."""
        if not self.members:
            return bool(protocol_type) and bool(names)
        if protocol_type != self.protocol_type:
            return False
        counts = self._protocol_counts()
        return any(counts[name] == len(self.members) for name in names)

    def _protocol_counts(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for m in self.members.values():
            counts.update({p.name for p in m.protocols})
        return counts

    def select_protocol(self) -> str:
        """Each member votes for its most preferred protocol that every member supports."""
        counts = self._protocol_counts()
        candidates = {name for name, n in counts.items() if n == len(self.members)}
        votes = Counter(m.vote(candidates) for m in self.members.values())
        # Ties go to the leader's preference order, so the choice is deterministic.
        leader = self.members.get(self.leader_id or "") or next(iter(self.members.values()))
        order = {p.name: i for i, p in enumerate(leader.protocols)}
        return min(votes, key=lambda name: (-votes[name], order.get(name, len(order)), name))

    def joined_members(self) -> tuple[JoinedMember, ...]:
        return tuple(
            JoinedMember(m.member_id, m.group_instance_id, m.metadata_for(self.protocol_name))
            for m in self.members.values()
        )

    # -- deadlines -------------------------------------------------------------------------

    def next_deadline_ms(self) -> int | None:
        deadlines: list[int] = list(self.pending_members.values())
        if self.state is GroupState.PREPARING_REBALANCE and self.join_deadline_ms is not None:
            deadlines.append(self.join_deadline_ms)
        if (
            self.state in (GroupState.COMPLETING_REBALANCE, GroupState.STABLE)
            and self.pending_sync
            and self.pending_sync_deadline_ms is not None
        ):
            deadlines.append(self.pending_sync_deadline_ms)
        for m in self.members.values():
            d = m.expiry_deadline_ms()
            if d is not None:
                deadlines.append(d)
        return min(deadlines, default=None)

    # -- persistence -----------------------------------------------------------------------

    def to_value(self, assignments: dict[str, bytes] | None = None) -> GroupValue:
        members = tuple(
            MemberValue(
                m.member_id,
                m.group_instance_id,
                m.client_id,
                m.client_host,
                m.rebalance_timeout_ms,
                m.session_timeout_ms,
                m.metadata_for(self.protocol_name),
                m.assignment if assignments is None else assignments.get(m.member_id, b""),
            )
            for m in self.members.values()
        )
        return GroupValue(
            self.protocol_type or "",
            self.generation_id,
            self.protocol_name,
            self.leader_id,
            self.state_timestamp_ms,
            members,
        )

    @classmethod
    def from_value(cls, group_id: str, value: GroupValue, now_ms: int) -> ClassicGroup:
        """A group as loaded: Stable if it has members (Kafka), else Empty."""
        group = cls(group_id)
        group.generation_id = value.generation_id
        group.protocol_type = value.protocol_type or None
        group.protocol_name = value.protocol_name
        for mv in value.members:
            protocols = (Protocol(value.protocol_name or "", mv.subscription),)
            member = Member(
                mv.member_id,
                mv.group_instance_id,
                mv.client_id,
                mv.client_host,
                mv.rebalance_timeout_ms,
                mv.session_timeout_ms,
                value.protocol_type,
                protocols,
                assignment=mv.assignment,
                heartbeat_deadline_ms=now_ms + mv.session_timeout_ms,
            )
            group.add(member)
        if value.leader_id in group.members:
            group.leader_id = value.leader_id
        # -1 (unknown) stays: offset expiry then counts from each commit, as Kafka.
        group.transition(
            GroupState.STABLE if group.members else GroupState.EMPTY, value.state_timestamp_ms
        )
        return group
