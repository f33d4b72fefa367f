"""Elections of one Raft group: election timeout, prevote, votes, the leader lease that ignores
disruptive candidates (thesis 4.2.3) and Redpanda's priority voting.

`Elections` is a mixin of `RaftCore`: it holds the candidate side of the state machine and
reaches the rest of the core only through the members declared below. Must not know
replication, commit or reconfiguration beyond `config` and `promotable()`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from redshank.cluster.raft import quorum
from redshank.cluster.raft.types import (
    NO_NODE,
    Config,
    Entry,
    Index,
    Message,
    MessageType,
    NodeId,
    NoticeKind,
    Role,
    Term,
)

if TYPE_CHECKING:
    from redshank.cluster.raft.log import RaftLog
    from redshank.cluster.raft.raft import RaftConfig

MT = MessageType


def _decay(target: int) -> int:
    return max(1, target // 2)


class Elections:
    # State owned by RaftCore and used here.
    cfg: RaftConfig
    id: NodeId
    log: RaftLog
    term: Term
    vote: NodeId
    lead: NodeId
    role: Role
    votes: dict[NodeId, bool]
    election_elapsed: int
    randomized_timeout: int
    target_priority: int

    if TYPE_CHECKING:
        # Implemented by RaftCore.
        @property
        def config(self) -> Config: ...
        def promotable(self) -> bool: ...
        def last_term(self) -> Term: ...
        def _step_follower(self, m: Message) -> None: ...
        def _become_leader(self) -> None: ...
        def _become_follower(self, term: Term, lead: NodeId, why: NoticeKind) -> None: ...
        def _reset(self, term: Term) -> None: ...
        def _notice(self, kind: NoticeKind, index: Index = ..., leader: NodeId = ...) -> None: ...
        def _send(self, to: NodeId, kind: MessageType, *, term: Term | None = None,
                  index: Index = ..., log_term: Term = ..., entries: tuple[Entry, ...] = (),
                  commit: Index = ..., reject: bool = False, transfer: bool = False,
                  context: int = 0) -> None: ...

    def campaign(self) -> None:
        """Start an election now (etcd's MsgHup): prevote first if enabled."""
        if self.role != Role.LEADER and self.promotable():
            self._campaign(transfer=False)

    def _tick_election(self) -> None:
        """A follower's or candidate's tick: campaign once the randomized timeout passes, unless
        a node with a higher priority should go first (the target decays each silent timeout so
        an absent preferred node cannot block elections)."""
        if self.election_elapsed < self.randomized_timeout:
            return
        self.election_elapsed = 0
        self._reset_timeout()
        if not self.promotable():
            return
        if self.cfg.priorities and self._priority(self.id) < self.target_priority:
            self.target_priority = _decay(self.target_priority)
            return
        self._campaign(transfer=False)

    def _in_lease(self) -> bool:
        return (self.cfg.check_quorum and self.lead != NO_NODE
                and self.election_elapsed < self.cfg.election_ticks)

    def _handle_vote_request(self, m: Message) -> None:
        resp = MT.VOTE_RESPONSE if m.type == MT.VOTE else MT.PREVOTE_RESPONSE
        can_vote = (
            self.vote == m.src
            or (self.vote == NO_NODE and self.lead == NO_NODE)
            or (m.type == MT.PREVOTE and m.term > self.term)
        )
        last_t, last_i = self.last_term(), self.log.last_index()
        up_to_date = m.log_term > last_t or (m.log_term == last_t and m.index >= last_i)
        # Learners and removed nodes never vote; priority never overrides up_to_date.
        if can_vote and up_to_date and self.promotable():
            # A prevote grant answers in the candidate's future term and changes nothing here.
            self._send(m.src, resp, term=m.term)
            if m.type == MT.VOTE:
                self.election_elapsed = 0
                self.vote = m.src
        else:
            self._send(m.src, resp, reject=True)

    def _heard_from_leader(self, leader: NodeId) -> None:
        self.election_elapsed = 0
        self.lead = leader
        self.target_priority = self._max_priority()

    def _step_candidate(self, m: Message) -> None:
        if m.type in (MT.APPEND, MT.HEARTBEAT):
            self._become_follower(m.term, m.src, NoticeKind.BECAME_FOLLOWER)
            self._step_follower(m)
            return
        want = MT.PREVOTE_RESPONSE if self.role == Role.PRECANDIDATE else MT.VOTE_RESPONSE
        if m.type != want:
            return
        self.votes.setdefault(m.src, not m.reject)
        result = quorum.joint_vote_result(self.config, self.votes)
        if result == quorum.VoteResult.WON:
            if self.role == Role.PRECANDIDATE:
                self._campaign(transfer=False, after_prevote=True)
            else:
                self._become_leader()
        elif result == quorum.VoteResult.LOST:
            self._become_follower(self.term, NO_NODE, NoticeKind.BECAME_FOLLOWER)

    def _campaign(self, transfer: bool, after_prevote: bool = False) -> None:
        if self.cfg.prevote and not transfer and not after_prevote:
            self.role = Role.PRECANDIDATE
            self.lead = NO_NODE
            self.votes = {self.id: True}
            kind, term = MT.PREVOTE, Term(self.term + 1)
        else:
            self._reset(Term(self.term + 1))
            self.role = Role.CANDIDATE
            self.vote = self.id
            self.votes = {self.id: True}
            self._notice(NoticeKind.BECAME_CANDIDATE)
            kind, term = MT.VOTE, self.term
        if quorum.joint_vote_result(self.config, self.votes) == quorum.VoteResult.WON:
            if kind == MT.PREVOTE:
                self._campaign(transfer=False, after_prevote=True)
            else:
                self._become_leader()
            return
        for peer in sorted(self.config.all_voters() - {self.id}):
            self._send(peer, kind, term=term, index=self.log.last_index(),
                       log_term=self.last_term(), transfer=transfer)

    def _reset_timeout(self) -> None:
        n = self.cfg.election_ticks
        self.randomized_timeout = n + self.cfg.rng.randrange(n)

    def _priority(self, node: NodeId) -> int:
        return self.cfg.priorities.get(node, 1)

    def _max_priority(self) -> int:
        return max((self._priority(n) for n in self.config.all_voters()), default=1)
