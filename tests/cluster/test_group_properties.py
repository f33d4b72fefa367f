"""Random interleavings of joins, syncs, heartbeats, commits, leaves, restarts, appends (some
failing) and time from several members, static and dynamic, checked against the coordinator's
invariants:

- at most one leader per generation (by identity: a static member keeps its place under a new
  member id), and the leader, only the leader, gets the member list, always the same one;
- generations never go back, and each is answered with the same leader to every member;
- every successful SyncGroup of generation g returns what g's leader assigned to that member;
- every request is answered exactly once, and eventually (no member is left waiting);
- an acknowledged commit came from a current member and generation (or a "simple" commit to a
  group without members).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from redshank.cluster.group import (
    GroupConfig,
    GroupCoordinator,
    GroupResult,
    GroupState,
    HeartbeatRequest,
    HeartbeatResult,
    JoinedMember,
    JoinGroupRequest,
    JoinGroupResult,
    LeaveGroupRequest,
    LeaveGroupResult,
    LeaveMember,
    MemoryHost,
    OffsetCommitPartition,
    OffsetCommitRequest,
    OffsetCommitResult,
    Protocol,
    SyncGroupRequest,
    SyncGroupResult,
)
from redshank.protocol.error_codes import ErrorCode

E = ErrorCode
GROUP = "g"
N_CLIENTS = 4


@dataclass
class Model:
    """One consumer's memory; clients 2 and 3 are static members."""

    index: int
    instance: str | None
    member_id: str = ""
    generation: int = -1
    leader_id: str = ""
    members: tuple[JoinedMember, ...] = ()
    session_ms: int = 1000
    rebalance_ms: int = 2000
    phase: str = "join"  # what a well-behaved client does next: join, sync or heartbeat

    def identity(self) -> str:
        return self.instance or self.member_id


def static_identity(member_id: str) -> str:
    """A static member's id is "<instance id>-<uuid>": its identity is the instance id."""
    return member_id[:-37] if member_id.startswith("static-") else member_id


def assignment(generation: int, identity: str) -> bytes:
    return f"{generation}:{identity}".encode()


class GroupMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self._start(initial_delay_ms=300)

    @initialize(initial_delay_ms=st.sampled_from([0, 300]))
    def start(self, initial_delay_ms: int) -> None:
        """Half the runs have no initial delay: joins then complete inside the request."""
        self._start(initial_delay_ms)

    def _start(self, initial_delay_ms: int) -> None:
        config = GroupConfig(
            initial_rebalance_delay_ms=initial_delay_ms,
            min_session_timeout_ms=100,
            new_member_join_timeout_ms=20_000,
            # Retention never runs here, so a group is never purged and recreated at generation 0.
            offsets_retention_check_interval_ms=10**12,
        )
        self.coord = GroupCoordinator(config, rng=random.Random(0))
        self.coord.begin_loading()
        self.host = MemoryHost(self.coord, auto_persist=False)
        self.host.apply(self.coord.finish_loading(0))
        self.clients = [
            Model(i, f"static-{i}" if i >= 2 else None, session_ms=2000 + 1000 * i,
                  rebalance_ms=3000 + 1000 * i)
            for i in range(N_CLIENTS)
        ]
        self.sent: dict[int, tuple[str, Model, object]] = {}  # token -> (kind, client, context)
        self.processed: set[int] = set()
        self.leaders: dict[int, str] = {}
        self.leader_lists: dict[int, frozenset[str]] = {}
        self.max_generation = 0

    # -- requests --------------------------------------------------------------------------

    def _send(self, kind: str, client: Model, context: object = None) -> int:
        token = self.host.token()
        self.sent[token] = (kind, client, context)
        return token

    @rule(i=st.integers(0, N_CLIENTS - 1), v4=st.booleans())
    def join(self, i: int, v4: bool) -> None:
        c = self.clients[i]
        token = self._send("join", c)
        self.host.call(self.coord.join_group, JoinGroupRequest(
            token, GROUP, c.member_id, "consumer", (Protocol("range", b"m%d" % i),),
            c.session_ms, c.rebalance_ms, client_id=f"client{i}", group_instance_id=c.instance,
            require_known_member_id=v4))

    @rule(i=st.integers(0, N_CLIENTS - 1))
    def sync(self, i: int) -> None:
        c = self.clients[i]
        given: tuple[tuple[str, bytes], ...] = ()
        if c.member_id and c.member_id == c.leader_id:
            given = tuple(
                (m.member_id, assignment(c.generation, m.group_instance_id or m.member_id))
                for m in c.members
            )
        token = self._send("sync", c, (c.generation, c.identity()))
        self.host.call(self.coord.sync_group, SyncGroupRequest(
            token, GROUP, c.generation, c.member_id, given, c.instance))

    @rule(i=st.integers(0, N_CLIENTS - 1))
    def heartbeat(self, i: int) -> None:
        c = self.clients[i]
        token = self._send("heartbeat", c)
        self.host.call(self.coord.heartbeat,
                       HeartbeatRequest(token, GROUP, c.generation, c.member_id, c.instance))

    @rule(i=st.integers(-1, N_CLIENTS - 1), offset=st.integers(0, 1000))
    def commit(self, i: int, offset: int) -> None:
        """i = -1: a "simple" commit (no generation, no member), as an admin tool sends."""
        c = self.clients[i] if i >= 0 else Model(-1, None)
        snap = self.coord.snapshot(GROUP)
        if c.generation < 0 and c.member_id == "" and c.instance is None:
            valid = snap is None or (snap.state is GroupState.EMPTY and not snap.members)
        else:
            valid = (
                snap is not None and c.member_id in snap.members
                and c.generation == snap.generation_id
            )
        token = self._send("commit", c, valid)
        self.host.call(self.coord.offset_commit, OffsetCommitRequest(
            token, GROUP, (OffsetCommitPartition("t", 0, offset),), c.generation, c.member_id,
            c.instance))

    @rule(i=st.integers(0, N_CLIENTS - 1), by_instance=st.booleans())
    def leave(self, i: int, by_instance: bool) -> None:
        c = self.clients[i]
        member = LeaveMember("" if by_instance else c.member_id, c.instance)
        token = self._send("leave", c)
        self.host.call(self.coord.leave_group, LeaveGroupRequest(token, GROUP, (member,)))

    def _play(self, i: int) -> None:
        """What a real consumer does next; the other rules add noise around it."""
        c = self.clients[i]
        if self.host.unpersisted:  # a healthy log keeps up with the requests
            self.host.persist_next()
        if c.phase == "join":
            self.join(i, True)
        elif c.phase == "sync":
            self.sync(i)
        else:
            self.heartbeat(i)

    # Several copies so well-behaved steps are common enough to reach Stable generations.
    @rule(i=st.integers(0, N_CLIENTS - 1))
    def play(self, i: int) -> None:
        self._play(i)

    @rule(i=st.integers(0, N_CLIENTS - 1))
    def play_again(self, i: int) -> None:
        self._play(i)

    @rule(i=st.integers(0, N_CLIENTS - 1))
    def play_more(self, i: int) -> None:
        self._play(i)

    @rule(i=st.integers(0, N_CLIENTS - 1))
    def restart(self, i: int) -> None:
        """The process restarts: it forgets its member id (a static member keeps its instance)."""
        c = self.clients[i]
        c.member_id, c.generation, c.leader_id, c.members = "", -1, "", ()
        c.phase = "join"

    @rule(ms=st.sampled_from([0, 1, 50, 299, 300, 700, 1500, 2500, 7000]))
    def advance(self, ms: int) -> None:
        self.host.advance(ms)

    @rule(error=st.sampled_from([E.NONE, E.NONE, E.NONE, E.NOT_LEADER_OR_FOLLOWER,
                                 E.NOT_ENOUGH_REPLICAS]))
    def persist(self, error: ErrorCode) -> None:
        if self.host.unpersisted:
            self.host.persist_next(error)

    # -- checks ----------------------------------------------------------------------------

    @invariant()
    def answers_are_consistent(self) -> None:
        for token, results in self.host.results.items():
            assert len(results) == 1, f"token {token} answered {len(results)} times: {results}"
            if token not in self.processed:
                self.processed.add(token)
                self._check(token, results[0])

    @invariant()
    def generations_only_grow(self) -> None:
        snap = self.coord.snapshot(GROUP)
        if snap is None:
            return
        assert snap.generation_id >= self.max_generation
        self.max_generation = snap.generation_id
        if snap.state in (GroupState.COMPLETING_REBALANCE, GroupState.STABLE):
            assert snap.leader_id in snap.members

    def _check(self, token: int, result: GroupResult) -> None:
        kind, c, context = self.sent[token]
        if kind == "join":
            assert isinstance(result, JoinGroupResult)
            self._joined(c, result)
        elif kind == "sync":
            assert isinstance(result, SyncGroupResult)
            assert isinstance(context, tuple)
            generation, identity = context
            if result.error is E.NONE:
                # The leader assigned (g, identity) to each member it was told about, else b"".
                assert generation in self.leader_lists, "a sync succeeded without a leader sync"
                expected = (assignment(generation, identity)
                            if identity in self.leader_lists[generation] else b"")
                assert result.assignment == expected
                c.phase = "heartbeat"
            else:
                c.phase = "join"
                if result.error in (E.UNKNOWN_MEMBER_ID, E.FENCED_INSTANCE_ID):
                    c.member_id = ""
        elif kind == "commit":
            assert isinstance(result, OffsetCommitResult)
            if any(p.error is E.NONE for p in result.partitions):
                assert context is True, "a commit from a stale member/generation was accepted"
        elif kind == "heartbeat":
            assert isinstance(result, HeartbeatResult)
            if result.error is not E.NONE:
                c.phase = "join"
            if result.error in (E.UNKNOWN_MEMBER_ID, E.FENCED_INSTANCE_ID):
                c.member_id = ""
        else:
            assert isinstance(result, LeaveGroupResult)
            c.phase = "join"

    def _joined(self, c: Model, r: JoinGroupResult) -> None:
        c.phase = "join"
        if r.error is E.MEMBER_ID_REQUIRED:
            assert r.member_id.startswith(f"client{c.index}-") and c.instance is None
            c.member_id = r.member_id
            return
        if r.error in (E.UNKNOWN_MEMBER_ID, E.FENCED_INSTANCE_ID):
            c.member_id = ""
            return
        if r.error is not E.NONE:
            return
        c.phase = "sync"
        g = r.generation_id
        assert g >= 1
        # A static member keeps its place (and leadership) under a new member id (KIP-345), so
        # leaders are compared by identity: the instance id, else the member id.
        leader = static_identity(r.leader_id)
        assert self.leaders.setdefault(g, leader) == leader, "two leaders in one generation"
        # The leader, and only the leader, gets the member list.
        assert bool(r.members) == (r.member_id == r.leader_id)
        if r.members:
            ids = frozenset(m.group_instance_id or m.member_id for m in r.members)
            assert self.leader_lists.setdefault(g, ids) == ids
            assert r.member_id in {m.member_id for m in r.members}
        c.member_id, c.generation, c.leader_id, c.members = r.member_id, g, r.leader_id, r.members

    def teardown(self) -> None:
        # Eventually: appends land and time passes; every request must then have its answer.
        for _ in range(30):
            self.host.persist_all()
            self.host.advance(5000)
        self.host.persist_all()
        self.answers_are_consistent()
        waiting = [t for t in self.sent if t not in self.host.results]
        assert not waiting, f"requests never answered: {[self.sent[t][0] for t in waiting]}"
        assert self.coord.appends_in_flight() == 0


GroupMachine.TestCase.settings = settings(
    GroupMachine.TestCase.settings, stateful_step_count=80, deadline=None
)
test_group_state_machine = GroupMachine.TestCase
