"""Raft's vocabulary: ids, entries, configurations, hard state and messages.

Pure data: frozen dataclasses and enums. Must not know how anything is sent, stored or timed.
"""

from __future__ import annotations

import enum
from dataclasses import field
from typing import NewType

from redshank.cluster.raft.batches import Buffer, batch_span, values_of
from redshank.protocol.fast_dataclass import dataclass
from redshank.storage.types import Term as Term  # the Kafka leader epoch: one vocabulary

NodeId = NewType("NodeId", int)
Index = NewType("Index", int)  # Raft log index; Kafka offsets are `offset_translator.Offset`

TERM_0 = Term(0)
NO_NODE = NodeId(0)  # node ids start at 1; 0 means "none" (no vote, no leader)


class EntryKind(enum.IntEnum):
    DATA = 0  # a batch of Kafka records
    CONFIG = 1  # a configuration (takes effect when appended, thesis section 4.1)
    NOOP = 2  # the empty entry a new leader appends to commit its term (thesis section 3.6.2)


@dataclass(frozen=True, slots=True)
class Config:
    """A group's membership. `outgoing` is non-empty only in the joint phase (C_old,new)."""

    voters: frozenset[NodeId]
    outgoing: frozenset[NodeId] = frozenset()
    learners: frozenset[NodeId] = frozenset()

    @property
    def joint(self) -> bool:
        return bool(self.outgoing)

    def all_voters(self) -> frozenset[NodeId]:
        return self.voters | self.outgoing

    def members(self) -> frozenset[NodeId]:
        return self.voters | self.outgoing | self.learners

    def describe(self) -> str:
        v = ",".join(str(n) for n in sorted(self.voters))
        out = ""
        if self.outgoing:
            out = "&&(" + ",".join(str(n) for n in sorted(self.outgoing)) + ")"
        lrn = ""
        if self.learners:
            lrn = " learners=(" + ",".join(str(n) for n in sorted(self.learners)) + ")"
        return f"voters=({v}){out}{lrn}"


@dataclass(frozen=True, slots=True)
class Entry:
    term: Term
    index: Index
    kind: EntryKind = EntryKind.DATA
    batch: Buffer = b""  # DATA only: one Kafka record batch, opaque (batches.py)
    config: Config | None = None  # CONFIG only

    def span(self) -> int:
        """Kafka offsets the entry takes: a DATA entry its batch's, the others none."""
        return batch_span(self.batch) if self.kind == EntryKind.DATA and self.batch else 0

    def describe(self) -> str:
        if self.kind == EntryKind.CONFIG:
            assert self.config is not None
            return f"{self.term}/{self.index} conf {self.config.describe()}"
        if self.kind == EntryKind.NOOP:
            return f"{self.term}/{self.index} noop"
        body = " ".join(r.decode("utf-8", "replace") for r in values_of(self.batch))
        return f"{self.term}/{self.index} data [{body}]"


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be durable before any message that depends on it leaves (thesis figure 3.1)."""

    term: Term = TERM_0
    vote: NodeId = NO_NODE
    commit: Index = Index(0)


class MessageType(enum.IntEnum):
    APPEND = 1
    APPEND_RESPONSE = 2
    VOTE = 3
    VOTE_RESPONSE = 4
    PREVOTE = 5
    PREVOTE_RESPONSE = 6
    HEARTBEAT = 7
    HEARTBEAT_RESPONSE = 8
    TIMEOUT_NOW = 9


@dataclass(frozen=True, slots=True)
class Message:
    type: MessageType
    src: NodeId
    dst: NodeId
    term: Term
    # APPEND: prev entry; APPEND_RESPONSE: the follower's match (or its last index on reject);
    # VOTE/PREVOTE: the candidate's last entry.
    index: Index = Index(0)
    log_term: Term = TERM_0
    entries: tuple[Entry, ...] = ()
    commit: Index = Index(0)
    reject: bool = False
    # VOTE/PREVOTE sent because of TIMEOUT_NOW: ignores the leader lease (thesis section 3.10).
    transfer: bool = False
    # Probe/heartbeat sequence so a response can be matched to the request that caused it.
    context: int = 0

    def describe(self) -> str:
        parts = [f"{self.src}->{self.dst} {self.type.name} term={self.term}"]
        t = self.type
        if t in (MessageType.APPEND, MessageType.VOTE, MessageType.PREVOTE):
            parts.append(f"log={self.log_term}/{self.index}")
        if t == MessageType.APPEND:
            parts.append(f"commit={self.commit}")
            if self.entries:
                parts.append("entries=[" + ", ".join(e.describe() for e in self.entries) + "]")
        if t == MessageType.APPEND_RESPONSE:
            parts.append(f"index={self.index}")
        if t == MessageType.HEARTBEAT:
            parts.append(f"commit={self.commit}")
        if self.reject:
            parts.append("rejected")
        if self.transfer:
            parts.append("transfer")
        return " ".join(parts)


class ProposeError(enum.IntEnum):
    NOT_LEADER = 1
    TRANSFER_IN_PROGRESS = 2  # leadership transfer: proposals refused until done or aborted
    NOT_READY = 3  # no entry of the current term committed yet
    CONFIG_IN_PROGRESS = 4  # at most one uncommitted configuration (and not while joint)
    LEARNER_NOT_CAUGHT_UP = 5
    INVALID_CONFIG = 6
    NOT_A_VOTER = 7


class Role(enum.IntEnum):
    FOLLOWER = 0
    PRECANDIDATE = 1
    CANDIDATE = 2
    LEADER = 3


class NoticeKind(enum.IntEnum):
    BECAME_LEADER = 1
    BECAME_FOLLOWER = 2
    BECAME_CANDIDATE = 3
    COMMIT_ADVANCED = 4
    CONFIG_CHANGED = 5
    LEADER_READY = 6  # an entry of the leader's own term committed: serve Kafka (Redpanda #5025)
    TRANSFER_ABORTED = 7
    STEPPED_DOWN = 8  # CheckQuorum lost, or removed from the configuration


@dataclass(frozen=True, slots=True)
class Notice:
    kind: NoticeKind
    term: Term
    index: Index = Index(0)
    leader: NodeId = NO_NODE


@dataclass(frozen=True, slots=True)
class PersistMark:
    """What a Ready asked to make durable: the log up to `index` (term `term`) and `hard_state`."""

    index: Index = Index(0)
    term: Term = TERM_0
    hard_state: HardState = HardState()


@dataclass(slots=True)
class Ready:
    """What the host must do, in order: write `entries` (a first index at or below the last one
    written truncates the suffix) and `hard_state`; send `messages` at once; make entries and hard
    state durable, then send `messages_after_persist` and call `RaftCore.on_persisted`; apply
    `committed`. `mark` is what to pass to `on_persisted` once all of that is durable. `load`:
    ranges of entries (lo, hi inclusive) the log could not hand out from memory
    (`EntriesUnavailable`); the host reads them where it may block and passes them to
    `RaftCore.entries_loaded` (etcd's "unavailable" answer: the loop never waits on the disk)."""

    entries: list[Entry] = field(default_factory=list)
    hard_state: HardState | None = None
    messages: list[Message] = field(default_factory=list)
    messages_after_persist: list[Message] = field(default_factory=list)
    committed: list[Entry] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    mark: PersistMark = PersistMark()
    load: list[tuple[Index, Index]] = field(default_factory=list)

    def empty(self) -> bool:
        return not (
            self.entries or self.hard_state or self.messages or self.messages_after_persist
            or self.committed or self.notices or self.load
        )
