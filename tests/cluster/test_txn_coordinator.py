"""The transaction coordinator driven through the request sequences transactional producers send
(KIP-98, KIP-360), with a fake clock, an in-memory `__transaction_state` log and markers recorded
instead of written (cluster.txn.MemoryHost)."""

from __future__ import annotations

import pytest

from redshank.cluster.kafka.topic_table import TopicPartition
from redshank.cluster.txn import (
    AddOffsetsRequest,
    AddOffsetsResult,
    AddPartitionsRequest,
    AddPartitionsResult,
    CoordinatorStatus,
    DescribeTransactionsRequest,
    DescribeTransactionsResult,
    EndTxnRequest,
    EndTxnResult,
    InitProducerIdRequest,
    InitProducerIdResult,
    ListTransactionsRequest,
    ListTransactionsResult,
    MemoryHost,
    TxnConfig,
    TxnCoordinator,
    TxnResult,
    TxnState,
    decode_key,
    decode_value,
)
from redshank.protocol.error_codes import ErrorCode

E = ErrorCode
S = TxnState
TP0 = TopicPartition("t", 0)
TP1 = TopicPartition("t", 1)
OFFSETS = TopicPartition("__consumer_offsets", 7)


def new_host(*, ids: int = 100, **cfg: int) -> MemoryHost:
    host = MemoryHost(TxnCoordinator(0, TxnConfig(**cfg)), now_ms=1_000)
    if ids:
        host.give_ids(1000, ids)
    host.start()
    return host


def res(host: MemoryHost, token: int) -> TxnResult:
    result = host.result(token)
    assert result is not None, f"token {token} not answered"
    return result


def init(host: MemoryHost, tid: str = "tx", timeout: int = 60_000, pid: int = -1,
         epoch: int = -1) -> InitProducerIdResult:
    r = res(host, host.send(InitProducerIdRequest(tid, timeout, pid, epoch)))
    assert isinstance(r, InitProducerIdResult)
    return r


def add(host: MemoryHost, p: InitProducerIdResult, *tps: TopicPartition,
        tid: str = "tx") -> dict[TopicPartition, ErrorCode]:
    r = res(host, host.send(AddPartitionsRequest(tid, p.producer_id, p.producer_epoch, tps)))
    assert isinstance(r, AddPartitionsResult)
    return dict(r.errors)


def end(host: MemoryHost, p: InitProducerIdResult, committed: bool, tid: str = "tx") -> ErrorCode:
    r = res(host, host.send(EndTxnRequest(tid, p.producer_id, p.producer_epoch, committed)))
    assert isinstance(r, EndTxnResult)
    return r.error


def state(host: MemoryHost, tid: str = "tx") -> TxnState:
    snap = host.coordinator.snapshot(tid)
    assert snap is not None
    return snap.state


def logged_states(host: MemoryHost, tid: str = "tx") -> list[TxnState | None]:
    return [
        None if r.value is None else decode_value(r.value).state
        for r in host.log if decode_key(r.key) == tid
    ]


def test_init_new_id_gets_a_producer_id_at_epoch_0_once_persisted() -> None:
    host = new_host()
    host.auto_persist = False
    token = host.send(InitProducerIdRequest("tx", 60_000))
    assert host.result(token) is None  # answered only once the Empty record is durable
    host.persist_all()
    assert host.result(token) == InitProducerIdResult(E.NONE, 1000, 0)
    assert logged_states(host) == [S.EMPTY]
    host.auto_persist = True
    again = init(host)
    assert (again.producer_id, again.producer_epoch) == (1000, 1)


