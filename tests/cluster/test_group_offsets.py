"""Offsets and persistence: commit only after the append, fetch, reload from `__consumer_offsets`
records, retention, DeleteGroups, OffsetDelete, DescribeGroups and ListGroups."""

from __future__ import annotations

import random
import struct

from redshank.cluster.group import (
    NO_OFFSET,
    DeleteGroupsRequest,
    DeleteGroupsResult,
    DescribeGroupsRequest,
    DescribeGroupsResult,
    GroupConfig,
    GroupCoordinator,
    GroupDeletion,
    GroupRecord,
    GroupState,
    HeartbeatRequest,
    JoinGroupRequest,
    JoinGroupResult,
    ListGroupsRequest,
    ListGroupsResult,
    MemoryHost,
    OffsetCommitPartition,
    OffsetCommitRequest,
    OffsetCommitResult,
    OffsetDeleteRequest,
    OffsetDeleteResult,
    OffsetFetchGroup,
    OffsetFetchRequest,
    OffsetFetchResult,
    Protocol,
    SyncGroupRequest,
    SyncGroupResult,
)
from redshank.cluster.group.group_records import GroupKey, OffsetKey, decode_key
from redshank.protocol.error_codes import ErrorCode

E = ErrorCode
DAY = 24 * 3600 * 1000
CFG = GroupConfig(initial_rebalance_delay_ms=0, offsets_retention_ms=DAY,
                  offsets_retention_check_interval_ms=60_000)


def new_host(records: list[GroupRecord] | None = None, now_ms: int = 0,
             auto_persist: bool = True) -> MemoryHost:
    coord = GroupCoordinator(CFG, rng=random.Random(3))
    coord.begin_loading()
    coord.load(records or [])
    host = MemoryHost(coord, now_ms=now_ms, auto_persist=auto_persist)
    host.apply(coord.finish_loading(now_ms))
    return host


def commit(host: MemoryHost, group: str, offsets: dict[tuple[str, int], int], generation: int = -1,
           member: str = "", retention_ms: int = -1, metadata: str = "m") -> int:
    token = host.token()
    parts = tuple(OffsetCommitPartition(t, p, o, 3, metadata) for (t, p), o in offsets.items())
    host.call(host.coordinator.offset_commit,
              OffsetCommitRequest(token, group, parts, generation, member,
                                  retention_time_ms=retention_ms))
    return token


def commit_result(host: MemoryHost, token: int) -> dict[tuple[str, int], ErrorCode] | None:
    res = host.result(token)
    if res is None:
        return None
    assert isinstance(res, OffsetCommitResult)
    return {(p.topic, p.partition): p.error for p in res.partitions}


def fetch(host: MemoryHost, group: str,
          topics: tuple[tuple[str, tuple[int, ...]], ...] | None = None) -> dict[
              tuple[str, int], tuple[int, int, str | None]]:
    token = host.token()
    host.call(host.coordinator.offset_fetch,
              OffsetFetchRequest(token, (OffsetFetchGroup(group, topics),)))
    res = host.result(token)
    assert isinstance(res, OffsetFetchResult) and res.groups[0].error is E.NONE
    return {(p.topic, p.partition): (p.offset, p.leader_epoch, p.metadata)
            for p in res.groups[0].partitions}


def stable_member(host: MemoryHost, group: str = "g",
                  session_ms: int = 10_000, metadata: bytes = b"meta") -> tuple[str, int]:
    """A one-member group through the real handshake: returns (member id, generation)."""
    def join(member_id: str) -> JoinGroupResult:
        token = host.token()
        host.call(host.coordinator.join_group, JoinGroupRequest(
            token, group, member_id, "consumer", (Protocol("range", metadata),), session_ms, 20_000,
            client_id="c"))
        res = host.result(token)
        assert isinstance(res, JoinGroupResult)
        return res
    joined = join(join("").member_id)
    token = host.token()
    host.call(host.coordinator.sync_group, SyncGroupRequest(
        token, group, joined.generation_id, joined.member_id,
        ((joined.member_id, b"assignment"),)))
    res = host.result(token)
    assert isinstance(res, SyncGroupResult) and res.error is E.NONE
    return joined.member_id, joined.generation_id


