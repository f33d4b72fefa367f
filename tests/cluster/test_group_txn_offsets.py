"""Transactional offsets (KIP-98) in the sans-IO group coordinator: TxnOffsetCommit holds them
pending per producer id, invisible to OffsetFetch (UNSTABLE_OFFSET_COMMIT with require_stable)
until that producer's marker on the partition commits them (or drops them: abort); replay
applies markers in log order; DeleteGroups and retention do not drop them silently."""

from __future__ import annotations

import random

from redshank.cluster.group import (
    NO_OFFSET,
    DeleteGroupsRequest,
    DeleteGroupsResult,
    GroupConfig,
    GroupCoordinator,
    GroupRecord,
    MemoryHost,
    OffsetCommitPartition,
    OffsetCommitRequest,
    OffsetCommitResult,
    OffsetFetchGroup,
    OffsetFetchRequest,
    OffsetFetchResult,
    TxnMarker,
    TxnMarkerRequest,
    TxnMarkerResult,
    TxnOffsetCommitRequest,
)
from redshank.cluster.group.group_records import OffsetKey, decode_key
from redshank.cluster.kafka.handlers import txn_offset_commit
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages import txn_offset_commit as wire

E = ErrorCode
DAY = 24 * 3600 * 1000
CFG = GroupConfig(initial_rebalance_delay_ms=0, offsets_retention_ms=DAY,
                  offsets_retention_check_interval_ms=60_000)
P1, P2 = 1000, 2000


def new_host(log: list[GroupRecord | TxnMarker] | None = None,
             auto_persist: bool = True) -> MemoryHost:
    coord = GroupCoordinator(CFG, rng=random.Random(3))
    coord.begin_loading()
    coord.load(log or [])
    host = MemoryHost(coord, auto_persist=auto_persist)
    host.log = list(log or [])
    host.apply(coord.finish_loading(0))
    return host


def txn_commit(host: MemoryHost, group: str, pid: int, offsets: dict[tuple[str, int], int],
               generation: int = -1, member: str = "") -> dict[tuple[str, int], ErrorCode] | None:
    token = host.token()
    parts = tuple(OffsetCommitPartition(t, p, o, 2, "tx") for (t, p), o in offsets.items())
    host.call(host.coordinator.txn_offset_commit, TxnOffsetCommitRequest(
        token, f"txn-{pid}", group, pid, 3, parts, generation, member))
    res = host.result(token)
    if res is None:
        return None
    assert isinstance(res, OffsetCommitResult)
    return {(p.topic, p.partition): p.error for p in res.partitions}


def commit(host: MemoryHost, group: str, offsets: dict[tuple[str, int], int]) -> None:
    token = host.token()
    parts = tuple(OffsetCommitPartition(t, p, o) for (t, p), o in offsets.items())
    host.call(host.coordinator.offset_commit, OffsetCommitRequest(token, group, parts))
    res = host.result(token)
    assert isinstance(res, OffsetCommitResult)
    assert all(p.error is E.NONE for p in res.partitions)


def marker(host: MemoryHost, pid: int, committed: bool) -> ErrorCode:
    token = host.token()
    host.call(host.coordinator.txn_marker,
              TxnMarkerRequest(token, TxnMarker(pid, 3, committed, 7)))
    res = host.result(token)
    assert isinstance(res, TxnMarkerResult)
    return res.error


def fetch(host: MemoryHost, group: str, stable: bool = False,
          topics: tuple[tuple[str, tuple[int, ...]], ...] | None = (("t", (0, 1)),)
          ) -> dict[tuple[str, int], int | ErrorCode]:
    """Each partition's offset, or its error when it has one."""
    token = host.token()
    host.call(host.coordinator.offset_fetch,
              OffsetFetchRequest(token, (OffsetFetchGroup(group, topics),), stable))
    res = host.result(token)
    assert isinstance(res, OffsetFetchResult) and res.groups[0].error is E.NONE
    return {(p.topic, p.partition): p.error if p.error is not E.NONE else p.offset
            for p in res.groups[0].partitions}