def test_commit_flow_persists_prepare_then_markers_then_complete_then_answers() -> None:
    host = new_host()
    host.auto_markers = False
    p = init(host)
    assert add(host, p, TP0, TP1) == {TP0: E.NONE, TP1: E.NONE}
    assert state(host) is S.ONGOING
    r = res(host, host.send(AddOffsetsRequest("tx", p.producer_id, p.producer_epoch, "g", OFFSETS)))
    assert r == AddOffsetsResult(E.NONE)
    n = len(host.log)
    assert add(host, p, TP0) == {TP0: E.NONE}  # already in: nothing persisted
    assert len(host.log) == n
    t = host.send(EndTxnRequest("tx", p.producer_id, p.producer_epoch, True))
    assert state(host) is S.PREPARE_COMMIT
    # Held until the transaction is complete, so that the producer's next AddPartitions
    # finds CompleteCommit rather than CONCURRENT_TRANSACTIONS.
    assert host.result(t) is None
    (markers,) = host.unwritten
    assert markers.committed and markers.partitions == (TP0, TP1, OFFSETS)
    assert (markers.producer_id, markers.producer_epoch) == (p.producer_id, p.producer_epoch)
    assert markers.coordinator_epoch == 1
    host.write_all()
    assert state(host) is S.COMPLETE_COMMIT
    assert res(host, t) == EndTxnResult(E.NONE)
    assert add(host, p, TP0) == {TP0: E.NONE}  # the next transaction starts at once
    t = host.send(EndTxnRequest("tx", p.producer_id, p.producer_epoch, True))
    host.write_all()
    assert res(host, t) == EndTxnResult(E.NONE)
    assert logged_states(host) == [S.EMPTY, S.ONGOING, S.ONGOING, S.PREPARE_COMMIT,
                                   S.COMPLETE_COMMIT, S.ONGOING, S.PREPARE_COMMIT,
                                   S.COMPLETE_COMMIT]
    assert end(host, p, committed=True) is E.NONE  # a retry of the finished EndTxn
    assert end(host, p, committed=False) is E.INVALID_TXN_STATE


def test_abort_flow_and_end_txn_state_errors() -> None:
    host = new_host()
    host.auto_markers = False
    p = init(host)
    assert end(host, p, committed=True) is E.INVALID_TXN_STATE  # Empty
    add(host, p, TP0)
    first = host.send(EndTxnRequest("tx", p.producer_id, p.producer_epoch, False))
    assert host.unwritten[0].committed is False
    # Markers in flight: another EndTxn (a client's retry), either outcome, is told to retry.
    assert end(host, p, committed=False) is E.CONCURRENT_TRANSACTIONS
    assert end(host, p, committed=True) is E.CONCURRENT_TRANSACTIONS
    assert add(host, p, TP1) == {TP1: E.CONCURRENT_TRANSACTIONS}
    assert init(host).error is E.CONCURRENT_TRANSACTIONS
    assert host.result(first) is None
    host.write_all()
    assert state(host) is S.COMPLETE_ABORT
    assert res(host, first) == EndTxnResult(E.NONE)
    assert end(host, p, committed=False) is E.NONE
    assert end(host, p, committed=True) is E.INVALID_TXN_STATE
    # The next transaction starts from CompleteAbort with a new start time.
    host.now_ms += 5
    add(host, p, TP1)
    snap = host.coordinator.snapshot("tx")
    assert snap is not None and snap.partitions == (TP1,) and snap.start_ms == host.now_ms


def test_commit_without_partitions_completes_without_markers() -> None:
    host = new_host()
    p = init(host)
    assert add(host, p) == {}  # AddPartitions with no partitions: Ongoing, nothing in it
    assert state(host) is S.ONGOING
    assert end(host, p, committed=True) is E.NONE
    assert state(host) is S.COMPLETE_COMMIT
    assert host.written == []


def test_producer_id_and_epoch_checks() -> None:
    host = new_host()
    p = init(host)
    stale = InitProducerIdResult(E.NONE, p.producer_id, p.producer_epoch - 1)
    other = InitProducerIdResult(E.NONE, p.producer_id + 1, p.producer_epoch)
    assert add(host, stale, TP0) == {TP0: E.PRODUCER_FENCED}
    assert add(host, other, TP0) == {TP0: E.INVALID_PRODUCER_ID_MAPPING}
    assert add(host, p, TP0, tid="unknown") == {TP0: E.INVALID_PRODUCER_ID_MAPPING}
    assert end(host, stale, committed=True) is E.PRODUCER_FENCED
    assert end(host, other, committed=True) is E.INVALID_PRODUCER_ID_MAPPING
    r = host.send(AddOffsetsRequest("tx", p.producer_id, 7, "g", OFFSETS))
    assert res(host, r) == AddOffsetsResult(E.PRODUCER_FENCED)
    assert add(host, p, TP0, tid="") == {TP0: E.INVALID_REQUEST}


