"""The group coordinator driven through the request sequences real clients send (kafka-clients
notes, section 2 and G7-G10), with a fake clock and an in-memory `__consumer_offsets` log."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from redshank.cluster.group import (
    NO_OFFSET,
    GroupConfig,
    GroupCoordinator,
    GroupState,
    HeartbeatRequest,
    HeartbeatResult,
    JoinGroupRequest,
    JoinGroupResult,
    LeaveGroupRequest,
    LeaveGroupResult,
    LeaveMember,
    MemoryHost,
    OffsetCommitPartition,
    OffsetCommitRequest,
    OffsetCommitResult,
    OffsetFetchGroup,
    OffsetFetchRequest,
    OffsetFetchResult,
    Protocol,
    SyncGroupRequest,
    SyncGroupResult,
)
from redshank.protocol.error_codes import ErrorCode

E = ErrorCode
RANGE_RR = (Protocol("range", b"sub-range"), Protocol("roundrobin", b"sub-rr"))


def new_host(delay: int = 3000, seed: int = 7, **cfg: int) -> MemoryHost:
    coord = GroupCoordinator(
        GroupConfig(initial_rebalance_delay_ms=delay, **cfg), rng=random.Random(seed)
    )
    coord.begin_loading()
    host = MemoryHost(coord)
    host.apply(coord.finish_loading(host.now_ms))
    return host


@dataclass
class Client:
    """What a consumer remembers between requests (member id, generation, leader)."""

    host: MemoryHost
    client_id: str
    group: str = "g"
    protocols: tuple[Protocol, ...] = RANGE_RR
    session_ms: int = 10_000
    rebalance_ms: int = 30_000
    instance: str | None = None
    require_id: bool = True  # JoinGroup v4+
    protocol_type: str = "consumer"
    member_id: str = ""
    generation: int = -1
    leader: str = ""
    last_join: JoinGroupResult | None = field(default=None, repr=False)

    def send_join(self) -> int:
        token = self.host.token()
        self.host.call(self.host.coordinator.join_group, JoinGroupRequest(
            token, self.group, self.member_id, self.protocol_type, self.protocols,
            self.session_ms, self.rebalance_ms, client_id=self.client_id,
            client_host="/127.0.0.1", group_instance_id=self.instance,
            require_known_member_id=self.require_id,
        ))
        return token

    def join(self) -> int:
        """JoinGroup, doing the MEMBER_ID_REQUIRED handshake (G7) like every client does."""
        token = self.send_join()
        first = self.host.result(token)
        if isinstance(first, JoinGroupResult) and first.error is E.MEMBER_ID_REQUIRED:
            assert first.member_id.startswith(self.client_id + "-")
            self.member_id = first.member_id
            token = self.send_join()
        return token

    def joined(self, token: int) -> JoinGroupResult:
        result = self.host.result(token)
        assert isinstance(result, JoinGroupResult), result
        if result.error is E.NONE:
            self.member_id, self.generation = result.member_id, result.generation_id
            self.leader = result.leader_id
        self.last_join = result
        return result

    def send_sync(self, assignments: dict[str, bytes] | None = None, v5: bool = False) -> int:
        token = self.host.token()
        last = self.last_join
        self.host.call(self.host.coordinator.sync_group, SyncGroupRequest(
            token, self.group, self.generation, self.member_id,
            tuple((assignments or {}).items()), self.instance,
            protocol_type=self.protocol_type if v5 else None,
            protocol_name=last.protocol_name if v5 and last else None,
        ))
        return token

    def synced(self, token: int) -> SyncGroupResult:
        result = self.host.result(token)
        assert isinstance(result, SyncGroupResult), result
        return result

    def heartbeat(self) -> ErrorCode:
        token = self.host.token()
        self.host.call(self.host.coordinator.heartbeat, HeartbeatRequest(
            token, self.group, self.generation, self.member_id, self.instance))
        result = self.host.result(token)
        assert isinstance(result, HeartbeatResult)
        return result.error

    def commit(self, offsets: dict[tuple[str, int], int], retention_ms: int = -1,
               metadata: str = "") -> dict[tuple[str, int], ErrorCode] | None:
        token = self.host.token()
        parts = tuple(OffsetCommitPartition(t, p, o, 5, metadata) for (t, p), o in offsets.items())
        self.host.call(self.host.coordinator.offset_commit, OffsetCommitRequest(
            token, self.group, parts, self.generation, self.member_id, self.instance,
            retention_ms))
        return commit_errors(self.host, token)

    def leave(self, batch: bool) -> LeaveGroupResult:
        token = self.host.token()
        member = LeaveMember(self.member_id, self.instance if batch else None)
        self.host.call(self.host.coordinator.leave_group,
                       LeaveGroupRequest(token, self.group, (member,)))
        result = self.host.result(token)
        assert isinstance(result, LeaveGroupResult)
        return result


def commit_errors(host: MemoryHost, token: int) -> dict[tuple[str, int], ErrorCode] | None:
    result = host.result(token)
    if result is None:
        return None
    assert isinstance(result, OffsetCommitResult)
    return {(p.topic, p.partition): p.error for p in result.partitions}


def fetch(host: MemoryHost, group: str = "g",
          topics: tuple[tuple[str, tuple[int, ...]], ...] | None = None,
          extra_groups: tuple[str, ...] = ()) -> dict[tuple[str, int], int]:
    token = host.token()
    groups = (OffsetFetchGroup(group, topics), *(OffsetFetchGroup(g) for g in extra_groups))
    host.call(host.coordinator.offset_fetch, OffsetFetchRequest(token, groups))
    result = host.result(token)
    assert isinstance(result, OffsetFetchResult)
    assert all(g.error is E.NONE for g in result.groups)
    return {(p.topic, p.partition): p.offset for p in result.groups[0].partitions}


def state(host: MemoryHost, group: str = "g") -> GroupState | None:
    snap = host.coordinator.snapshot(group)
    return None if snap is None else snap.state


def settle(host: MemoryHost, *tokens: int) -> None:
    """Let time pass (in 500 ms steps, at most a minute) until every token is answered."""
    for _ in range(120):
        if all(host.result(t) is not None for t in tokens):
            return
        host.advance(500)
    raise AssertionError(f"tokens still waiting: {[t for t in tokens if not host.result(t)]}")


def stable_single(host: MemoryHost, client: Client) -> None:
    """Join alone (waiting out the initial delay) and sync: generation 1, Stable."""
    token = client.join()
    host.advance(host.coordinator.config.initial_rebalance_delay_ms)
    assert client.joined(token).error is E.NONE
    sync = client.send_sync({client.member_id: b"assign-" + client.client_id.encode()})
    assert client.synced(sync).error is E.NONE


# ---------------------------------------------------------------------------------------------
# One consumer's whole life, as each client library sends it (notes section 2).


@dataclass(frozen=True)
class Profile:
    name: str
    require_id: bool  # JoinGroup v4+
    protocols: tuple[Protocol, ...]
    expect_protocol: str
    sync_v5: bool  # SyncGroup v5 carries protocol type and name
    multi_group_fetch: bool  # OffsetFetch v8+
    batch_leave: bool  # LeaveGroup v3+
    retention_ms: int = -1  # OffsetCommit v2-4


PROFILES = [
    # JoinGroup v5 <-79, JoinGroup v5, SyncGroup v3, Heartbeat v3, OffsetFetch v9, OffsetCommit v9,
    # OffsetFetch v9, LeaveGroup v1
    Profile("librdkafka-2.16", True, RANGE_RR, "range", False, True, False),
    # JoinGroup v5 <-79, JoinGroup v5, SyncGroup v3, Heartbeat v3, OffsetFetch v7, OffsetCommit v7,
    # LeaveGroup v1
    Profile("kcat-librdkafka-2.0.2", True, RANGE_RR, "range", False, False, False),
    # JoinGroup v7 <-79, JoinGroup v7, SyncGroup v5, OffsetFetch v8, Heartbeat v4, OffsetCommit v8,
    # LeaveGroup v5
    Profile("kafka-python-3.0", True, RANGE_RR, "range", True, True, True),
    # JoinGroup v5 <-79, JoinGroup v5, SyncGroup v3, OffsetFetch v3, Heartbeat v1, OffsetCommit v3
    # (retention_time_ms -1), LeaveGroup v1
    Profile("aiokafka-0.14", True, (Protocol("roundrobin", b"rr"),), "roundrobin", False, False,
            False),
    # JoinGroup v5 <-79, JoinGroup v5, SyncGroup v3, OffsetFetch v4, Heartbeat v3, OffsetCommit v5,
    # LeaveGroup v3
    Profile("kafkajs-2.2", True, (Protocol("RoundRobinAssigner", b"k"),), "RoundRobinAssigner",
            False, False, True),
    # A JoinGroup v0-3 client: no member-id handshake; OffsetCommit v2 with an explicit retention.
    Profile("join-v3-commit-v2", False, RANGE_RR, "range", False, False, False, 86_400_000),
]


@pytest.mark.parametrize("p", PROFILES, ids=lambda p: p.name)
def test_client_consumes_commits_and_leaves(p: Profile) -> None:
    host = new_host()
    c = Client(host, f"{p.name}-client", protocols=p.protocols, require_id=p.require_id)

    token = c.send_join()
    first = host.result(token)
    if p.require_id:
        assert isinstance(first, JoinGroupResult) and first.error is E.MEMBER_ID_REQUIRED
        assert first.member_id.startswith(c.client_id + "-") and first.generation_id == -1
        c.member_id = first.member_id
        token = c.send_join()
    # The group waits out the initial rebalance delay, and not a millisecond longer.
    assert host.result(token) is None
    host.advance(2999)
    assert host.result(token) is None
    host.advance(1)
    joined = c.joined(token)
    assert (joined.error, joined.generation_id, joined.leader_id) == (E.NONE, 1, c.member_id)
    assert joined.protocol_type == "consumer" and joined.protocol_name == p.expect_protocol
    assert [(m.member_id, m.metadata) for m in joined.members] == [
        (c.member_id, p.protocols[0].metadata)
    ]

    sync = c.send_sync({c.member_id: b"topic-a:0,1"}, v5=p.sync_v5)
    assert c.synced(sync) == SyncGroupResult(E.NONE, b"topic-a:0,1", "consumer", p.expect_protocol)
    assert state(host) is GroupState.STABLE
    assert c.heartbeat() is E.NONE
    if p.multi_group_fetch:
        assert fetch(host, topics=(("topic-a", (0, 1)),), extra_groups=("other",)) == {
            ("topic-a", 0): NO_OFFSET, ("topic-a", 1): NO_OFFSET}
    else:
        assert fetch(host, topics=(("topic-a", (0, 1)),)) == {
            ("topic-a", 0): NO_OFFSET, ("topic-a", 1): NO_OFFSET}
    host.advance(3000)
    assert c.heartbeat() is E.NONE
    assert c.commit({("topic-a", 0): 42, ("topic-a", 1): 7}, p.retention_ms) == {
        ("topic-a", 0): E.NONE, ("topic-a", 1): E.NONE}
    assert fetch(host) == {("topic-a", 0): 42, ("topic-a", 1): 7}

    left = c.leave(p.batch_leave)
    assert left.error is E.NONE and [m.error for m in left.members] == [E.NONE]
    # Its only member left: the group empties at once (no needless wait) into generation 2.
    snap = host.coordinator.snapshot("g")
    assert snap is not None and (snap.state, snap.generation_id, snap.members) == (
        GroupState.EMPTY, 2, ())
    assert c.heartbeat() is E.UNKNOWN_MEMBER_ID


def test_short_initial_delay_serves_a_lone_subscriber_quickly() -> None:
    host = new_host(delay=100)
    c = Client(host, "solo")
    token = c.join()
    host.advance(100)
    assert c.joined(token).generation_id == 1
    host2 = new_host(delay=0)
    c2 = Client(host2, "solo")
    assert c2.joined(c2.join()).generation_id == 1  # no timer at all


def test_initial_delay_is_extended_by_each_new_member_up_to_the_rebalance_timeout() -> None:
    host = new_host(delay=3000)
    a, b, c = (Client(host, n, rebalance_ms=10_000) for n in "abc")
    ta = a.join()
    host.advance(2000)
    tb = b.join()
    host.advance(3000)  # t=5000: the first delay ended at 3000 and was extended to 6000
    assert host.result(ta) is None
    tc = c.join()
    host.advance(3999)  # t=8999: extended once more, to 9000 (the 10 s timeout caps it)
    assert host.result(ta) is None
    host.advance(1)
    results = [x.joined(t) for x, t in ((a, ta), (b, tb), (c, tc))]
    assert {r.generation_id for r in results} == {1}
    assert [len(r.members) for r in results] == [3, 0, 0]


# ---------------------------------------------------------------------------------------------
# Rebalances.


def test_two_member_group_rebalances_when_one_joins_and_one_leaves() -> None:
    host = new_host()
    a, b = Client(host, "a"), Client(host, "b")
    stable_single(host, a)

    tb = b.join()
    # librdkafka: Heartbeat <-27, OffsetCommit (allowed while preparing), JoinGroup.
    assert a.heartbeat() is E.REBALANCE_IN_PROGRESS
    assert a.commit({("t", 0): 10}) == {("t", 0): E.NONE}
    ta = a.send_join()
    ja, jb = a.joined(ta), b.joined(tb)
    assert ja.generation_id == jb.generation_id == 2
    assert ja.leader_id == jb.leader_id == a.member_id
    assert {m.member_id for m in ja.members} == {a.member_id, b.member_id} and jb.members == ()

    # The follower's SyncGroup waits for the leader's.
    sb = b.send_sync()
    assert host.result(sb) is None
    sa = a.send_sync({a.member_id: b"p0", b.member_id: b"p1"})
    assert a.synced(sa).assignment == b"p0" and b.synced(sb).assignment == b"p1"

    assert a.leave(batch=False).error is E.NONE
    assert b.heartbeat() is E.REBALANCE_IN_PROGRESS
    jb3 = b.joined(b.send_join())  # the only member left has rejoined: no waiting
    assert (jb3.generation_id, jb3.leader_id) == (3, b.member_id)
    assert [m.member_id for m in jb3.members] == [b.member_id]
    assert b.synced(b.send_sync({b.member_id: b"p0,p1"})).assignment == b"p0,p1"
    assert fetch(host) == {("t", 0): 10}


def test_member_evicted_by_session_timeout_triggers_rebalance() -> None:
    host = new_host()
    a, b = Client(host, "a"), Client(host, "b", session_ms=10_000)
    ta, tb = a.join(), b.join()
    settle(host, ta, tb)
    a.joined(ta), b.joined(tb)
    sb = b.send_sync()
    a.send_sync({a.member_id: b"x", b.member_id: b"y"})
    assert b.synced(sb).assignment == b"y"
    # a keeps heartbeating every 3 s; b goes silent.
    for _ in range(3):
        host.advance(3000)
        assert a.heartbeat() is E.NONE
    host.advance(1000)  # t = 3000 + 10000: b's session expired
    snap = host.coordinator.snapshot("g")
    assert snap is not None and snap.members == (a.member_id,)
    assert snap.state is GroupState.PREPARING_REBALANCE
    assert a.heartbeat() is E.REBALANCE_IN_PROGRESS
    ja = a.joined(a.send_join())
    assert ja.generation_id == 2 and [m.member_id for m in ja.members] == [a.member_id]
    assert b.heartbeat() is E.UNKNOWN_MEMBER_ID


def test_pending_member_id_expires_after_the_session_timeout() -> None:
    host = new_host()
    c = Client(host, "slow", session_ms=6000)
    first = host.result(c.send_join())
    assert isinstance(first, JoinGroupResult) and first.error is E.MEMBER_ID_REQUIRED
    snap = host.coordinator.snapshot("g")
    assert snap is not None and snap.pending_members == (first.member_id,)
    host.advance(6000)
    snap = host.coordinator.snapshot("g")
    assert snap is not None and snap.pending_members == ()
    c.member_id = first.member_id
    assert c.joined(c.send_join()).error is E.UNKNOWN_MEMBER_ID


def test_rebalance_timeout_drops_members_that_do_not_rejoin() -> None:
    host = new_host()
    a = Client(host, "a", rebalance_ms=20_000)
    b = Client(host, "b", session_ms=60_000, rebalance_ms=20_000)
    ta, tb = a.join(), b.join()
    settle(host, ta, tb)
    a.joined(ta), b.joined(tb)
    sb = b.send_sync()
    a.send_sync({a.member_id: b"x", b.member_id: b"y"})
    b.synced(sb)
    ta = a.send_join()  # the leader asks for a new generation; b never rejoins
    host.advance(19_999)
    assert host.result(ta) is None
    host.advance(1)
    ja = a.joined(ta)
    assert ja.generation_id == 2 and [m.member_id for m in ja.members] == [a.member_id]


def test_leader_that_never_syncs_is_removed_and_followers_are_told_to_rejoin() -> None:
    host = new_host()
    a, b = Client(host, "a", rebalance_ms=15_000), Client(host, "b", rebalance_ms=15_000)
    ta, tb = a.join(), b.join()
    settle(host, ta, tb)
    a.joined(ta), b.joined(tb)
    sb = b.send_sync()
    host.advance(15_000)  # the pending-sync timeout: a never sent SyncGroup
    assert b.synced(sb).error is E.REBALANCE_IN_PROGRESS
    jb = b.joined(b.send_join())
    assert (jb.generation_id, jb.leader_id) == (2, b.member_id)


def test_leader_leaving_during_completing_rebalance_releases_waiting_followers() -> None:
    host = new_host()
    a, b = Client(host, "a"), Client(host, "b")
    ta, tb = a.join(), b.join()
    settle(host, ta, tb)
    a.joined(ta), b.joined(tb)
    sb = b.send_sync()
    a.leave(batch=True)
    assert b.synced(sb).error is E.REBALANCE_IN_PROGRESS


def test_static_member_rejoins_with_same_instance_id_without_rebalance() -> None:
    host = new_host()
    a = Client(host, "a", instance="host-1")
    b = Client(host, "b", instance="host-2")
    ta = a.join()
    tb = b.join()
    # Static members skip the MEMBER_ID_REQUIRED step (KIP-345).
    assert host.result(ta) is None and host.result(tb) is None
    settle(host, ta, tb)
    a.joined(ta), b.joined(tb)
    sb = b.send_sync()
    a.send_sync({a.member_id: b"A", b.member_id: b"B"})
    assert b.synced(sb).assignment == b"B"
    old_id = a.member_id

    # a restarts: no member id, same instance id. Same generation; b is not disturbed.
    a2 = Client(host, "a", instance="host-1")
    j = a2.joined(a2.send_join())
    assert j.error is E.NONE and j.generation_id == 1 and j.member_id != old_id
    assert j.leader_id == old_id  # the old leader id: a2 must not compute a new assignment
    assert state(host) is GroupState.STABLE
    assert b.heartbeat() is E.NONE
    assert a.heartbeat() is E.FENCED_INSTANCE_ID
    assert a2.heartbeat() is E.NONE
    assert a2.synced(a2.send_sync()).assignment == b"A"
    assert a.commit({("t", 0): 1}) == {("t", 0): E.FENCED_INSTANCE_ID}


def test_static_member_missing_a_rebalance_keeps_its_membership() -> None:
    host = new_host()
    a = Client(host, "a")
    s = Client(host, "s", instance="host-s", session_ms=60_000, rebalance_ms=10_000)
    ta, ts = a.join(), s.join()
    settle(host, ta, ts)
    a.joined(ta), s.joined(ts)
    ss = s.send_sync()
    a.send_sync({a.member_id: b"A", s.member_id: b"S"})
    s.synced(ss)
    ta = a.send_join()  # rebalance; the static member does not rejoin in time
    host.advance(30_000)
    ja = a.joined(ta)
    assert ja.generation_id == 2
    assert {m.member_id for m in ja.members} == {a.member_id, s.member_id}


# ---------------------------------------------------------------------------------------------
# Errors (G8, G9).


def test_errors_for_stale_generation_unknown_member_and_bad_requests() -> None:
    host = new_host()
    a, b = Client(host, "a"), Client(host, "b")
    stable_single(host, a)
    gen = a.generation

    stale = Client(host, "a", member_id=a.member_id, generation=gen - 1)
    assert stale.heartbeat() is E.ILLEGAL_GENERATION
    assert stale.synced(stale.send_sync()).error is E.ILLEGAL_GENERATION
    assert stale.commit({("t", 0): 1}) == {("t", 0): E.ILLEGAL_GENERATION}

    ghost = Client(host, "ghost", member_id="ghost-1", generation=gen)
    assert ghost.heartbeat() is E.UNKNOWN_MEMBER_ID
    assert ghost.synced(ghost.send_sync()).error is E.UNKNOWN_MEMBER_ID
    assert ghost.commit({("t", 0): 1}) == {("t", 0): E.UNKNOWN_MEMBER_ID}
    assert ghost.joined(ghost.send_join()).error is E.UNKNOWN_MEMBER_ID
    assert ghost.leave(batch=True).members[0].error is E.UNKNOWN_MEMBER_ID
    simple = Client(host, "admin")  # generation -1, no member id, but the group has members
    assert simple.commit({("t", 0): 1}) == {("t", 0): E.UNKNOWN_MEMBER_ID}
    nowhere = Client(host, "x", group="no-such-group", member_id="m", generation=3)
    assert nowhere.commit({("t", 0): 1}) == {("t", 0): E.ILLEGAL_GENERATION}
    assert nowhere.heartbeat() is E.UNKNOWN_MEMBER_ID
    assert nowhere.joined(nowhere.send_join()).error is E.UNKNOWN_MEMBER_ID

    for session in (5999, 1_800_001):
        bad = Client(host, "b", session_ms=session)
        assert bad.joined(bad.send_join()).error is E.INVALID_SESSION_TIMEOUT
    other = Client(host, "o", protocols=(Protocol("sticky", b""),))
    assert other.joined(other.send_join()).error is E.INCONSISTENT_GROUP_PROTOCOL
    connect = Client(host, "c", protocol_type="connect")
    assert connect.joined(connect.send_join()).error is E.INCONSISTENT_GROUP_PROTOCOL
    nameless = Client(host, "n", group="")
    assert nameless.joined(nameless.send_join()).error is E.INVALID_GROUP_ID
    assert host.coordinator.snapshot("") is None

    # During a rebalance: sync gets 27; in CompletingRebalance a commit gets 27.
    tb = b.join()
    assert a.synced(a.send_sync()).error is E.REBALANCE_IN_PROGRESS
    ta = a.send_join()
    a.joined(ta), b.joined(tb)
    assert b.commit({("t", 0): 1}) == {("t", 0): E.REBALANCE_IN_PROGRESS}
    assert b.heartbeat() is E.NONE  # heartbeats are fine while waiting for the assignment
    wrong_name = Client(host, "b", member_id=b.member_id, generation=b.generation,
                        last_join=JoinGroupResult(E.NONE, protocol_name="roundrobin"))
    assert wrong_name.synced(wrong_name.send_sync(v5=True)).error is (
        E.INCONSISTENT_GROUP_PROTOCOL)


def test_coordinator_status_errors_loading_not_coordinator_and_resign() -> None:
    coord = GroupCoordinator(GroupConfig(initial_rebalance_delay_ms=0), partition=0,
                             num_partitions=50, rng=random.Random(1))
    host = MemoryHost(coord)
    # "hello" hashes to partition 22 of 50, "polygenelubricants" to 0.
    mine, theirs = "polygenelubricants", "hello"
    c = Client(host, "c", group=mine)
    assert c.joined(c.send_join()).error is E.NOT_COORDINATOR  # not the leader yet
    coord.begin_loading()
    assert c.joined(c.send_join()).error is E.COORDINATOR_LOAD_IN_PROGRESS
    token = host.token()
    host.call(coord.offset_fetch, OffsetFetchRequest(token, (OffsetFetchGroup(mine),)))
    res = host.result(token)
    assert isinstance(res, OffsetFetchResult)
    assert res.groups[0].error is E.COORDINATOR_LOAD_IN_PROGRESS
    host.apply(coord.finish_loading(host.now_ms))
    elsewhere = Client(host, "c", group=theirs)
    assert elsewhere.joined(elsewhere.send_join()).error is E.NOT_COORDINATOR

    # A join waiting for a rebalance when leadership moves is answered NOT_COORDINATOR.
    a, b = Client(host, "a", group=mine), Client(host, "b", group=mine)
    a.joined(a.join())
    a.send_sync({a.member_id: b""})
    tb = b.join()
    assert host.result(tb) is None
    host.apply(coord.resign(host.now_ms))
    assert b.joined(tb).error is E.NOT_COORDINATOR
    assert coord.next_deadline_ms() is None and coord.group_ids() == []


def test_many_heartbeats_then_silence_expires_exactly_one_session_later() -> None:
    # Each heartbeat moves the deadline (and leaves a stale timer entry behind to be skipped).
    host = new_host(delay=0)
    c = Client(host, "c", session_ms=6000)
    c.joined(c.join())
    c.synced(c.send_sync({c.member_id: b"a"}))
    for _ in range(500):
        host.advance(100)
        assert c.heartbeat() is E.NONE
    last = host.now_ms
    host.advance(5999)
    assert state(host) is GroupState.STABLE
    host.advance(1)
    assert host.now_ms == last + 6000 and state(host) is GroupState.EMPTY


def test_protocol_is_chosen_by_member_votes_among_common_protocols() -> None:
    host = new_host(delay=0)
    rr_first = (Protocol("roundrobin", b"rr"), Protocol("range", b"r"))
    a = Client(host, "a", protocols=(Protocol("range", b"r"), Protocol("roundrobin", b"rr"),
                                     Protocol("sticky", b"s")))
    b, c = Client(host, "b", protocols=rr_first), Client(host, "c", protocols=rr_first)
    ta = a.join()
    a.joined(ta)
    tb, tc = b.join(), c.join()
    ta = a.send_join()
    results = [x.joined(t) for x, t in ((a, ta), (b, tb), (c, tc))]
    # range and roundrobin are common ("sticky" is not); roundrobin wins two votes to one.
    assert {r.protocol_name for r in results} == {"roundrobin"}
    assert results[0].leader_id == a.member_id  # the first member leads...
    assert [m.metadata for m in results[0].members] == [b"rr", b"rr", b"rr"]  # ...and sees all


def test_batch_leave_reports_each_member() -> None:
    host = new_host(delay=0)
    a, s = Client(host, "a"), Client(host, "s", instance="host-s")
    a.join()  # generation 1 at once (no delay)...
    ts = s.join()  # ...then a static member's join starts a rebalance that waits for a
    pending = host.result(Client(host, "p").send_join())
    assert isinstance(pending, JoinGroupResult) and pending.error is E.MEMBER_ID_REQUIRED
    token = host.token()
    host.call(host.coordinator.leave_group, LeaveGroupRequest(token, "g", (
        LeaveMember(a.member_id), LeaveMember("", "host-s"), LeaveMember(pending.member_id),
        LeaveMember("nobody"), LeaveMember("", "no-such-instance"),
        LeaveMember("someone-else", "host-s"),
    )))
    res = host.result(token)
    assert isinstance(res, LeaveGroupResult) and res.error is E.NONE
    assert [m.error for m in res.members] == [
        E.NONE, E.NONE, E.NONE, E.UNKNOWN_MEMBER_ID, E.UNKNOWN_MEMBER_ID, E.UNKNOWN_MEMBER_ID]
    snap = host.coordinator.snapshot("g")
    assert snap is not None and (snap.members, snap.pending_members) == ((), ())
    assert snap.state is GroupState.EMPTY
    assert s.joined(ts).error is E.UNKNOWN_MEMBER_ID  # its waiting join is answered


def test_multi_group_offset_fetch_answers_each_group() -> None:
    coord = GroupCoordinator(GroupConfig(), partition=0, num_partitions=50)
    coord.begin_loading()
    host = MemoryHost(coord)
    host.apply(coord.finish_loading(0))
    # "polygenelubricants" lives on partition 0 (ours); "hello" on partition 22.
    c = Client(host, "c", group="polygenelubricants")
    assert c.commit({("t", 0): 9}) == {("t", 0): E.NONE}
    token = host.token()
    host.call(coord.offset_fetch, OffsetFetchRequest(token, (
        OffsetFetchGroup("polygenelubricants"), OffsetFetchGroup("hello", (("t", (0,)),)))))
    res = host.result(token)
    assert isinstance(res, OffsetFetchResult)
    ours, theirs = res.groups
    assert (ours.error, [(p.topic, p.partition, p.offset) for p in ours.partitions]) == (
        E.NONE, [("t", 0, 9)])
    assert (theirs.group_id, theirs.error, theirs.partitions) == ("hello", E.NOT_COORDINATOR, ())


def test_group_max_size_and_superseded_join() -> None:
    host = new_host(delay=1000, max_group_size=2)
    a, b, c = Client(host, "a"), Client(host, "b"), Client(host, "c")
    ta = a.join()
    b.join()
    third = host.result(c.send_join())
    assert isinstance(third, JoinGroupResult) and third.error is E.GROUP_MAX_SIZE_REACHED
    # A client that gives up on a waiting JoinGroup and sends another: the first is answered.
    ta2 = a.send_join()
    assert a.joined(ta).error is E.REBALANCE_IN_PROGRESS
    host.advance(2000)
    assert a.joined(ta2).error is E.NONE


def test_resign_answers_requests_waiting_for_an_append() -> None:
    host = new_host(delay=0)
    host.auto_persist = False
    c = Client(host, "c")
    token = c.join()
    c.joined(token)
    sync = c.send_sync({c.member_id: b"x"})
    admin = Client(host, "admin", group="other")
    assert admin.commit({("t", 0): 1}) is None  # waits for its append (and so does the sync)
    commit_token = host.token() - 1
    host.apply(host.coordinator.resign(host.now_ms))
    assert c.synced(sync).error is E.NOT_COORDINATOR
    assert host.result(commit_token).partitions[0].error is E.NOT_COORDINATOR
    host.unpersisted.clear()  # the new leader's log decides; our appends are moot
    assert host.coordinator.appends_in_flight() == 0
