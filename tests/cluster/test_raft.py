"""The Raft core driven directly: elections, durability ordering, commit rules, prevote,
CheckQuorum, transfer, priority and configuration rules."""

from __future__ import annotations

import random

from redshank.cluster.raft import (
    Config,
    Entry,
    EntryKind,
    HardState,
    Index,
    MemoryLog,
    Message,
    MessageType,
    NodeId,
    NoticeKind,
    ProposeError,
    RaftConfig,
    RaftCore,
    Role,
    Term,
)
from redshank.cluster.raft.batches import batch_of, values_of
from redshank.cluster.raft.log import EntriesUnavailable
from redshank.cluster.raft.types import Ready

MT = MessageType


def ids(*xs: int) -> frozenset[NodeId]:
    return frozenset(NodeId(x) for x in xs)


def make(node: int, voters: frozenset[NodeId] = ids(1, 2, 3),
         learners: frozenset[NodeId] = frozenset(), log: list[Entry] | None = None,
         hs: HardState | None = None, **kw: object) -> RaftCore:
    cfg = RaftConfig(id=NodeId(node), rng=random.Random(node), **kw)  # type: ignore[arg-type]
    return RaftCore(cfg, MemoryLog(log or []), hs or HardState(),
                    Config(voters=voters, learners=learners))


class Net:
    """Persists every Ready at once and delivers every message (none lost)."""

    def __init__(self, *cores: RaftCore) -> None:
        self.cores = {c.id: c for c in cores}
        self.down: set[NodeId] = set()
        self.notices: dict[NodeId, list[NoticeKind]] = {c.id: [] for c in cores}

    def stabilize(self) -> None:
        for _ in range(100):
            msgs: list[Message] = []
            for c in self.cores.values():
                while c.has_ready():
                    rd = c.ready()
                    c.on_persisted(rd.mark)
                    self.notices[c.id] += [n.kind for n in rd.notices]
                    msgs += rd.messages + rd.messages_after_persist
            if not msgs:
                return
            for m in msgs:
                if m.dst in self.cores and m.dst not in self.down and m.src not in self.down:
                    self.cores[m.dst].step(m)

    def elect(self, node: int) -> RaftCore:
        self.cores[NodeId(node)].campaign()
        self.stabilize()
        leader = self.cores[NodeId(node)]
        assert leader.role == Role.LEADER and leader.leader_ready()
        return leader


def test_three_nodes_elect_and_replicate() -> None:
    net = Net(make(1), make(2), make(3))
    leader = net.elect(1)
    idx = leader.propose(batch_of((b"a", b"b")))
    assert idx == 2
    net.stabilize()
    for c in net.cores.values():
        assert c.term == 1 and c.lead == 1
        assert values_of(c.log.entry(Index(2)).batch) == (b"a", b"b")
    assert leader.commit == 2


def test_leader_counts_itself_only_after_its_own_flush() -> None:
    leader = make(1, voters=ids(1))
    leader.campaign()
    rd = leader.ready()
    assert leader.role == Role.LEADER and rd.entries[0].kind == EntryKind.NOOP
    assert leader.commit == 0  # the no-op is written but not durable
    leader.on_persisted(rd.mark)
    assert leader.commit == 1
    leader.propose(batch_of((b"x",)))
    rd = leader.ready()
    assert leader.commit == 1
    leader.on_persisted(rd.mark)
    assert leader.commit == 2


def test_votes_and_acks_leave_only_after_persist() -> None:
    f = make(2)
    f.step(Message(MT.VOTE, NodeId(1), NodeId(2), Term(1)))
    rd = f.ready()
    assert rd.hard_state == HardState(Term(1), NodeId(1), Index(0))
    assert rd.messages == []
    assert [m.type for m in rd.messages_after_persist] == [MT.VOTE_RESPONSE]
    f.on_persisted(rd.mark)
    e = Entry(Term(1), Index(1), EntryKind.NOOP)
    f.step(Message(MT.APPEND, NodeId(1), NodeId(2), Term(1), entries=(e,)))
    rd = f.ready()
    assert rd.entries == [e] and rd.messages == []
    assert [(m.type, m.index) for m in rd.messages_after_persist] == [(MT.APPEND_RESPONSE, 1)]


def test_leader_appends_leave_before_its_flush() -> None:
    net = Net(make(1), make(2), make(3))
    leader = net.elect(1)
    leader.propose(batch_of((b"x",)))
    rd = leader.ready()
    assert {m.type for m in rd.messages} == {MT.APPEND}
    assert rd.messages_after_persist == []