def test_transaction_timeout_validation() -> None:
    host = new_host(max_timeout_ms=10_000)
    assert init(host, timeout=10_001).error is E.INVALID_TRANSACTION_TIMEOUT
    assert init(host, timeout=0).error is E.INVALID_TRANSACTION_TIMEOUT
    assert init(host, timeout=10_000).error is E.NONE
    assert init(host, tid="").error is E.INVALID_REQUEST


def test_init_while_ongoing_aborts_and_fences_the_old_producer() -> None:
    host = new_host()
    host.auto_markers = False
    old = init(host)
    add(host, old, TP0)
    first = init(host)
    assert first.error is E.CONCURRENT_TRANSACTIONS  # the abort is under way: retry
    assert state(host) is S.PREPARE_ABORT
    (markers,) = host.unwritten
    assert not markers.committed and markers.producer_epoch == old.producer_epoch + 1
    assert init(host).error is E.CONCURRENT_TRANSACTIONS  # still writing markers
    host.write_all()
    assert state(host) is S.COMPLETE_ABORT
    new = init(host)
    assert (new.error, new.producer_id, new.producer_epoch) == (
        E.NONE, old.producer_id, old.producer_epoch + 2)
    # The zombie: fenced everywhere.
    assert add(host, old, TP1) == {TP1: E.PRODUCER_FENCED}
    assert end(host, old, committed=True) is E.PRODUCER_FENCED


def test_kip360_reinit_with_the_current_epoch_and_retry() -> None:
    host = new_host()
    init(host)
    p = init(host)
    bumped = init(host, pid=p.producer_id, epoch=p.producer_epoch)
    assert (bumped.producer_id, bumped.producer_epoch) == (p.producer_id, p.producer_epoch + 1)
    # The answer was lost: the retry names the same old epoch and gets the same answer.
    retry = init(host, pid=p.producer_id, epoch=p.producer_epoch)
    assert retry == bumped
    # An epoch older than both is fenced; another producer id too (Kafka: PRODUCER_FENCED).
    assert init(host, pid=p.producer_id, epoch=p.producer_epoch - 1).error is E.PRODUCER_FENCED
    assert init(host, pid=p.producer_id + 5, epoch=0).error is E.PRODUCER_FENCED
    assert init(host, pid=p.producer_id, epoch=-1).error is E.INVALID_REQUEST
    # A new id named with a producer id it never had (recovering after UNKNOWN_PRODUCER_ID).
    fresh = init(host, tid="other", pid=42, epoch=3)
    assert fresh.error is E.NONE and fresh.producer_epoch == 0


def test_epoch_exhaustion_rotates_the_producer_id() -> None:
    host = new_host()
    p = init(host)
    meta = host.coordinator._txns["tx"]  # jump near the end instead of 32,000 inits
    meta.producer_epoch = 32_765
    last = init(host)
    assert (last.producer_id, last.producer_epoch) == (p.producer_id, 32_766)
    rotated = init(host)
    assert rotated.producer_id != p.producer_id and rotated.producer_epoch == 0
    # KIP-360 flavour: a producer at the exhausted epoch rotates too, and its retry is answered
    # the same.
    meta.producer_epoch = 32_766
    again = init(host, pid=rotated.producer_id, epoch=32_766)
    assert again.producer_epoch == 0 and again.producer_id not in (p.producer_id,
                                                                   rotated.producer_id)
    assert init(host, pid=rotated.producer_id, epoch=32_766) == again


def test_fence_of_a_transaction_at_the_last_client_epoch() -> None:
    host = new_host()
    init(host)
    host.coordinator._txns["tx"].producer_epoch = 32_766
    p = InitProducerIdResult(E.NONE, 1000, 32_766)
    add(host, p, TP0)
    assert init(host).error is E.CONCURRENT_TRANSACTIONS
    assert host.written[-1][1].producer_epoch == 32_767  # fencing uses the reserved epoch
    rotated = init(host)
    assert rotated.producer_id != 1000 and rotated.producer_epoch == 0