def test_pending_offsets_are_invisible_until_the_commit_marker() -> None:
    host = new_host()
    commit(host, "g", {("t", 0): 5})
    assert txn_commit(host, "g", P1, {("t", 0): 10, ("t", 1): 11}) == {
        ("t", 0): E.NONE, ("t", 1): E.NONE}
    # Written as one transactional batch naming the producer.
    assert host.log[-1] == GroupRecord(host.log[-1].key, host.log[-1].value, P1)  # type: ignore
    assert fetch(host, "g") == {("t", 0): 5, ("t", 1): NO_OFFSET}  # the last committed value
    assert fetch(host, "g", stable=True) == {("t", 0): E.UNSTABLE_OFFSET_COMMIT,
                                             ("t", 1): E.UNSTABLE_OFFSET_COMMIT}
    assert fetch(host, "g", topics=None) == {("t", 0): 5}
    snap = host.coordinator.snapshot("g")
    assert snap is not None and snap.pending_txn == ((P1, ("t", 0), 10), (P1, ("t", 1), 11))
    assert marker(host, P1, committed=True) is E.NONE
    assert host.log[-1] == TxnMarker(P1, 3, True, 7)
    assert fetch(host, "g") == fetch(host, "g", stable=True) == {("t", 0): 10, ("t", 1): 11}
    # A retried marker with nothing pending is written again and changes nothing.
    assert marker(host, P1, committed=False) is E.NONE
    assert fetch(host, "g") == {("t", 0): 10, ("t", 1): 11}


def test_abort_marker_drops_only_that_producers_offsets_in_every_group() -> None:
    host = new_host()
    txn_commit(host, "g1", P1, {("t", 0): 10})
    txn_commit(host, "g2", P1, {("t", 0): 20})
    txn_commit(host, "g1", P2, {("t", 1): 31})
    assert marker(host, P1, committed=False) is E.NONE
    assert fetch(host, "g1") == {("t", 0): NO_OFFSET, ("t", 1): NO_OFFSET}
    assert fetch(host, "g2", stable=True) == {("t", 0): NO_OFFSET, ("t", 1): NO_OFFSET}
    assert fetch(host, "g1", stable=True) == {("t", 0): NO_OFFSET,
                                              ("t", 1): E.UNSTABLE_OFFSET_COMMIT}
    assert marker(host, P2, committed=True) is E.NONE
    assert fetch(host, "g1") == {("t", 0): NO_OFFSET, ("t", 1): 31}


def test_replay_keeps_unmarked_offsets_pending_and_applies_markers_in_log_order() -> None:
    host = new_host()
    commit(host, "g1", {("t", 0): 1})
    txn_commit(host, "g1", P1, {("t", 0): 10})
    txn_commit(host, "g2", P1, {("t", 1): 21})
    txn_commit(host, "g1", P2, {("t", 1): 12})
    txn_commit(host, "g2", P2, {("t", 0): 20})
    marker(host, P1, committed=True)
    # P1's next transaction: written after its first marker, so still pending.
    txn_commit(host, "g1", P1, {("t", 0): 15})
    # A regular commit after P2's transactional one: the later record wins at P2's commit.
    commit(host, "g2", {("t", 0): 25})

    again = new_host(host.log)
    for h in (host, again):
        assert fetch(h, "g1") == {("t", 0): 10, ("t", 1): NO_OFFSET}
        assert fetch(h, "g2") == {("t", 0): 25, ("t", 1): 21}
        assert fetch(h, "g1", stable=True) == {("t", 0): E.UNSTABLE_OFFSET_COMMIT,
                                               ("t", 1): E.UNSTABLE_OFFSET_COMMIT}
        assert marker(h, P2, committed=True) is E.NONE
        assert marker(h, P1, committed=False) is E.NONE
        assert fetch(h, "g1", stable=True) == {("t", 0): 10, ("t", 1): 12}
        assert fetch(h, "g2", stable=True) == {("t", 0): 25, ("t", 1): 21}
    third = new_host(again.log)
    assert fetch(third, "g1", stable=True) == {("t", 0): 10, ("t", 1): 12}
    assert third.coordinator.snapshot("g1").pending_txn == ()  # type: ignore[union-attr]