def test_prevote_changes_no_persistent_state() -> None:
    net = Net(make(1), make(2), make(3))
    net.elect(1)
    f = make(3, log=[Entry(Term(1), Index(1), EntryKind.NOOP)], hs=HardState(Term(1), NodeId(1)))
    # Not in a lease (never heard from a leader): grants, but term and vote do not move.
    f.step(Message(MT.PREVOTE, NodeId(2), NodeId(3), Term(5), index=Index(1), log_term=Term(1)))
    rd = f.ready()
    assert (f.term, f.vote) == (1, 1) and rd.hard_state is None
    assert [(m.type, m.term, m.reject) for m in rd.messages] == [(MT.PREVOTE_RESPONSE, 5, False)]
    # The precandidate itself keeps its term until the real election.
    c = make(1)
    c.campaign()
    assert c.role == Role.PRECANDIDATE and c.term == 0 and c.vote == 0


def test_commit_only_counts_entries_of_the_current_term() -> None:
    # Thesis figure 3.7: an entry of an old term on a majority is not committed by counting.
    old = [Entry(Term(1), Index(1), EntryKind.NOOP),
           Entry(Term(1), Index(2), batch=batch_of((b"x",)))]
    leader = make(1, log=old, hs=HardState(Term(1), NodeId(1)), prevote=False)
    leader.campaign()
    for peer in (2, 3):
        leader.step(Message(MT.VOTE_RESPONSE, NodeId(peer), NodeId(1), Term(2)))
    assert leader.role == Role.LEADER
    rd = leader.ready()
    leader.on_persisted(rd.mark)
    leader.step(Message(MT.APPEND_RESPONSE, NodeId(2), NodeId(1), Term(2), index=Index(2)))
    assert leader.commit == 0
    leader.step(Message(MT.APPEND_RESPONSE, NodeId(2), NodeId(1), Term(2), index=Index(3)))
    assert leader.commit == 3


def test_check_quorum_steps_down_without_a_quorum() -> None:
    net = Net(make(1), make(2), make(3))
    leader = net.elect(1)
    net.down = {NodeId(2), NodeId(3)}
    for _ in range(2 * leader.cfg.election_ticks):
        leader.tick()
        net.stabilize()
    assert leader.role == Role.FOLLOWER
    assert NoticeKind.STEPPED_DOWN in net.notices[NodeId(1)]


def test_lease_ignores_disruptive_votes() -> None:
    net = Net(make(1), make(2), make(3))
    net.elect(1)
    f = net.cores[NodeId(2)]
    f.step(Message(MT.VOTE, NodeId(3), NodeId(2), Term(9), index=Index(5), log_term=Term(1)))
    assert f.term == 1 and f.vote == 1
    # ... unless it is a leadership transfer.
    f.step(Message(MT.VOTE, NodeId(3), NodeId(2), Term(9), index=Index(5), log_term=Term(1),
                   transfer=True))
    assert f.term == 9 and f.vote == 3


def test_transfer_refuses_proposals_then_aborts_after_an_election_timeout() -> None:
    net = Net(make(1), make(2), make(3))
    leader = net.elect(1)
    net.down = {NodeId(3)}
    leader.propose(batch_of((b"x",)))
    net.stabilize()
    assert leader.transfer_leadership(NodeId(3)) is None
    rd = leader.ready()
    assert MT.TIMEOUT_NOW not in {m.type for m in rd.messages}  # target lags
    assert leader.propose(batch_of((b"y",))) == ProposeError.TRANSFER_IN_PROGRESS
    for _ in range(leader.cfg.election_ticks):
        leader.tick()
    assert leader.lead_transferee == 0
    assert any(n.kind == NoticeKind.TRANSFER_ABORTED for n in leader.ready().notices)
    assert isinstance(leader.propose(batch_of((b"y",))), int)


def test_transfer_to_caught_up_target() -> None:
    net = Net(make(1), make(2), make(3))
    net.elect(1)
    leader = net.cores[NodeId(1)]
    assert leader.transfer_leadership(NodeId(2)) is None
    net.stabilize()
    assert net.cores[NodeId(2)].role == Role.LEADER and leader.role == Role.FOLLOWER


def test_learner_never_votes_and_never_campaigns() -> None:
    learner = make(4, learners=ids(4))
    learner.step(Message(MT.VOTE, NodeId(1), NodeId(4), Term(1)))
    rd = learner.ready()
    assert [m.reject for m in rd.messages_after_persist + rd.messages] == [True]
    for _ in range(100):
        learner.tick()
    assert learner.role == Role.FOLLOWER and learner.vote == 0