def test_no_producer_ids_left_asks_for_more() -> None:
    host = new_host(ids=0)
    assert host.wanted_producer_ids >= 1
    before = host.wanted_producer_ids
    r = init(host)
    assert r.error is E.COORDINATOR_LOAD_IN_PROGRESS
    assert host.wanted_producer_ids == before + 1
    assert host.coordinator.snapshot("tx") is None
    host.give_ids(5000, 2)
    assert init(host).producer_id == 5000
    assert init(host, tid="b").producer_id == 5001
    assert init(host, tid="c").error is E.COORDINATOR_LOAD_IN_PROGRESS


def test_verify_only_answers_without_changes() -> None:
    host = new_host()
    p = init(host)
    add(host, p, TP0)
    n = len(host.log)
    r = res(host, host.send(AddPartitionsRequest("tx", p.producer_id, p.producer_epoch,
                                                  (TP0, TP1), verify_only=True)))
    assert r == AddPartitionsResult(((TP0, E.NONE), (TP1, E.INVALID_TXN_STATE)))
    r = res(host, host.send(AddPartitionsRequest("tx", p.producer_id, 5, (TP0,),
                                                  verify_only=True)))
    assert r == AddPartitionsResult(((TP0, E.PRODUCER_FENCED),))
    assert len(host.log) == n


def test_requests_while_loading_or_inactive() -> None:
    coord = TxnCoordinator(3)
    host = MemoryHost(coord)
    assert init(host).error is E.NOT_COORDINATOR
    coord.begin_loading()
    assert coord.status is CoordinatorStatus.LOADING
    assert init(host).error is E.COORDINATOR_LOAD_IN_PROGRESS
    r = res(host, host.send(DescribeTransactionsRequest(("a",))))
    assert isinstance(r, DescribeTransactionsResult)
    assert r.transactions[0].error is E.COORDINATOR_LOAD_IN_PROGRESS
    r = res(host, host.send(ListTransactionsRequest()))
    assert r == ListTransactionsResult(E.COORDINATOR_LOAD_IN_PROGRESS)


@pytest.mark.parametrize(("log_error", "client_error"), [
    (E.NOT_LEADER_OR_FOLLOWER, E.NOT_COORDINATOR),
    (E.KAFKA_STORAGE_ERROR, E.NOT_COORDINATOR),
    (E.REQUEST_TIMED_OUT, E.COORDINATOR_NOT_AVAILABLE),
    (E.NOT_ENOUGH_REPLICAS, E.COORDINATOR_NOT_AVAILABLE),
    (E.MESSAGE_TOO_LARGE, E.UNKNOWN_SERVER_ERROR),
])
def test_failed_appends_map_errors_and_leave_state_unchanged(
    log_error: ErrorCode, client_error: ErrorCode
) -> None:
    host = new_host()
    host.auto_persist = False
    t = host.send(InitProducerIdRequest("tx", 60_000))
    host.persist_next(log_error)
    assert host.result(t) == InitProducerIdResult(client_error)
    assert host.coordinator.snapshot("tx") is None  # never persisted: forgotten
    host.auto_persist = True
    host.persist_all()
    p = init(host)
    add(host, p, TP0)
    host.auto_persist = False
    before = host.coordinator.snapshot("tx")
    t1 = host.send(AddPartitionsRequest("tx", p.producer_id, p.producer_epoch, (TP1,)))
    host.persist_next(log_error)
    assert res(host, t1) == AddPartitionsResult(((TP1, client_error),))
    t2 = host.send(EndTxnRequest("tx", p.producer_id, p.producer_epoch, True))
    host.persist_next(log_error)
    assert res(host, t2) == EndTxnResult(client_error)
    t3 = host.send(InitProducerIdRequest("tx", 60_000))  # the fence's PrepareAbort fails
    host.persist_next(log_error)
    assert res(host, t3) == InitProducerIdResult(client_error)
    assert host.coordinator.snapshot("tx") == before
    assert host.written == []
    # And the transaction still commits afterwards.
    host.auto_persist = True
    host.persist_all()
    assert end(host, p, committed=True) is E.NONE
    assert state(host) is S.COMPLETE_COMMIT


