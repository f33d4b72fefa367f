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


def test_commit_flow_persists_prepare_answers_then_markers_then_complete() -> None:
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
    assert end(host, p, committed=True) is E.NONE  # answered after PrepareCommit is durable
    assert state(host) is S.PREPARE_COMMIT
    (markers,) = host.unwritten
    assert markers.committed and markers.partitions == (TP0, TP1, OFFSETS)
    assert (markers.producer_id, markers.producer_epoch) == (p.producer_id, p.producer_epoch)
    assert markers.coordinator_epoch == 1
    host.write_all()
    assert state(host) is S.COMPLETE_COMMIT
    assert logged_states(host) == [S.EMPTY, S.ONGOING, S.ONGOING, S.PREPARE_COMMIT,
                                   S.COMPLETE_COMMIT]
    assert end(host, p, committed=True) is E.NONE  # a retry of the finished EndTxn
    assert end(host, p, committed=False) is E.INVALID_TXN_STATE


def test_abort_flow_and_end_txn_state_errors() -> None:
    host = new_host()
    host.auto_markers = False
    p = init(host)
    assert end(host, p, committed=True) is E.INVALID_TXN_STATE  # Empty
    add(host, p, TP0)
    assert end(host, p, committed=False) is E.NONE
    assert host.unwritten[0].committed is False
    # Markers in flight: another EndTxn, either outcome, is told to retry.
    assert end(host, p, committed=False) is E.CONCURRENT_TRANSACTIONS
    assert end(host, p, committed=True) is E.CONCURRENT_TRANSACTIONS
    assert add(host, p, TP1) == {TP1: E.CONCURRENT_TRANSACTIONS}
    assert init(host).error is E.CONCURRENT_TRANSACTIONS
    host.write_all()
    assert state(host) is S.COMPLETE_ABORT
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
    assert res(host, t) == EndTxnResult(E.NONE)
    host.persist_next(E.REQUEST_TIMED_OUT)  # CompleteCommit fails
    assert state(host) is S.PREPARE_COMMIT
    assert end(host, p, committed=True) is E.CONCURRENT_TRANSACTIONS
    host.auto_persist = True
    host.advance(TxnConfig().complete_retry_backoff_ms)
    assert state(host) is S.COMPLETE_COMMIT
    assert len(host.written) == 1  # markers are not written again


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