def test_simple_commit_fetch_all_and_named_partitions() -> None:
    host = new_host()
    t = commit(host, "simple", {("a", 0): 5, ("a", 1): 6, ("b", 0): 7})
    assert commit_result(host, t) == {("a", 0): E.NONE, ("a", 1): E.NONE, ("b", 0): E.NONE}
    assert fetch(host, "simple") == {
        ("a", 0): (5, 3, "m"), ("a", 1): (6, 3, "m"), ("b", 0): (7, 3, "m")}
    assert fetch(host, "simple", (("a", (1, 9)),)) == {
        ("a", 1): (6, 3, "m"), ("a", 9): (NO_OFFSET, -1, "")}
    assert fetch(host, "never-seen") == {}
    assert host.coordinator.snapshot("simple") is not None
    assert host.coordinator.snapshot("simple").protocol_type is None


def test_oversized_metadata_is_refused_per_partition() -> None:
    host = new_host()
    token = host.token()
    parts = (OffsetCommitPartition("a", 0, 1, -1, "x" * 4097),
             OffsetCommitPartition("a", 1, 2, -1, "ok"))
    host.call(host.coordinator.offset_commit, OffsetCommitRequest(token, "g", parts))
    assert commit_result(host, token) == {
        ("a", 0): E.OFFSET_METADATA_TOO_LARGE, ("a", 1): E.NONE}
    assert fetch(host, "g") == {("a", 1): (2, -1, "ok")}


def test_commit_is_acknowledged_and_visible_only_after_the_append() -> None:
    host = new_host(auto_persist=False)
    t1 = commit(host, "g", {("a", 0): 10})
    assert commit_result(host, t1) is None
    assert fetch(host, "g") == {}
    host.persist_next()
    assert commit_result(host, t1) == {("a", 0): E.NONE}
    assert fetch(host, "g") == {("a", 0): (10, 3, "m")}
    # A failed append (leadership lost) is NOT_COORDINATOR and changes nothing.
    t2 = commit(host, "g", {("a", 0): 11})
    host.persist_next(E.NOT_LEADER_OR_FOLLOWER)
    assert commit_result(host, t2) == {("a", 0): E.NOT_COORDINATOR}
    t3 = commit(host, "g", {("a", 0): 12})
    host.persist_next(E.MESSAGE_TOO_LARGE)
    assert commit_result(host, t3) == {("a", 0): E.INVALID_COMMIT_OFFSET_SIZE}
    assert fetch(host, "g") == {("a", 0): (10, 3, "m")}


def test_sync_completes_only_after_the_group_record_is_persisted() -> None:
    host = new_host(auto_persist=False)
    token = host.token()
    host.call(host.coordinator.join_group, JoinGroupRequest(
        token, "g", "", "consumer", (Protocol("range", b""),), 10_000, 10_000,
        require_known_member_id=False))
    joined = host.result(token)
    assert isinstance(joined, JoinGroupResult) and joined.generation_id == 1
    sync = host.token()
    host.call(host.coordinator.sync_group, SyncGroupRequest(
        sync, "g", 1, joined.member_id, ((joined.member_id, b"A"),)))
    assert host.result(sync) is None and len(host.unpersisted) == 1
    # The append fails: the member is told, and the group rebalances.
    host.persist_next(E.NOT_ENOUGH_REPLICAS)
    res = host.result(sync)
    assert isinstance(res, SyncGroupResult) and res.error is E.COORDINATOR_NOT_AVAILABLE
    assert host.coordinator.snapshot("g").state is (
        GroupState.PREPARING_REBALANCE)


def test_group_and_offsets_reload_from_records() -> None:
    host = new_host()
    member, generation = stable_member(host)
    t = commit(host, "g", {("a", 0): 100, ("a", 1): 200}, generation, member)
    assert commit_result(host, t) == {("a", 0): E.NONE, ("a", 1): E.NONE}
    commit(host, "g", {("a", 0): 150}, generation, member)
    commit(host, "simple", {("b", 0): 1})
    keys = [decode_key(r.key) for r in host.log]
    assert GroupKey("g") in keys and OffsetKey("g", "a", 0) in keys

    # A new coordinator (a restart, or a new leader) replays the partition.
    host2 = new_host(host.log, now_ms=host.now_ms)
    assert fetch(host2, "g") == {("a", 0): (150, 3, "m"), ("a", 1): (200, 3, "m")}
    assert fetch(host2, "simple") == {("b", 0): (1, 3, "m")}
    snap = host2.coordinator.snapshot("g")
    assert snap is not None
    assert (snap.state, snap.generation_id, snap.members, snap.leader_id, snap.protocol_name) == (
        GroupState.STABLE, generation, (member,), member, "range")
    # The member carries on where it was: heartbeats, and its assignment is still there.
    token = host2.token()
    host2.call(host2.coordinator.heartbeat, HeartbeatRequest(token, "g", generation, member))
    assert host2.result(token).error is E.NONE
    token = host2.token()
    host2.call(host2.coordinator.sync_group, SyncGroupRequest(token, "g", generation, member))
    assert host2.result(token) == SyncGroupResult(E.NONE, b"assignment", "consumer", "range")
    # A loaded member that stops heartbeating still expires.
    host2.advance(10_000)
    assert host2.coordinator.snapshot("g").state is GroupState.EMPTY