def test_failed_complete_append_is_retried() -> None:
    host = new_host()
    p = init(host)
    add(host, p, TP0)
    host.auto_persist = False
    t = host.send(EndTxnRequest("tx", p.producer_id, p.producer_epoch, True))
    host.persist_next()  # PrepareCommit
    host.persist_next(E.REQUEST_TIMED_OUT)  # CompleteCommit fails
    assert state(host) is S.PREPARE_COMMIT
    assert host.result(t) is None  # still held: the outcome is not complete
    assert end(host, p, committed=True) is E.CONCURRENT_TRANSACTIONS
    host.auto_persist = True
    host.advance(TxnConfig().complete_retry_backoff_ms)
    assert state(host) is S.COMPLETE_COMMIT
    assert res(host, t) == EndTxnResult(E.NONE)
    assert len(host.written) == 1  # markers are not written again


def test_end_txn_held_past_its_bound_is_answered_none() -> None:
    """Markers that take long (a partition without a leader): the EndTxn is answered NONE
    after `end_txn_wait_ms`, as Kafka answers it once Prepare* is durable; the next
    AddPartitions is told to retry until the transaction is complete."""
    host = new_host(end_txn_wait_ms=1_000)
    host.auto_markers = False
    p = init(host)
    add(host, p, TP0)
    t = host.send(EndTxnRequest("tx", p.producer_id, p.producer_epoch, True))
    assert host.coordinator.next_deadline_ms() == host.now_ms + 1_000
    host.advance(999)
    assert host.result(t) is None
    host.advance(1)
    assert res(host, t) == EndTxnResult(E.NONE)
    assert add(host, p, TP0) == {TP0: E.CONCURRENT_TRANSACTIONS}
    host.write_all()
    assert add(host, p, TP0) == {TP0: E.NONE}


def test_resign_answers_a_held_end_txn_none() -> None:
    """Prepare* is durable (committed on a majority): the next coordinator completes it, so
    a held EndTxn is answered NONE when this one resigns, not NOT_COORDINATOR."""
    host = new_host()
    host.auto_markers = False
    p = init(host)
    add(host, p, TP0)
    t = host.send(EndTxnRequest("tx", p.producer_id, p.producer_epoch, True))
    assert host.result(t) is None
    host.resign()
    assert res(host, t) == EndTxnResult(E.NONE)


def test_resign_answers_waiters_not_coordinator_and_forgets() -> None:
    host = new_host()
    p = init(host)
    add(host, p, TP0)
    host.auto_persist = False
    t1 = host.send(AddPartitionsRequest("tx", p.producer_id, p.producer_epoch, (TP1,)))
    t2 = host.send(InitProducerIdRequest("new", 60_000))
    host.resign()
    assert res(host, t1) == AddPartitionsResult(((TP1, E.NOT_COORDINATOR),))
    assert res(host, t2) == InitProducerIdResult(E.NOT_COORDINATOR)
    assert host.coordinator.status is CoordinatorStatus.INACTIVE
    assert host.coordinator.transactional_ids() == []
    assert host.coordinator.next_deadline_ms() is None
    assert init(host).error is E.NOT_COORDINATOR


def restarted(host: MemoryHost, coordinator_epoch: int = 2, **cfg: int) -> MemoryHost:
    """A new coordinator (another broker, or this one after a crash) loading what `host`
    persisted so far; it keeps the clock and the marker history."""
    new = MemoryHost(TxnCoordinator(0, TxnConfig(**cfg)), now_ms=host.now_ms,
                     auto_markers=host.auto_markers)
    new.log = list(host.log)
    new.written = list(host.written)
    new.give_ids(9000, 100)
    new.start(coordinator_epoch)
    return new


def test_restart_in_the_middle_of_prepare_commit_resends_markers_and_completes() -> None:
    host = new_host()
    host.auto_markers = False
    p = init(host)
    add(host, p, TP0, TP1)
    t = host.send(EndTxnRequest("tx", p.producer_id, p.producer_epoch, True))
    assert host.unwritten  # the old coordinator dies before its markers are written
    host.resign()
    assert res(host, t) == EndTxnResult(E.NONE)
    new = restarted(host, coordinator_epoch=7)
    assert state(new) is S.PREPARE_COMMIT
    (markers,) = new.unwritten
    assert markers.committed and markers.partitions == (TP0, TP1)
    assert (markers.producer_id, markers.producer_epoch, markers.coordinator_epoch) == (
        p.producer_id, p.producer_epoch, 7)
    # The client retries its EndTxn at the new coordinator meanwhile.
    assert end(new, p, committed=True) is E.CONCURRENT_TRANSACTIONS
    new.write_all()
    assert state(new) is S.COMPLETE_COMMIT
    assert logged_states(new)[-2:] == [S.PREPARE_COMMIT, S.COMPLETE_COMMIT]
    assert end(new, p, committed=True) is E.NONE
    # The producer goes on with the same epoch at the new coordinator.
    assert add(new, p, TP0) == {TP0: E.NONE}