def test_marker_is_answered_once_committed_and_refused_while_not_serving() -> None:
    host = new_host(auto_persist=False)
    txn_commit(host, "g", P1, {("t", 0): 10})
    host.persist_next()
    token = host.token()
    host.call(host.coordinator.txn_marker, TxnMarkerRequest(token, TxnMarker(P1, 3, True, 0)))
    assert host.result(token) is None and fetch(host, "g") == {
        ("t", 0): NO_OFFSET, ("t", 1): NO_OFFSET}
    (append,) = host.unpersisted
    assert append.records == () and append.marker == TxnMarker(P1, 3, True, 0)
    host.persist_next(E.NOT_LEADER_OR_FOLLOWER)  # not written: nothing settles
    assert host.result(token) == TxnMarkerResult(E.NOT_LEADER_OR_FOLLOWER)
    assert fetch(host, "g", stable=True)[("t", 0)] is E.UNSTABLE_OFFSET_COMMIT

    idle = GroupCoordinator(CFG)
    out = idle.txn_marker(TxnMarkerRequest("x", TxnMarker(P1, 3, True, 0)), 0)
    assert [c.result for c in out.completions] == [TxnMarkerResult(E.NOT_LEADER_OR_FOLLOWER)]
    idle.begin_loading()
    out = idle.txn_marker(TxnMarkerRequest("y", TxnMarker(P1, 3, True, 0)), 0)
    assert [c.result for c in out.completions] == [TxnMarkerResult(E.NOT_LEADER_OR_FOLLOWER)]
    assert out.appends == ()


def test_txn_commit_checks_the_member_like_offset_commit_but_not_the_state() -> None:
    host = new_host()
    # No group and a generation: a generation this group never had.
    assert txn_commit(host, "g", P1, {("t", 0): 1}, generation=2, member="m") == {
        ("t", 0): E.ILLEGAL_GENERATION}
    # v0-2 (no generation, no member): accepted, a "simple" group is created.
    assert txn_commit(host, "g", P1, {("t", 0): 1}) == {("t", 0): E.NONE}
    assert txn_commit(host, "g", P1, {("t", 0): 1}, generation=0, member="who") == {
        ("t", 0): E.UNKNOWN_MEMBER_ID}


def test_delete_group_and_retention_do_not_drop_pending_offsets_silently() -> None:
    host = new_host()
    commit(host, "g", {("t", 0): 5})
    txn_commit(host, "g", P1, {("t", 0): 10, ("t", 1): 11})
    # Retention: the committed offset an open transaction may replace is kept, and the group.
    host.advance(2 * DAY)
    assert fetch(host, "g") == {("t", 0): 5, ("t", 1): NO_OFFSET}
    assert host.coordinator.snapshot("g") is not None
    # DeleteGroups writes a tombstone for every partition it had, committed or pending.
    token = host.token()
    host.call(host.coordinator.delete_groups, DeleteGroupsRequest(token, ("g",)))
    res = host.result(token)
    assert isinstance(res, DeleteGroupsResult) and res.results[0].error is E.NONE
    tombstones = [decode_key(r.key) for r in host.log[-3:]
                  if isinstance(r, GroupRecord) and r.value is None]
    assert OffsetKey("g", "t", 0) in tombstones and OffsetKey("g", "t", 1) in tombstones
    assert marker(host, P1, committed=True) is E.NONE  # the deleted group's offsets stay gone
    assert fetch(host, "g") == {("t", 0): NO_OFFSET, ("t", 1): NO_OFFSET}
    replayed = new_host(host.log)
    assert fetch(replayed, "g") == {("t", 0): NO_OFFSET, ("t", 1): NO_OFFSET}
    assert replayed.coordinator.snapshot("g") is None


def test_aborted_simple_group_is_purged_by_retention() -> None:
    host = new_host()
    txn_commit(host, "simple", P1, {("t", 0): 1})
    host.advance(2 * DAY)
    assert host.coordinator.snapshot("simple") is not None  # its transaction is open
    marker(host, P1, committed=False)
    host.advance(CFG.offsets_retention_check_interval_ms)
    assert host.coordinator.snapshot("simple") is None


