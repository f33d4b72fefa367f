"""The Raft state machine of one group: terms, log matching, commit, CheckQuorum, leadership
transfer and joint-consensus reconfiguration with learners; elections (prevote, votes, lease,
priority voting) are the `Elections` mixin in `election.py`.

Driven by `step(message)`, `tick()`, `propose(...)`, `propose_config(...)` and
`transfer_leadership(...)`; the host collects what to persist, send and apply with `ready()` and
reports durability with `on_persisted(...)` (etcd-raft's `raft.go` + `rawnode.go`). Must not know
clocks, sockets, files or threads: its only randomness is `RaftConfig.rng`.

Durability: a follower acknowledges entries and grants votes only in
`Ready.messages_after_persist`, and a leader counts itself towards a quorum only up to the index
the host reported durable, so "committed" always means "fsynced on a majority of voters".
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import field

from redshank.cluster.raft import confchange, quorum
from redshank.cluster.raft.batches import Buffer
from redshank.cluster.raft.election import Elections
from redshank.cluster.raft.log import EntriesUnavailable, RaftLog
from redshank.cluster.raft.progress import Progress, ProgressState
from redshank.cluster.raft.recovery_stm import RecoveryStm
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
from redshank.protocol.fast_dataclass import dataclass

MT = MessageType
_I0 = Index(0)
_T0 = Term(0)

# Messages that may leave before the host's flush: they claim nothing about this node's log and
# depend on no new vote (a leader's appends go out in parallel with its own flush).
_EARLY = frozenset({MT.APPEND, MT.HEARTBEAT, MT.TIMEOUT_NOW, MT.PREVOTE, MT.PREVOTE_RESPONSE,
                    MT.HEARTBEAT_RESPONSE})


@dataclass(slots=True)
class RaftConfig:
    id: NodeId
    rng: random.Random
    election_ticks: int = 10
    heartbeat_ticks: int = 1
    prevote: bool = True
    check_quorum: bool = True
    max_append_entries: int = 32
    # An append carries at most this many batch bytes (at least one entry).
    max_append_bytes: int = 4 << 20
    max_inflight: int = 16
    # A recovery pipelines this many appends once the follower's log is known to match (see
    # recovery_stm.py); it asks the host to load that many appends' entries at a time.
    max_recovery_inflight: int = 8
    # Priority voting (Redpanda): a node whose priority is below the target does not start an
    # election; the target decays each silent election timeout so an absent preferred node cannot
    # block elections. Missing nodes have priority 1.
    priorities: Mapping[NodeId, int] = field(default_factory=dict)
    # Hand committed entries to the host in `Ready.committed`. A host whose state machine is
    # the log itself (a Kafka partition) turns it off: `applied` still advances.
    apply_entries: bool = True


class RaftCore(Elections):
    def __init__(self, cfg: RaftConfig, log: RaftLog, hard_state: HardState,
                 bootstrap: Config, applied: Index = _I0) -> None:
        """`applied`: what the host's state machine already reflects (a Kafka partition's log
        and producer state are rebuilt from the log itself, so its host passes the commit)."""
        self.cfg = cfg
        self.id = cfg.id
        self.log = log
        self.term = hard_state.term
        self.vote = hard_state.vote
        assert hard_state.commit <= log.last_index()
        self.commit = hard_state.commit
        self.applied = Index(min(applied, hard_state.commit))
        self.role = Role.FOLLOWER
        self.lead = NO_NODE
        self.lead_transferee = NO_NODE
        # Configuration history from the log; the latest entry is in force (thesis 4.1).
        self._configs: list[tuple[Index, Config]] = [(Index(0), bootstrap), *log.configs()]
        self.progress: dict[NodeId, Progress] = {}
        self.votes: dict[NodeId, bool] = {}
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_timeout = cfg.election_ticks
        self.target_priority = self._max_priority()
        self.ready_notified = False
        # Persistence cursors: entries >= _unstable are not yet handed to the host; entries <=
        # persisted are durable on this node.
        self._unstable = Index(log.last_index() + 1)
        self.persisted = log.last_index()
        self._hs_sent = hard_state
        self._hs_durable = hard_state
        self._out: list[Message] = []
        self._out_late: list[Message] = []
        self._notices: list[Notice] = []
        # Entries the log could not hand out from memory: ranges the host is asked to load
        # (not yet handed out), and the followers whose next append waits for a load.
        self._to_load: list[tuple[Index, Index]] = []
        self._waiting_load: dict[NodeId, tuple[Index, Index]] = {}
        self._loaded: dict[Index, Entry] = {}
        self._loads_open = True
        self._reset_timeout()

    # ---- queries ----------------------------------------------------------------------------

    @property
    def config(self) -> Config:
        return self._configs[-1][1]

    @property
    def config_index(self) -> Index:
        return self._configs[-1][0]

    def last_index(self) -> Index:
        return self.log.last_index()

    def last_term(self) -> Term:
        return self.log.term(self.log.last_index())

    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.commit)

    def promotable(self) -> bool:
        return self.id in self.config.all_voters()

    def leader_ready(self) -> bool:
        """A leader serves Kafka only after an entry of its term committed (Redpanda #5025)."""
        return self.role == Role.LEADER and self.log.term(self.commit) == self.term

    # ---- host interface ---------------------------------------------------------------------

    def has_ready(self) -> bool:
        # Called several times per append by the hosts' drain loops: the hard state is compared
        # field by field (`hard_state() != self._hs_sent` built a HardState and compared
        # tuples each call).
        sent = self._hs_sent
        return bool(
            self._out or self._out_late or self._notices or self._to_load
            or self._unstable <= self.log.last_index()
            or self.term != sent.term or self.vote != sent.vote or self.commit != sent.commit
            or self.applied < min(self.commit, self.persisted)
        )

    def ready(self) -> Ready:
        rd = Ready()
        last = self.log.last_index()
        if self._unstable <= last:
            rd.entries = self.log.slice(self._unstable, last)
            self._unstable = Index(last + 1)
        hs = self.hard_state()
        if hs != self._hs_sent:
            rd.hard_state = hs
            self._hs_sent = hs
        rd.messages, self._out = self._out, []
        rd.messages_after_persist, self._out_late = self._out_late, []
        apply_to = min(self.commit, self.persisted)
        if self.applied < apply_to:
            if self.cfg.apply_entries:
                rd.committed = self.log.slice(Index(self.applied + 1), apply_to)
            self.applied = apply_to
        rd.notices, self._notices = self._notices, []
        rd.load, self._to_load = self._to_load, []
        rd.mark = PersistMark(last, self.log.term(last), hs)
        return rd

    def on_persisted(self, mark: PersistMark) -> None:
        """The host made everything up to `mark` durable."""
        if mark.hard_state.term >= self._hs_durable.term:
            self._hs_durable = mark.hard_state
        last = self.log.last_index()
        if self.persisted < mark.index <= last and self.log.term(mark.index) == mark.term:
            self.persisted = mark.index
            if self.role == Role.LEADER:
                self._maybe_commit()

    def entries_loaded(self, entries: Sequence[Entry]) -> None:
        """The host loaded entries asked for in `Ready.load`: the appends waiting for them go
        out now. Entries the log no longer holds with the same term (truncated meanwhile) are
        ignored; a follower whose range is still not covered is asked for again."""
        last = self.log.last_index()
        for e in entries:
            if self.log.first_index() <= e.index <= last and self.log.term(e.index) == e.term:
                self._loaded[e.index] = e
        waiting, self._waiting_load = self._waiting_load, {}
        if self.role == Role.LEADER:
            # A follower still not covered asks again at its next trigger (a heartbeat
            # response), not now: a host answering "nothing" must not spin the loop.
            self._loads_open = False
            sent_to = []
            for peer in sorted(waiting):
                if peer in self.progress:
                    before = self.progress[peer].next
                    self._send_appends(peer)
                    if self.progress[peer].next != before:
                        sent_to.append(peer)
            self._loads_open = True
            for peer in sent_to:  # progress made: reading ahead cannot spin
                self._load_ahead(peer)
            self._prune_loaded()
        else:
            self._loaded.clear()

    # ---- proposals --------------------------------------------------------------------------

    def propose(self, batch: Buffer) -> Index | ProposeError:
        """Append one Kafka record batch (opaque) as a DATA entry of this term."""
        err = self._can_propose()
        if err is not None:
            return err
        return self._append_and_broadcast(EntryKind.DATA, batch=batch)

    def propose_config(self, voters: frozenset[NodeId],
                       learners: frozenset[NodeId]) -> Index | ProposeError:
        """Change membership. Voter changes go through a joint configuration; the leader leaves
        the joint phase on its own once it commits. New voters must be caught-up learners."""
        err = self._can_propose()
        if err is not None:
            return err
        if not self.leader_ready():
            return ProposeError.NOT_READY
        if self.config_index > self.commit:
            return ProposeError.CONFIG_IN_PROGRESS

        def caught_up(n: NodeId) -> bool:
            pr = self.progress.get(n)
            return pr is not None and pr.match >= self.commit

        new = confchange.plan(self.config, voters, learners, caught_up)
        if isinstance(new, ProposeError):
            return new
        return self._append_and_broadcast(EntryKind.CONFIG, config=new)

    def transfer_leadership(self, target: NodeId) -> ProposeError | None:
        if self.role != Role.LEADER:
            return ProposeError.NOT_LEADER
        if target not in self.config.voters or target == self.id:
            return ProposeError.NOT_A_VOTER
        if self.lead_transferee != NO_NODE:
            return ProposeError.TRANSFER_IN_PROGRESS
        self.lead_transferee = target
        self.election_elapsed = 0  # abort after one election timeout
        pr = self.progress[target]
        if pr.match == self.log.last_index():
            self._send(target, MT.TIMEOUT_NOW)
        else:
            # Redpanda #2606: never hand over to a lagging target; recover it first (from its
            # acknowledged `match`, since appends in flight may be lost).
            pr.become_probe(self.log.last_index())
            self._send_append(target)
        return None

    def _can_propose(self) -> ProposeError | None:
        if self.role != Role.LEADER:
            return ProposeError.NOT_LEADER
        if self.lead_transferee != NO_NODE:
            return ProposeError.TRANSFER_IN_PROGRESS
        return None

    def _append_and_broadcast(self, kind: EntryKind, batch: Buffer = b"",
                              config: Config | None = None) -> Index:
        idx = Index(self.log.last_index() + 1)
        self._append([Entry(self.term, idx, kind, batch, config)])
        for peer in self.progress:
            self._send_append(peer)
        return idx

    # ---- time -------------------------------------------------------------------------------

    def tick(self) -> None:
        self.election_elapsed += 1
        if self.role == Role.LEADER:
            self._tick_leader()
        else:
            self._tick_election()

    def _tick_leader(self) -> None:
        self.heartbeat_elapsed += 1
        if self.election_elapsed >= self.cfg.election_ticks:
            self.election_elapsed = 0
            if self.cfg.check_quorum:
                active = {n for n, pr in self.progress.items() if pr.recent_active}
                active.add(self.id)
                for pr in self.progress.values():
                    pr.recent_active = False
                if not quorum.joint_active(self.config, active):
                    self._become_follower(self.term, NO_NODE, NoticeKind.STEPPED_DOWN)
                    return
            if self.lead_transferee != NO_NODE:
                self.lead_transferee = NO_NODE
                self._notice(NoticeKind.TRANSFER_ABORTED)
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks:
            self.heartbeat_elapsed = 0
            for peer, pr in self.progress.items():
                self._send(peer, MT.HEARTBEAT, commit=min(pr.match, self.commit))

    # ---- messages ---------------------------------------------------------------------------

    def step(self, m: Message) -> None:
        if m.dst != self.id:
            return
        if m.term > self.term:
            if m.type in (MT.VOTE, MT.PREVOTE) and not m.transfer and self._in_lease():
                return  # a leader was heard from recently: ignore the disruption (thesis 4.2.3)
            if m.type == MT.PREVOTE or (m.type == MT.PREVOTE_RESPONSE and not m.reject):
                pass  # prevote never changes persistent state
            else:
                lead = m.src if m.type in (MT.APPEND, MT.HEARTBEAT) else NO_NODE
                elapsed = self.election_elapsed
                self._become_follower(m.term, lead, NoticeKind.BECAME_FOLLOWER)
                if lead == NO_NODE:
                    # Only a leader or a granted vote restarts the election timer (thesis figure
                    # 3.1); else a node whose clock runs fast starves the best candidate.
                    self.election_elapsed = elapsed
        elif m.term < self.term:
            if m.type in (MT.APPEND, MT.HEARTBEAT):
                # Tell a stale leader about the new term so it steps down.
                self._send(m.src, MT.APPEND_RESPONSE, reject=True)
            elif m.type in (MT.PREVOTE, MT.VOTE):
                # A stale candidate learns the current term instead of counting up to it.
                resp = MT.PREVOTE_RESPONSE if m.type == MT.PREVOTE else MT.VOTE_RESPONSE
                self._send(m.src, resp, reject=True)
            return
        if m.type in (MT.VOTE, MT.PREVOTE):
            self._handle_vote_request(m)
        elif self.role == Role.LEADER:
            self._step_leader(m)
        elif self.role == Role.FOLLOWER:
            self._step_follower(m)
        else:
            self._step_candidate(m)

    def _step_follower(self, m: Message) -> None:
        if m.type == MT.APPEND:
            self._heard_from_leader(m.src)
            self._handle_append(m)
        elif m.type == MT.HEARTBEAT:
            self._heard_from_leader(m.src)
            self._commit_to(m.commit)
            self._send(m.src, MT.HEARTBEAT_RESPONSE, context=m.context)
        elif m.type == MT.TIMEOUT_NOW and self.promotable():
            self._campaign(transfer=True)

    def _step_leader(self, m: Message) -> None:
        pr = self.progress.get(m.src)
        if pr is None:
            return
        if m.type == MT.APPEND_RESPONSE:
            pr.recent_active = True
            if m.reject:
                # Skip our own entries of terms the follower cannot have (etcd's
                # findConflictByTerm on the leader side).
                hint = Index(min(m.commit, self.log.last_index()))
                floor = max(pr.match, self.log.first_index() - 1)  # terms below are gone
                while hint > floor and self.log.term(hint) > m.log_term:
                    hint = Index(hint - 1)
                if pr.rejected(m.index, hint, self.log.last_index()):
                    self._send_appends(m.src)
                return
            if pr.acked(m.index):
                self._maybe_commit()
                if self.lead_transferee == m.src and pr.match == self.log.last_index():
                    self._send(m.src, MT.TIMEOUT_NOW)
            if self.role == Role.LEADER and m.src in self.progress:
                self._send_appends(m.src)
        elif m.type == MT.HEARTBEAT_RESPONSE:
            pr.recent_active = True
            pr.heartbeat_answered()
            if pr.match < self.log.last_index():
                # No progress over a whole heartbeat interval while behind: an append or its
                # response was lost. Fall back to recovery (probe) from `match`.
                if pr.state == ProgressState.REPLICATE and pr.match == pr.match_at_beat:
                    pr.become_probe(self.log.last_index())
                self._send_append(m.src)
            pr.match_at_beat = pr.match

    def _handle_append(self, m: Message) -> None:
        if m.index < self.commit:
            self._send(m.src, MT.APPEND_RESPONSE, index=self.commit)
            return
        last = self.log.last_index()
        if m.index > last or self.log.term(m.index) != m.log_term:
            hint = self._conflict_hint(m.index, m.log_term)
            self._send(m.src, MT.APPEND_RESPONSE, index=m.index, reject=True, commit=hint,
                       log_term=self.log.term(hint))
            return
        # The first entry we lack or hold with another term; everything from it is replaced.
        first = next((k for k, e in enumerate(m.entries)
                      if e.index > last or self.log.term(e.index) != e.term), len(m.entries))
        new = list(m.entries[first:])
        if new:
            assert new[0].index > self.commit, "a committed entry would be truncated"
            self._append(new)
        last_new = Index(m.index + len(m.entries))
        self._commit_to(Index(min(m.commit, last_new)))
        self._send(m.src, MT.APPEND_RESPONSE, index=last_new)

    def _conflict_hint(self, index: Index, term: Term) -> Index:
        """Where the leader should probe next: the last index at or below `index` whose term is
        at most `term` (it skips a whole conflicting term per round trip, thesis 3.5), never below
        the commit index (those entries match the leader's)."""
        i = min(index, self.log.last_index())
        while i > self.commit and self.log.term(i) > term:
            i = Index(i - 1)
        return i

    # ---- transitions ------------------------------------------------------------------------

    def _become_follower(self, term: Term, lead: NodeId, why: NoticeKind) -> None:
        self._reset(term)
        self.role = Role.FOLLOWER
        self.lead = lead
        self._notice(why, leader=lead)

    def _become_leader(self) -> None:
        self._reset(self.term)
        self.role = Role.LEADER
        self.lead = self.id
        self.ready_notified = False
        self._rebuild_progress()
        self._notice(NoticeKind.BECAME_LEADER, leader=self.id)
        # Commit an entry of the new term to learn the commit index (thesis 3.6.2).
        self._append_and_broadcast(EntryKind.NOOP)

    def _reset(self, term: Term) -> None:
        if term != self.term:
            self.term = term
            self.vote = NO_NODE
        self.lead = NO_NODE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self._reset_timeout()
        self.votes = {}
        self.lead_transferee = NO_NODE
        self.progress = {}
        self._waiting_load = {}
        self._loaded.clear()

    def _rebuild_progress(self) -> None:
        # A new follower's log is unknown: recover it up to our log's end.
        last = self.log.last_index()
        old = self.progress
        self.progress = {}
        window = self.cfg.max_recovery_inflight
        for peer in sorted(self.config.members() - {self.id}):
            self.progress[peer] = old.get(peer) or Progress(
                match=Index(0), next=Index(last + 1),
                recovery=RecoveryStm(target=last, window=window), recent_active=True,
                recovery_window=window)

    # ---- log and commit ---------------------------------------------------------------------

    def _append(self, entries: list[Entry]) -> None:
        first = entries[0].index
        if first <= self.log.last_index():
            self._configs = [(i, c) for i, c in self._configs if i < first]
            self.persisted = Index(min(self.persisted, first - 1))
        self.log.append(entries)
        self._unstable = Index(min(self._unstable, first))
        changed = first <= self.config_index or any(e.kind == EntryKind.CONFIG for e in entries)
        for e in entries:
            if e.kind == EntryKind.CONFIG:
                assert e.config is not None
                self._configs.append((e.index, e.config))
        if changed:
            self._config_changed()

    def _config_changed(self) -> None:
        self._notice(NoticeKind.CONFIG_CHANGED, index=self.config_index)
        if self.role == Role.LEADER:
            self._rebuild_progress()
            if self.lead_transferee not in self.config.voters:
                self.lead_transferee = NO_NODE
        elif self.role != Role.FOLLOWER and not self.promotable():
            self._become_follower(self.term, NO_NODE, NoticeKind.BECAME_FOLLOWER)

    def _commit_to(self, index: Index) -> None:
        index = Index(min(index, self.log.last_index()))
        if index > self.commit:
            self.commit = index
            self._notice(NoticeKind.COMMIT_ADVANCED, index=index)

    def _maybe_commit(self) -> None:
        match = {peer: pr.match for peer, pr in self.progress.items()}
        match[self.id] = self.persisted
        idx = quorum.joint_committed_index(self.config, match)
        if idx <= self.commit or idx == quorum.UNBOUNDED or self.log.term(idx) != self.term:
            return
        self._commit_to(idx)
        if not self.ready_notified:
            self.ready_notified = True
            self._notice(NoticeKind.LEADER_READY, index=idx)
        cfg, cfg_index = self.config, self.config_index
        if cfg_index > self.commit:
            return
        if cfg.joint:
            # C_old,new committed: move to C_new on our own (thesis 4.3).
            self._append_and_broadcast(EntryKind.CONFIG, config=confchange.leave_joint(cfg))
        elif self.id not in cfg.voters:
            self._hand_over()

    def _hand_over(self) -> None:
        """Removed from the configuration: pass leadership to the most caught-up voter."""
        best = max(sorted(self.config.voters), key=lambda n: self.progress[n].match)
        if self.progress[best].match == self.log.last_index():
            self._send(best, MT.TIMEOUT_NOW)
        self._become_follower(self.term, NO_NODE, NoticeKind.STEPPED_DOWN)

    # ---- output -----------------------------------------------------------------------------

    def _send_appends(self, peer: NodeId) -> None:
        """One append to `peer`, or, to a pipelined recovery, as many as its window takes; a
        pipelined recovery whose window is full then loads its next window's entries ahead
        (read while these appends are on their way, kept in `_loaded` until sent)."""
        while self._send_append(peer):
            pr = self.progress.get(peer)
            if pr is None or pr.recovery is None or not pr.recovery.pipelined:
                return
        self._load_ahead(peer)
        self._prune_loaded()

    def _load_ahead(self, peer: NodeId) -> None:
        """A pipelined recovery with its window full: ask the host for the next window's
        entries now, so the disk read overlaps the appends in flight instead of following
        their acks."""
        pr = self.progress.get(peer)
        if pr is None or pr.recovery is None or not pr.recovery.pipelined:
            return
        last = self.log.last_index()
        if self._loads_open and pr.next <= last and pr.paused(self.cfg.max_inflight) \
                and pr.next not in self._loaded:
            ahead = Index(min(last, pr.next - 1
                              + self.cfg.max_append_entries * pr.recovery.window))
            self._entries(peer, pr.next, pr.next, ahead)

    def _prune_loaded(self) -> None:
        """Drop loaded entries no recovering follower will be sent again (below every
        recovering follower's cursor): at most about a window per follower stays."""
        if not self._loaded:
            return
        floor = min((pr.next for n, pr in self.progress.items()
                     if n != self.id and pr.recovery is not None), default=None)
        if floor is None:
            self._loaded.clear()
            return
        for i in [i for i in self._loaded if i < floor]:
            del self._loaded[i]

    def _send_append(self, peer: NodeId) -> bool:
        """Send `peer` its next append if it may have one; returns whether one left."""
        pr = self.progress[peer]
        if pr.paused(self.cfg.max_inflight):
            return False
        last = self.log.last_index()
        prev = Index(pr.next - 1)
        hi = Index(min(last, prev + self.cfg.max_append_entries))
        pipelined = pr.recovery is not None and pr.recovery.pipelined
        entries: tuple[Entry, ...] = ()
        if pr.next <= last:
            # A pipelined recovery asks the host for its whole window's entries at once.
            ahead = Index(min(last, prev + self.cfg.max_append_entries
                              * pr.recovery.window)) if pr.recovery and pipelined else hi
            got = self._entries(peer, pr.next, hi, ahead)
            if got is None:
                return False  # sent once the host has loaded them (`entries_loaded`)
            entries = _bounded(got, self.cfg.max_append_bytes)
            hi = Index(prev + len(entries))
        if prev < self.log.first_index() - 1:
            # Before the log's first index (a partition's log begins after its recovery
            # anchor) and not rebuilt by the host: only a snapshot could catch it up.
            return False
        if not entries and (pr.state == ProgressState.REPLICATE or pipelined):
            return False
        self._send(peer, MT.APPEND, index=prev, log_term=self.log.term(prev), entries=entries,
                   commit=self.commit)
        pr.sent(hi, len(entries))
        return True

    def _entries(self, peer: NodeId, lo: Index, hi: Index, ahead: Index
                 ) -> tuple[Entry, ...] | None:
        """Entries lo..hi for `peer`: from the log, else from what the host just loaded (a
        prefix is enough), else None after asking the host to load lo..ahead (once per
        follower)."""
        try:
            return tuple(self.log.slice(lo, hi))
        except EntriesUnavailable as exc:
            missing = (Index(max(lo, exc.lo)), Index(max(min(hi, exc.hi), ahead)))
        got: list[Entry] = []
        for i in range(lo, hi + 1):
            e = self._loaded.get(Index(i))
            if e is None:
                try:
                    e = self.log.entry(Index(i))
                except EntriesUnavailable:
                    break
            got.append(e)
        if got:
            return tuple(got)
        if self._loads_open and peer not in self._waiting_load:
            self._waiting_load[peer] = missing
            if missing not in self._to_load:
                self._to_load.append(missing)
        return None

    def _send(self, to: NodeId, kind: MessageType, *, term: Term | None = None,
              index: Index = _I0, log_term: Term = _T0, entries: tuple[Entry, ...] = (),
              commit: Index = _I0, reject: bool = False, transfer: bool = False,
              context: int = 0) -> None:
        m = Message(kind, self.id, to, self.term if term is None else term, index, log_term,
                    entries, commit, reject, transfer, context)
        durable = (self._hs_durable.term, self._hs_durable.vote) == (self.term, self.vote)
        if kind in _EARLY and durable:
            self._out.append(m)
        else:
            self._out_late.append(m)

    def _notice(self, kind: NoticeKind, index: Index = _I0, leader: NodeId = NO_NODE) -> None:
        self._notices.append(Notice(kind, self.term, index, leader))


def _bounded(entries: tuple[Entry, ...], max_bytes: int) -> tuple[Entry, ...]:
    """The longest prefix of `entries` within `max_bytes` of batches (at least one entry)."""
    total = 0
    for k, e in enumerate(entries):
        total += len(e.batch)
        if total > max_bytes and k:
            return entries[:k]
    return entries