def test_restart_after_a_fence_resends_abort_markers_with_the_bumped_epoch() -> None:
    host = new_host()
    host.auto_markers = False
    old = init(host)
    add(host, old, TP0)
    assert init(host).error is E.CONCURRENT_TRANSACTIONS
    host.resign()
    new = restarted(host)
    (markers,) = new.unwritten
    assert not markers.committed and markers.producer_epoch == old.producer_epoch + 1
    new.write_all()
    p = init(new)
    assert (p.producer_id, p.producer_epoch) == (old.producer_id, old.producer_epoch + 2)


def test_load_replays_latest_value_per_id_and_tombstones() -> None:
    host = new_host(transactional_id_expiration_ms=60_000, remove_expired_check_ms=1_000)
    a = init(host, tid="a", timeout=900_000)
    assert add(host, a, TP0, tid="a") == {TP0: E.NONE}
    init(host, tid="b")
    host.advance(61_000)  # "b" idles out; "a" is Ongoing: it does not expire
    assert host.coordinator.snapshot("b") is None
    assert host.log[-1].value is None and decode_key(host.log[-1].key) == "b"
    new = restarted(host)
    assert new.coordinator.transactional_ids() == ["a"]
    assert state(new, "a") is S.ONGOING
    assert add(new, a, TP0, tid="a") == {TP0: E.NONE}


def test_ongoing_transaction_times_out_keeps_start_time_across_restart_and_fences() -> None:
    host = new_host(abort_timed_out_check_ms=1_000)
    p = init(host, timeout=10_000)
    add(host, p, TP0)
    start = host.now_ms
    host.advance(5_000)
    assert state(host) is S.ONGOING
    new = restarted(host, abort_timed_out_check_ms=1_000)
    snap = new.coordinator.snapshot("tx")
    assert snap is not None and snap.start_ms == start
    new.advance(4_000)
    assert state(new) is S.ONGOING  # 9 s in
    new.advance(2_000)  # past 10 s, at the next check
    assert state(new) is S.COMPLETE_ABORT
    (_, markers), = new.written[-1:]
    assert not markers.committed and markers.producer_epoch == p.producer_epoch + 1
    # The zombie's next calls are fenced (the handler says INVALID_PRODUCER_EPOCH before v2).
    assert end(new, p, committed=True) is E.PRODUCER_FENCED
    assert add(new, p, TP1) == {TP1: E.PRODUCER_FENCED}
    assert init(new, pid=p.producer_id, epoch=p.producer_epoch).error is E.PRODUCER_FENCED
    fresh = init(new)
    assert fresh.producer_epoch == p.producer_epoch + 2


def test_timeout_check_runs_at_its_interval() -> None:
    host = new_host(abort_timed_out_check_ms=10_000)
    p = init(host, timeout=1_000)
    add(host, p, TP0)
    assert host.coordinator.next_deadline_ms() == 1_000 + 10_000
    host.advance(9_000)
    assert state(host) is S.ONGOING  # timed out, but the check has not run yet
    host.advance(1_000)
    assert state(host) is S.COMPLETE_ABORT


def test_timeout_skips_a_transaction_with_an_append_in_flight() -> None:
    host = new_host(abort_timed_out_check_ms=1_000)
    p = init(host, timeout=1_000)
    add(host, p, TP0)
    host.auto_persist = False
    t = host.send(AddPartitionsRequest("tx", p.producer_id, p.producer_epoch, (TP1,)))
    host.advance(2_000)
    assert host.coordinator.in_flight() == (1, 0)  # only the AddPartitions append
    host.persist_all()
    assert res(host, t) == AddPartitionsResult(((TP1, E.NONE),))
    host.auto_persist = True
    host.advance(1_000)
    assert state(host) is S.COMPLETE_ABORT