def test_retention_expires_offsets_of_empty_groups_then_the_group() -> None:
    host = new_host()
    member, generation = stable_member(host, "live", session_ms=1_800_000)
    commit(host, "live", {("a", 0): 1}, generation, member)
    commit(host, "simple", {("a", 0): 2})
    commit(host, "short", {("a", 0): 3}, retention_ms=3_600_000)  # OffsetCommit v2-4
    for i in range(75):  # a day and an hour, heartbeating every 20 minutes
        host.advance(1_200_000)
        token = host.token()
        host.call(host.coordinator.heartbeat, HeartbeatRequest(token, "live", generation, member))
        if i == 5:  # two hours: only the commit with an explicit one-hour retention is gone
            assert host.coordinator.snapshot("short") is None
            assert fetch(host, "simple") == {("a", 0): (2, 3, "m")}
    assert host.coordinator.snapshot("simple") is None  # simple group: a day after the commit
    assert fetch(host, "live") == {("a", 0): (1, 3, "m")}  # a live group keeps its offsets
    # Tombstones reached the log: a reload agrees.
    host2 = new_host(host.log, now_ms=host.now_ms)
    assert host2.coordinator.group_ids() == ["live"]


def test_retention_of_an_empty_consumer_group_counts_from_when_it_emptied() -> None:
    host = new_host()
    member, generation = stable_member(host)
    commit(host, "g", {("a", 0): 1}, generation, member)
    host.advance(DAY // 2)  # the member expired long ago; the group emptied at t=10 s
    assert host.coordinator.snapshot("g").state is GroupState.EMPTY
    host.advance(DAY // 2)
    assert fetch(host, "g") == {("a", 0): (1, 3, "m")}
    host.advance(60_000)
    assert host.coordinator.snapshot("g") is None


def delete(host: MemoryHost, *groups: str) -> dict[str, ErrorCode] | None:
    token = host.token()
    host.call(host.coordinator.delete_groups, DeleteGroupsRequest(token, groups))
    res = host.result(token)
    if res is None:
        return None
    assert isinstance(res, DeleteGroupsResult)
    return {r.group_id: r.error for r in res.results}


def test_delete_groups_only_empty_ones() -> None:
    host = new_host()
    stable_member(host, "busy")
    commit(host, "idle", {("a", 0): 1})
    assert delete(host, "busy", "idle", "ghost") == {
        "busy": E.NON_EMPTY_GROUP, "idle": E.NONE, "ghost": E.GROUP_ID_NOT_FOUND}
    assert fetch(host, "idle") == {}
    assert delete(host, "idle") == {"idle": E.GROUP_ID_NOT_FOUND}
    host2 = new_host(host.log)
    assert host2.coordinator.group_ids() == ["busy"]


def test_delete_groups_answers_after_the_tombstones_are_persisted() -> None:
    host = new_host(auto_persist=False)
    t = commit(host, "idle", {("a", 0): 1})
    host.persist_all()
    assert commit_result(host, t) == {("a", 0): E.NONE}
    assert delete(host, "idle") is None  # the tombstones are not durable yet
    assert host.coordinator.snapshot("idle") is None
    host.persist_all()
    assert host.result(host.token() - 1) == DeleteGroupsResult((GroupDeletion("idle", E.NONE),))


def test_describe_and_list_groups() -> None:
    host = new_host()
    member, _ = stable_member(host, "g")
    commit(host, "simple", {("a", 0): 1})
    token = host.token()
    host.call(host.coordinator.describe_groups,
              DescribeGroupsRequest(token, ("g", "simple", "nope")))
    res = host.result(token)
    assert isinstance(res, DescribeGroupsResult)
    g, simple, nope = res.groups
    assert (g.state, g.protocol_type, g.protocol_name) == ("Stable", "consumer", "range")
    assert [(m.member_id, m.client_id, m.metadata, m.assignment) for m in g.members] == [
        (member, "c", b"meta", b"assignment")]
    assert (simple.state, simple.protocol_type, simple.members) == ("Empty", "", ())
    assert (nope.error, nope.state) == (E.NONE, "Dead")

    def listed(states: tuple[str, ...] = (), types: tuple[str, ...] = ()) -> set[str]:
        token = host.token()
        host.call(host.coordinator.list_groups, ListGroupsRequest(token, states, types))
        res = host.result(token)
        assert isinstance(res, ListGroupsResult) and res.error is E.NONE
        return {x.group_id for x in res.groups}

    assert listed() == {"g", "simple"}
    assert listed(("stable",)) == {"g"}
    assert listed(("Empty", "Dead")) == {"simple"}
    assert listed(types=("consumer",)) == set()
    assert listed(types=("Classic",)) == {"g", "simple"}


def test_an_emptied_group_without_offsets_dies_at_the_next_retention_check() -> None:
    host = new_host()
    stable_member(host)  # its member stops heartbeating: the group empties after 10 s
    host.advance(10_000)
    assert host.coordinator.snapshot("g").state is GroupState.EMPTY
    host.advance(50_000)  # the retention check runs every minute here
    assert host.coordinator.snapshot("g") is None
    assert host.log[-1] == GroupRecord(host.log[-1].key, None)
    assert decode_key(host.log[-1].key) == GroupKey("g")
    assert new_host(host.log).coordinator.group_ids() == []


def delete_offsets(host: MemoryHost, group: str, *parts: tuple[str, int]) -> OffsetDeleteResult:
    token = host.token()
    host.call(host.coordinator.offset_delete, OffsetDeleteRequest(token, group, parts))
    res = host.result(token)
    assert isinstance(res, OffsetDeleteResult)
    return res


def _subscription(*topics: str) -> bytes:
    """A ConsumerProtocolSubscription v0: version, topics, user data (null)."""
    out = struct.pack(">hi", 0, len(topics))
    for t in topics:
        out += struct.pack(">h", len(t)) + t.encode()
    return out + struct.pack(">i", -1)


def test_offset_delete_of_an_empty_group_answers_after_the_tombstones() -> None:
    host = new_host(auto_persist=False)
    commit(host, "simple", {("a", 0): 1, ("a", 1): 2, ("b", 0): 3})
    host.persist_all()
    token = host.token()
    host.call(host.coordinator.offset_delete,
              OffsetDeleteRequest(token, "simple", (("a", 0), ("b", 0), ("c", 5))))
    assert host.result(token) is None  # not before the tombstones are persisted
    host.persist_all()
    res = host.result(token)
    assert isinstance(res, OffsetDeleteResult) and res.error is E.NONE
    assert [(p.topic, p.partition, p.error) for p in res.partitions] == [
        ("a", 0, E.NONE), ("b", 0, E.NONE), ("c", 5, E.NONE)]
    assert fetch(host, "simple") == {("a", 1): (2, 3, "m")}
    assert fetch(new_host(host.log, now_ms=host.now_ms), "simple") == {("a", 1): (2, 3, "m")}
    assert delete_offsets(host, "nobody", ("a", 0)).error is E.GROUP_ID_NOT_FOUND


def test_offset_delete_keeps_the_topics_a_live_consumer_group_subscribes_to() -> None:
    host = new_host()
    member, generation = stable_member(host, metadata=_subscription("a"))
    commit(host, "g", {("a", 0): 1, ("b", 0): 2}, generation, member)
    res = delete_offsets(host, "g", ("a", 0), ("b", 0))
    assert [(p.topic, p.error) for p in res.partitions] == [
        ("a", E.GROUP_SUBSCRIBED_TO_TOPIC), ("b", E.NONE)]
    assert fetch(host, "g") == {("a", 0): (1, 3, "m")}
    # A subscription that cannot be read counts every topic as subscribed (Kafka's rule).
    other, gen2 = stable_member(host, "h")
    commit(host, "h", {("b", 0): 2}, gen2, other)
    assert delete_offsets(host, "h", ("b", 0)).partitions[0].error is E.GROUP_SUBSCRIBED_TO_TOPIC