def test_priority_gates_elections_and_decays() -> None:
    prio = {NodeId(3): 4}
    c = make(1, priorities=prio)
    timeouts = 0
    while c.role == Role.FOLLOWER:
        before = c.target_priority
        for _ in range(c.randomized_timeout):
            c.tick()
        timeouts += 1
        if c.role == Role.FOLLOWER:
            assert c.target_priority < before
    assert timeouts == 3  # 4 -> 2 -> 1, then campaign
    assert make(3, priorities=prio).target_priority == 4


def test_priority_never_overrides_up_to_date_check() -> None:
    f = make(2, log=[Entry(Term(1), Index(1), EntryKind.NOOP)], priorities={NodeId(3): 9})
    f.step(Message(MT.VOTE, NodeId(3), NodeId(2), Term(2), index=Index(0), log_term=Term(0)))
    assert f.vote == 0


def test_configuration_change_rules() -> None:
    net = Net(make(1, learners=ids(4)), make(2, learners=ids(4)), make(3, learners=ids(4)),
              make(4, learners=ids(4)))
    net.down = {NodeId(4)}
    leader = net.elect(1)
    assert leader.propose_config(ids(1, 2, 3, 4), frozenset()) == \
        ProposeError.LEARNER_NOT_CAUGHT_UP
    assert leader.propose_config(ids(1, 2, 5), frozenset()) == ProposeError.INVALID_CONFIG
    assert leader.propose_config(frozenset(), frozenset()) == ProposeError.INVALID_CONFIG
    net.down = set()
    leader.tick()
    net.stabilize()
    idx = leader.propose_config(ids(1, 2, 3, 4), frozenset())
    assert isinstance(idx, int)
    assert leader.config.joint
    assert leader.propose_config(ids(1, 2, 3), ids(4)) == ProposeError.CONFIG_IN_PROGRESS
    net.stabilize()
    for c in net.cores.values():
        assert c.config == Config(voters=ids(1, 2, 3, 4))


def test_removed_leader_hands_over_and_steps_down() -> None:
    cores = [make(i, learners=ids(4)) for i in (1, 2, 3, 4)]
    net = Net(*cores)
    leader = net.elect(1)
    assert isinstance(leader.propose_config(ids(2, 3, 4), frozenset()), int)
    net.stabilize()
    assert leader.role == Role.FOLLOWER
    new = [c for c in cores if c.role == Role.LEADER]
    assert len(new) == 1 and new[0].id in ids(2, 3, 4) and new[0].leader_ready()


def test_randomized_timeouts_come_from_the_seeded_rng() -> None:
    a, b = make(1), make(1)
    seq_a, seq_b = [], []
    for _ in range(20):
        a._reset_timeout()
        b._reset_timeout()
        seq_a.append(a.randomized_timeout)
        seq_b.append(b.randomized_timeout)
    assert seq_a == seq_b
    assert all(10 <= t < 20 for t in seq_a) and len(set(seq_a)) > 1


def test_rejection_hint_skips_a_conflicting_term() -> None:
    stale = [Entry(Term(1), Index(1), EntryKind.NOOP)] + [
        Entry(Term(2), Index(i), batch=batch_of((b"s",))) for i in range(2, 20)]
    f = make(2, log=stale, hs=HardState(Term(2), NodeId(0)))
    f.step(Message(MT.APPEND, NodeId(1), NodeId(2), Term(3), index=Index(15), log_term=Term(1)))
    rd = f.ready()
    (resp,) = rd.messages_after_persist
    assert resp.reject and resp.commit == 1  # skips every term-2 entry in one round trip


class ColdLog(MemoryLog):
    """A log whose entries up to `cold` are on disk only (`EntriesUnavailable`)."""

    def __init__(self, entries: list[Entry]) -> None:
        super().__init__(entries)
        self.cold = Index(0)

    def entry(self, index: Index) -> Entry:
        if index <= self.cold:
            raise EntriesUnavailable(index, index)
        return super().entry(index)

    def slice(self, lo: Index, hi: Index) -> list[Entry]:
        if lo <= self.cold:
            raise EntriesUnavailable(lo, hi)
        return super().slice(lo, hi)


def beat_until_load(leader: RaftCore) -> Ready:
    """Node 3 answers heartbeats without progress: the leader falls back to recovering it."""
    for _ in range(3):
        leader.step(Message(MT.HEARTBEAT_RESPONSE, NodeId(3), NodeId(1), Term(1)))
        rd = leader.ready()
        if rd.load:
            return rd
    raise AssertionError("no load asked for")