def test_expiration_only_for_idle_empty_or_complete() -> None:
    host = new_host(transactional_id_expiration_ms=10_000, remove_expired_check_ms=1_000,
                    abort_timed_out_check_ms=1_000_000)
    init(host, tid="idle")
    busy = init(host, tid="busy", timeout=900_000)
    add(host, busy, TP0, tid="busy")
    host.auto_persist = False
    host.advance(11_000)
    assert host.coordinator.in_flight() == (1, 0)
    host.persist_next(E.REQUEST_TIMED_OUT)  # the tombstone fails: "idle" stays
    assert host.coordinator.snapshot("idle") is not None
    host.auto_persist = True
    host.advance(1_000)
    assert host.coordinator.transactional_ids() == ["busy"]
    # An expired id starts again from scratch with a new producer id.
    again = init(host, tid="idle")
    assert again.producer_epoch == 0 and again.producer_id == 1002


def test_list_and_describe_transactions() -> None:
    host = new_host()
    a = init(host, tid="a")
    b = init(host, tid="b")
    add(host, b, TP0, tid="b")
    host.now_ms += 1_000
    r = res(host, host.send(ListTransactionsRequest()))
    assert isinstance(r, ListTransactionsResult) and r.error is E.NONE
    assert {(t.transactional_id, t.state) for t in r.transactions} == {
        ("a", S.EMPTY), ("b", S.ONGOING)}
    r = res(host, host.send(ListTransactionsRequest(("Ongoing", "Bogus"))))
    assert isinstance(r, ListTransactionsResult)
    assert [t.transactional_id for t in r.transactions] == ["b"]
    assert r.unknown_state_filters == ("Bogus",)
    r = res(host, host.send(ListTransactionsRequest(producer_id_filters=(a.producer_id,))))
    assert isinstance(r, ListTransactionsResult)
    assert [t.transactional_id for t in r.transactions] == ["a"]
    r = res(host, host.send(ListTransactionsRequest(("Ongoing",), duration_filter_ms=5_000)))
    assert isinstance(r, ListTransactionsResult) and r.transactions == ()
    r = res(host, host.send(DescribeTransactionsRequest(("b", "nope", ""))))
    assert isinstance(r, DescribeTransactionsResult)
    got_b, nope, empty = r.transactions
    assert (got_b.error, got_b.state, got_b.producer_id, got_b.partitions) == (
        E.NONE, S.ONGOING, b.producer_id, (TP0,))
    assert got_b.transaction_start_time_ms == 1_000 and got_b.transaction_timeout_ms == 60_000
    assert nope.error is E.TRANSACTIONAL_ID_NOT_FOUND
    assert empty.error is E.INVALID_REQUEST


def test_complete_records_ready_together_share_one_append() -> None:
    """Group commit: transactions whose markers are written while a Complete* append is in
    flight go out together in the next append, once it is reported."""
    host = new_host()
    host.auto_markers = False
    ps = {tid: init(host, tid) for tid in ("a", "b", "c")}
    ends = {}
    for tid, p in ps.items():
        add(host, p, TP0, tid=tid)
        ends[tid] = host.send(EndTxnRequest(tid, p.producer_id, p.producer_epoch, True))
    host.auto_persist = False
    host.write_next()  # a: its CompleteCommit is appended
    host.write_all()  # b, c: wait for it
    assert [len(a.records) for a in host.unpersisted] == [1]
    host.persist_next()
    assert res(host, ends["a"]) == EndTxnResult(E.NONE)
    assert [len(a.records) for a in host.unpersisted] == [2]  # b and c in one batch
    host.persist_next()
    assert all(res(host, t) == EndTxnResult(E.NONE) for t in ends.values())
    assert [state(host, tid) for tid in ps] == [S.COMPLETE_COMMIT] * 3


def test_resign_with_complete_records_waiting_appends_nothing() -> None:
    host = new_host()
    host.auto_markers = False
    ps = {tid: init(host, tid) for tid in ("a", "b")}
    for tid, p in ps.items():
        add(host, p, TP0, tid=tid)
        host.send(EndTxnRequest(tid, p.producer_id, p.producer_epoch, True))
    host.auto_persist = False
    host.write_all()  # a's CompleteCommit in flight, b's waiting
    host.unpersisted.clear()
    out = host.coordinator.resign(host.now_ms)
    assert out.appends == ()  # the next coordinator completes both from their PrepareCommit