def test_wire_mapping_v0_and_v3() -> None:
    req = wire.TxnOffsetCommitRequest(
        "tx", "g", P1, 4, 5, "m", "inst", (wire.TxnOffsetCommitRequestTopic("t", (
            wire.TxnOffsetCommitRequestPartition(0, 42, 9, "md"),
            wire.TxnOffsetCommitRequestPartition(7, 1, 9, None))),))
    v3 = txn_offset_commit.to_api(req, 3)
    assert (v3.transactional_id, v3.producer_id, v3.producer_epoch, v3.generation_id,
            v3.member_id, v3.group_instance_id) == ("tx", P1, 4, 5, "m", "inst")
    assert v3.partitions[0] == OffsetCommitPartition("t", 0, 42, 9, "md")
    v0 = txn_offset_commit.to_api(req, 0)
    assert (v0.generation_id, v0.member_id, v0.group_instance_id) == (-1, "", None)
    assert v0.partitions[0].leader_epoch == -1
    kept, unknown = txn_offset_commit.split_unknown(v3, {"t": 2})
    assert [p.partition for p in kept.partitions] == [0] and kept.producer_id == P1
    resp = txn_offset_commit.build(req, OffsetCommitResult(()), unknown)
    assert [(p.partition_index, p.error_code) for p in resp.topics[0].partitions] == [
        (0, 0), (7, E.UNKNOWN_TOPIC_OR_PARTITION)]
    for version in range(5):
        wire.TxnOffsetCommitResponse.decode(resp.encode(version), version)


def test_stale_producer_epochs_and_coordinator_epochs_are_fenced_also_after_replay() -> None:
    host = new_host()
    token = host.token()
    host.call(host.coordinator.txn_marker, TxnMarkerRequest(token, TxnMarker(P1, 4, False, 7)))
    assert host.result(token) == TxnMarkerResult(E.NONE)  # InitProducerId's abort, epoch 4
    for h in (host, new_host(host.log)):
        # The zombie (epoch 3) commits after its transaction was aborted: fenced, not pending.
        assert txn_commit(h, "g", P1, {("t", 0): 9}) == {("t", 0): E.INVALID_PRODUCER_EPOCH}
        assert h.coordinator.snapshot("g") is None
        stale = [TxnMarker(P1, 3, True, 7), TxnMarker(P1, 4, True, 6)]
        results = []
        for m in stale:
            token = h.token()
            h.call(h.coordinator.txn_marker, TxnMarkerRequest(token, m))
            results.append(h.result(token))
        assert results == [TxnMarkerResult(E.INVALID_PRODUCER_EPOCH),
                           TxnMarkerResult(E.TRANSACTION_COORDINATOR_FENCED)]
        token = h.token()
        h.call(h.coordinator.txn_marker, TxnMarkerRequest(token, TxnMarker(P1, 4, True, 8)))
        assert h.result(token) == TxnMarkerResult(E.NONE)


def _state(host: MemoryHost) -> dict[str, object]:
    """Each group's committed and pending offsets (a group left with neither, e.g. one whose
    only transaction aborted, waits for the retention purge: as if it were gone)."""
    out: dict[str, object] = {}
    for g in ("g1", "g2"):
        snap = host.coordinator.snapshot(g)
        state = None if snap is None else (snap.offsets, snap.pending_txn)
        out[g] = None if state == ((), ()) else state
    return out


def test_random_runs_live_state_equals_the_replay_of_its_log() -> None:
    """Seeded random TxnOffsetCommits, regular commits, markers (in flight or not) and
    restarts: whenever nothing is in flight, the live groups' offsets and pending offsets are
    what a replay of the log builds (the marker settles exactly what was written before it)."""
    for seed in range(150):
        rng = random.Random(seed)
        host = new_host(auto_persist=False)
        for _ in range(60):
            op = rng.random()
            group, tp = rng.choice(("g1", "g2")), ("t", rng.randrange(2))
            pid, offset = rng.choice((P1, P2)), rng.randrange(100)
            if op < 0.35:
                token = host.token()
                host.call(host.coordinator.txn_offset_commit, TxnOffsetCommitRequest(
                    token, "tx", group, pid, 3, (OffsetCommitPartition(*tp, offset),)))
            elif op < 0.5:
                token = host.token()
                host.call(host.coordinator.offset_commit, OffsetCommitRequest(
                    token, group, (OffsetCommitPartition(*tp, offset),)))
            elif op < 0.7:
                token = host.token()
                host.call(host.coordinator.txn_marker, TxnMarkerRequest(
                    token, TxnMarker(pid, 3, rng.random() < 0.6, 1)))
            elif op < 0.95 and host.unpersisted:
                host.persist_next()
            elif not host.unpersisted:
                host = new_host(host.log, auto_persist=False)  # a restart: replay the log
            if not host.unpersisted:
                assert _state(host) == _state(new_host(host.log)), seed
        host.persist_all()
        assert _state(host) == _state(new_host(host.log)), seed