def test_entries_not_in_memory_are_loaded_by_the_host_then_sent() -> None:
    cold = ColdLog([])
    cfg = RaftConfig(id=NodeId(1), rng=random.Random(1))
    net = Net(RaftCore(cfg, cold, HardState(), Config(voters=ids(1, 2, 3))), make(2), make(3))
    leader = net.elect(1)
    net.down.add(NodeId(3))
    for v in (b"a", b"b", b"c"):
        leader.propose(batch_of((v,)))
    net.stabilize()
    assert leader.commit == 4
    cold.cold = Index(4)  # everything is flushed and out of the cache
    net.down.clear()
    rd = beat_until_load(leader)
    assert rd.load == [(2, 4)]  # node 3 has the no-op: it needs 2..4, and nothing is sent yet
    assert not [m for m in rd.messages if m.dst == 3 and m.type == MT.APPEND]
    # Asked once: another trigger before the load completes asks nothing more.
    leader.step(Message(MT.HEARTBEAT_RESPONSE, NodeId(3), NodeId(1), Term(1)))
    assert leader.ready().load == []
    leader.entries_loaded(MemoryLog.slice(cold, Index(2), Index(4)))
    rd = leader.ready()
    sent = [m for m in rd.messages if m.dst == 3 and m.type == MT.APPEND]
    assert [e.index for e in sent[0].entries] == [2, 3, 4]
    net.cores[NodeId(3)].step(sent[0])
    net.stabilize()
    assert values_of(net.cores[NodeId(3)].log.entry(Index(4)).batch) == (b"c",)


def test_a_load_that_finds_nothing_is_asked_again_at_the_next_trigger_only() -> None:
    cold = ColdLog([])
    cfg = RaftConfig(id=NodeId(1), rng=random.Random(1))
    net = Net(RaftCore(cfg, cold, HardState(), Config(voters=ids(1, 2, 3))), make(2), make(3))
    leader = net.elect(1)
    net.down.add(NodeId(3))
    leader.propose(batch_of((b"a",)))
    net.stabilize()
    cold.cold = Index(2)
    assert beat_until_load(leader).load == [(2, 2)]
    leader.entries_loaded([])  # e.g. trimmed meanwhile: nothing to send, no busy loop
    assert not leader.has_ready()
    leader.step(Message(MT.HEARTBEAT_RESPONSE, NodeId(3), NodeId(1), Term(1)))
    assert leader.ready().load == [(2, 2)]


def test_a_pipelined_recovery_loads_its_next_window_while_appends_are_in_flight() -> None:
    cold = ColdLog([])
    cfg = RaftConfig(id=NodeId(1), rng=random.Random(1), max_append_entries=2,
                     max_recovery_inflight=2)
    net = Net(RaftCore(cfg, cold, HardState(), Config(voters=ids(1, 2, 3))), make(2), make(3))
    leader = net.elect(1)
    net.down.add(NodeId(3))
    for i in range(20):
        leader.propose(batch_of((b"v%d" % i,)))
    net.stabilize()
    cold.cold = leader.log.last_index()  # 21 entries, all on disk only
    net.down.clear()
    follower = net.cores[NodeId(3)]
    loads: list[tuple[int, int]] = []
    prefetched = 0
    rd = beat_until_load(leader)
    for _ in range(100):
        in_flight = [m for m in rd.messages if m.dst == 3 and m.type == MT.APPEND]
        leader.on_persisted(rd.mark)
        for lo, hi in rd.load:
            loads.append((lo, hi))
            prefetched += bool(in_flight)  # asked while appends are on their way
            leader.entries_loaded(MemoryLog.slice(cold, Index(lo), Index(hi)))
        for m in in_flight:
            follower.step(m)
        while follower.has_ready():
            frd = follower.ready()
            follower.on_persisted(frd.mark)
            for r in frd.messages + frd.messages_after_persist:
                leader.step(r)
        if leader.progress[NodeId(3)].match == leader.log.last_index():
            break
        rd = leader.ready()
    assert follower.log.last_index() == 21
    assert values_of(follower.log.entry(Index(21)).batch) == (b"v19",)
    assert prefetched  # the next window was read while the previous one was in flight
    # Every entry read once: what a load read and the window could not take yet is kept.
    assert sum(hi - lo + 1 for lo, hi in loads) == 20
    assert not leader._loaded  # nothing kept once recovery is over
