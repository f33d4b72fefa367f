"""The transaction coordinator of one `__transaction_state` partition, as a sans-IO state machine.

The host (actors/txn_host.py, on the partition's leader) feeds it requests, the clock (`now_ms`
on every call) and the outcome of what it asked for; every call returns an `Output` (api.py). It
never reads a clock, sleeps or does I/O; `next_deadline_ms()` says when `tick` has work.

    host                          TxnCoordinator
    become leader             ->  begin_loading()          requests: COORDINATOR_LOAD_IN_PROGRESS
    replay the partition      ->  load(records) ...
                              ->  finish_loading(now, ce)  ACTIVE; transactions found in
                                                           PrepareCommit/PrepareAbort get their
                                                           markers (again) in the Output
    request(token, req)       ->  request(token, req, now) ->  Output
    append done               ->  on_persisted(id, err, now) -> Output
    markers written           ->  on_markers_written(id, now) -> Output
    timer at next_deadline    ->  tick(now)                ->  Output (timeouts abort, ids expire)
    lost leadership           ->  resign(now)              ->  Output (waiters: NOT_COORDINATOR)

A transaction's life (KIP-98), each arrow one `__transaction_state` record, applied in memory only
once durable:

    InitProducerId -> Empty --AddPartitions/AddOffsets--> Ongoing --EndTxn--> PrepareCommit
       (epoch + 1)                                          |                  |  WriteMarkers,
                                                            |                  |  markers written
                                        EndTxn(abort), timeout, InitProducerId v
                                        (the last two bump the epoch: fence)   CompleteCommit:
                                                            +--> PrepareAbort  EndTxn answered
                                                                     ... -> CompleteAbort
    (EndTxn is held until Complete* is durable, at most `end_txn_wait_ms`: README "EndTxn".)

Must not know: sockets, actors, event loops, clocks, the Kafka wire format, how records are stored.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable

from redshank.cluster.kafka.topic_table import TopicPartition
from redshank.cluster.txn._effects import Effects, append_error
from redshank.cluster.txn._producer_ids import ProducerIdPool
from redshank.cluster.txn.api import (
    NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
    AddOffsetsRequest,
    AddOffsetsResult,
    AddPartitionsRequest,
    AddPartitionsResult,
    DescribedTransaction,
    DescribeTransactionsResult,
    EndTxnRequest,
    EndTxnResult,
    InitProducerIdRequest,
    InitProducerIdResult,
    ListTransactionsRequest,
    ListTransactionsResult,
    Output,
    ProducerIdBlock,
    Token,
    TransactionListing,
    TxnRecord,
    TxnRequest,
    TxnResult,
    TxnState,
    WriteMarkers,
)
from redshank.cluster.txn.txn_metadata import MAX_EPOCH, Transit, TxnMetadata, epoch_exhausted
from redshank.cluster.txn.txn_records import txn_record
from redshank.cluster.txn.txn_stm import TxnStm
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.fast_dataclass import dataclass

__all__ = ["CoordinatorStatus", "TxnConfig", "TxnCoordinator", "TxnSnapshot"]

_E = ErrorCode
_S = TxnState
_PREPARE = (_S.PREPARE_COMMIT, _S.PREPARE_ABORT)
_COMPLETE = (_S.COMPLETE_COMMIT, _S.COMPLETE_ABORT)
# AddPartitions/EndTxn answer: the error alone, given to the caller.
_Answer = Callable[[ErrorCode], None]
# An append's outcome and the host's clock.
_Timed = Callable[[ErrorCode, int], None]


class CoordinatorStatus(enum.Enum):
    INACTIVE = "inactive"  # not the partition's leader: NOT_COORDINATOR
    LOADING = "loading"  # replaying the partition: COORDINATOR_LOAD_IN_PROGRESS
    ACTIVE = "active"


class TxnConfig:
    """Kafka's broker settings for transactions (defaults as Kafka's).

    `remove_expired_check_ms` is Kafka's transactional.id expiration check interval;
    `complete_retry_backoff_ms` is how long a failed Complete* append waits before it is tried
    again (Kafka's marker manager retries it too). `end_txn_wait_ms` bounds how long an EndTxn
    whose Prepare* is durable waits for its markers and Complete* before it is answered NONE
    anyway (as Kafka answers it at once: the outcome is decided; see README "EndTxn")."""

    def __init__(self, *, max_timeout_ms: int = 900_000,
                 transactional_id_expiration_ms: int = 604_800_000,
                 abort_timed_out_check_ms: int = 10_000,
                 remove_expired_check_ms: int = 3_600_000,
                 complete_retry_backoff_ms: int = 100,
                 end_txn_wait_ms: int = 5_000) -> None:
        self.max_timeout_ms = max_timeout_ms
        self.transactional_id_expiration_ms = transactional_id_expiration_ms
        self.abort_timed_out_check_ms = abort_timed_out_check_ms
        self.remove_expired_check_ms = remove_expired_check_ms
        self.complete_retry_backoff_ms = complete_retry_backoff_ms
        self.end_txn_wait_ms = end_txn_wait_ms


@dataclass(frozen=True, slots=True)
class TxnSnapshot:
    """A read-only view of one transactional id, for admin tools, metrics and tests."""

    transactional_id: str
    state: TxnState
    pending: TxnState | None
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    partitions: tuple[TopicPartition, ...]
    start_ms: int
    last_update_ms: int


class TxnCoordinator:
    """Lives on the core that leads `__transaction_state` partition `partition`; created by the
    host when it becomes leader (or reused across terms: `resign` drops all state, and
    `begin_loading` starts again)."""

    def __init__(self, partition: int, config: TxnConfig | None = None) -> None:
        self.partition = partition
        self.config = config or TxnConfig()
        self._fx = Effects()
        self._ids = ProducerIdPool()
        self._status = CoordinatorStatus.INACTIVE
        self._stm: TxnStm | None = None
        self._txns: dict[str, TxnMetadata] = {}
        self._coordinator_epoch = -1
        self._abort_check_ms: int | None = None
        self._expire_check_ms: int | None = None
        # Transactions whose Complete* append failed: retried at the deadline.
        self._complete_retry: dict[str, int] = {}
        # EndTxn answers held until the transaction's Complete* is durable, or the deadline:
        # at most one per id (its pending state refuses a second EndTxn meanwhile).
        self._end_waiting: dict[str, tuple[_Answer, int]] = {}
        # Complete* transitions waiting for the one in flight to be reported (group commit).
        self._completing: list[tuple[TxnMetadata, Transit]] = []
        self._completes_in_flight = False

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def status(self) -> CoordinatorStatus:
        return self._status

    def begin_loading(self) -> None:
        if self._status is not CoordinatorStatus.INACTIVE:
            raise RuntimeError(f"begin_loading while {self._status.value}")
        self._status = CoordinatorStatus.LOADING
        self._stm = TxnStm()

    def load(self, records: Iterable[TxnRecord]) -> None:
        """Apply replayed records in log order; raises TxnRecordError on a damaged record."""
        if self._stm is None:
            raise RuntimeError("load outside begin_loading/finish_loading")
        self._stm.apply_all(records)

    def finish_loading(self, now_ms: int, coordinator_epoch: int) -> Output:
        """`coordinator_epoch`: the partition leader's epoch (Raft term); markers carry it.
        Transactions found in Prepare* were decided before the coordinator moved: their
        markers go out again (idempotent on the partitions) and they complete."""
        if self._stm is None:
            raise RuntimeError("finish_loading without begin_loading")
        stm, self._stm = self._stm, None
        self._coordinator_epoch = coordinator_epoch
        self._txns = {tid: TxnMetadata.from_value(tid, v) for tid, v in stm.values.items()}
        self._status = CoordinatorStatus.ACTIVE
        self._abort_check_ms = now_ms + self.config.abort_timed_out_check_ms
        self._expire_check_ms = now_ms + self.config.remove_expired_check_ms
        for meta in list(self._txns.values()):
            if meta.state in _PREPARE:
                self._send_markers(meta, now_ms)
        return self._drain()

    def resign(self, now_ms: int) -> Output:
        """Leadership moved: answer every waiting request with NOT_COORDINATOR, drop all state
        (markers being written are forgotten: the next coordinator sends them again)."""
        self._completing.clear()  # first: a failed Complete* append must not start the next
        self._fx.fail_all(_E.NOT_LEADER_OR_FOLLOWER, now_ms)
        self._fx.drop_markers()
        self._answer_ended(list(self._end_waiting))  # decided and durable: NONE, as Kafka
        self._completes_in_flight = False
        self._txns.clear()
        self._complete_retry.clear()
        self._stm = None
        self._abort_check_ms = self._expire_check_ms = None
        self._status = CoordinatorStatus.INACTIVE
        return self._fx.drain()

    def add_producer_ids(self, block: ProducerIdBlock, now_ms: int) -> Output:
        self._ids.add(block)
        return self._drain()

    # -- requests --------------------------------------------------------------------------

    def request(self, token: Token, req: TxnRequest, now_ms: int) -> Output:
        error = self._status_error()
        if error is not None:
            self._fx.complete(token, _failed(req, error))
        elif isinstance(req, InitProducerIdRequest):
            self._init_producer_id(token, req, now_ms)
        elif isinstance(req, AddPartitionsRequest):
            self._add_partitions(token, req, now_ms)
        elif isinstance(req, AddOffsetsRequest):
            self._add_offsets(token, req, now_ms)
        elif isinstance(req, EndTxnRequest):
            self._end_txn(token, req, now_ms)
        elif isinstance(req, ListTransactionsRequest):
            self._fx.complete(token, self._list(req, now_ms))
        else:
            self._fx.complete(token, DescribeTransactionsResult(
                tuple(self._describe(tid) for tid in req.transactional_ids)
            ))
        return self._drain()

    def _status_error(self) -> ErrorCode | None:
        if self._status is CoordinatorStatus.LOADING:
            return _E.COORDINATOR_LOAD_IN_PROGRESS
        if self._status is CoordinatorStatus.INACTIVE:
            return _E.NOT_COORDINATOR
        return None

    # InitProducerId (TransactionCoordinator.handleInitProducerId) ----------------------------

    def _init_producer_id(self, token: Token, req: InitProducerIdRequest, now_ms: int) -> None:
        def answer(error: ErrorCode, pid: int = NO_PRODUCER_ID,
                   epoch: int = NO_PRODUCER_EPOCH) -> None:
            self._fx.complete(token, InitProducerIdResult(error, pid, epoch))

        expected = (req.producer_id, req.producer_epoch)
        has_expected = expected != (NO_PRODUCER_ID, NO_PRODUCER_EPOCH)
        if not req.transactional_id:
            return answer(_E.INVALID_REQUEST)
        if has_expected and NO_PRODUCER_ID in expected:  # KafkaApis: both or neither
            return answer(_E.INVALID_REQUEST)
        if not 0 < req.transaction_timeout_ms <= self.config.max_timeout_ms:
            return answer(_E.INVALID_TRANSACTION_TIMEOUT)
        meta = self._txns.get(req.transactional_id)
        if meta is None:
            pid = self._take_producer_id()
            if pid is None:
                return answer(_E.COORDINATOR_LOAD_IN_PROGRESS)
            meta = TxnMetadata(
                req.transactional_id, producer_id=pid, producer_epoch=NO_PRODUCER_EPOCH,
                timeout_ms=req.transaction_timeout_ms, state=_S.EMPTY, last_update_ms=now_ms,
            )
            self._txns[req.transactional_id] = meta
        if meta.pending is not None:
            return answer(_E.CONCURRENT_TRANSACTIONS)
        if has_expected and not (
            meta.producer_epoch == NO_PRODUCER_EPOCH  # just created: KIP-360 recovery
            or req.producer_id == meta.producer_id
            # a retry of a bump that rotated the producer id
            or (req.producer_id == meta.previous_producer_id
                and epoch_exhausted(req.producer_epoch))
        ):
            return answer(_E.PRODUCER_FENCED)
        if meta.state in _PREPARE:
            return answer(_E.CONCURRENT_TRANSACTIONS)
        if meta.state is _S.ONGOING:
            # Abort the open transaction first, fencing its producer; the client retries and the
            # retry bumps the epoch again (possibly rotating the producer id).
            def fenced(error: ErrorCode) -> None:
                answer(_E.CONCURRENT_TRANSACTIONS if error is _E.NONE else error)

            return self._end(meta, committed=False, fence=True, now_ms=now_ms, answer=fenced)
        transit = self._init_transit(meta, req, has_expected, now_ms)
        if isinstance(transit, ErrorCode):
            return answer(transit)

        def persisted(error: ErrorCode, _now: int) -> None:
            if error is _E.NONE:
                answer(_E.NONE, meta.producer_id, meta.producer_epoch)
            else:
                answer(error)

        self._persist(meta, transit, persisted)
        return None

    def _init_transit(self, meta: TxnMetadata, req: InitProducerIdRequest, has_expected: bool,
                      now_ms: int) -> Transit | ErrorCode:
        """Empty/Complete*: bump the epoch, or rotate the producer id once epochs run out."""
        # The previous producer id lets a retry of a rotation be recognised (isValidProducerId).
        common = {"state": _S.EMPTY, "timeout_ms": req.transaction_timeout_ms, "partitions": (),
                  "start_ms": -1, "last_update_ms": now_ms,
                  "previous_producer_id": meta.producer_id}
        if epoch_exhausted(meta.producer_epoch) and (
            not has_expected or req.producer_epoch == meta.producer_epoch
        ):
            pid = self._take_producer_id()
            if pid is None:
                return _E.COORDINATOR_LOAD_IN_PROGRESS
            last = meta.producer_epoch if has_expected else NO_PRODUCER_EPOCH
            return meta.transit(producer_id=pid, producer_epoch=0, last_producer_epoch=last,
                                **common)
        if epoch_exhausted(meta.producer_epoch):
            # A KIP-360 caller naming an older epoch while this one is exhausted.
            if req.producer_epoch != meta.last_producer_epoch:
                return _E.PRODUCER_FENCED
            return meta.transit(**common)
        bumped = meta.producer_epoch + 1
        if not has_expected:
            return meta.transit(producer_epoch=bumped, last_producer_epoch=NO_PRODUCER_EPOCH,
                                **common)
        if meta.producer_epoch == NO_PRODUCER_EPOCH or req.producer_epoch == meta.producer_epoch:
            return meta.transit(producer_epoch=bumped, last_producer_epoch=meta.producer_epoch,
                                **common)
        if req.producer_epoch == meta.last_producer_epoch:
            return meta.transit(**common)  # a retry of the bump it missed the answer of
        return _E.PRODUCER_FENCED

    def _take_producer_id(self) -> int | None:
        pid = self._ids.take()
        if pid is None:
            self._fx.wants_producer_ids = self._ids.wants_more(ran_out=True)
        return pid

    # AddPartitionsToTxn, AddOffsetsToTxn -----------------------------------------------------

    def _add_partitions(self, token: Token, req: AddPartitionsRequest, now_ms: int) -> None:
        def answer(errors: Iterable[ErrorCode]) -> None:
            results = tuple(zip(req.partitions, errors, strict=True))
            self._fx.complete(token, AddPartitionsResult(results))

        if not req.transactional_id:
            return answer(_E.INVALID_REQUEST for _ in req.partitions)
        if req.verify_only:
            return answer(self._verify(req))
        self._add(req.transactional_id, req.producer_id, req.producer_epoch, req.partitions,
                  now_ms, lambda error: answer(error for _ in req.partitions))
        return None

    def _add_offsets(self, token: Token, req: AddOffsetsRequest, now_ms: int) -> None:
        if not req.transactional_id:
            self._fx.complete(token, AddOffsetsResult(_E.INVALID_REQUEST))
            return
        self._add(req.transactional_id, req.producer_id, req.producer_epoch,
                  (req.offsets_partition,), now_ms,
                  lambda error: self._fx.complete(token, AddOffsetsResult(error)))

    def _producer_error(self, meta: TxnMetadata | None, producer_id: int,
                        producer_epoch: int) -> ErrorCode | None:
        """The id and epoch checks of AddPartitions, AddOffsets and EndTxn (transactions v1: the
        client's epoch must be the current one). The handler answers PRODUCER_FENCED as
        INVALID_PRODUCER_EPOCH below AddPartitions/AddOffsets/EndTxn v2 and InitProducerId v4."""
        if meta is None or meta.producer_id != producer_id:
            return _E.INVALID_PRODUCER_ID_MAPPING
        if meta.producer_epoch != producer_epoch:
            return _E.PRODUCER_FENCED
        return None

    def _verify(self, req: AddPartitionsRequest) -> list[ErrorCode]:
        """KIP-890 verification (v4+): are these partitions in the open transaction? Nothing
        changes. Kafka 3.9 answers TRANSACTION_ABORTABLE for a partition not in it; our error
        table stops at 108, so it is INVALID_TXN_STATE (Kafka 3.6's answer)."""
        meta = self._txns.get(req.transactional_id)
        error = self._producer_error(meta, req.producer_id, req.producer_epoch)
        if error is None and meta is not None and meta.state in _PREPARE:
            error = _E.CONCURRENT_TRANSACTIONS
        if error is not None or meta is None:
            return [error or _E.INVALID_PRODUCER_ID_MAPPING for _ in req.partitions]
        return [_E.NONE if tp in meta.partitions else _E.INVALID_TXN_STATE
                for tp in req.partitions]

    def _add(self, transactional_id: str, producer_id: int, producer_epoch: int,
             partitions: tuple[TopicPartition, ...], now_ms: int, answer: _Answer) -> None:
        meta = self._txns.get(transactional_id)
        error = self._producer_error(meta, producer_id, producer_epoch)
        if error is not None or meta is None:
            return answer(error or _E.INVALID_PRODUCER_ID_MAPPING)
        if meta.pending is not None or meta.state in _PREPARE:
            return answer(_E.CONCURRENT_TRANSACTIONS)
        if meta.state is _S.ONGOING and all(tp in meta.partitions for tp in partitions):
            return answer(_E.NONE)  # already in: nothing to persist
        start_ms = meta.start_ms if meta.state is _S.ONGOING else now_ms
        transit = meta.transit(
            state=_S.ONGOING, partitions=tuple(dict.fromkeys((*meta.partitions, *partitions))),
            start_ms=start_ms, last_update_ms=now_ms,
        )
        self._persist(meta, transit, lambda error, _now: answer(error))
        return None

    # EndTxn (TransactionCoordinator.endTransaction) ------------------------------------------

    def _end_txn(self, token: Token, req: EndTxnRequest, now_ms: int) -> None:
        def answer(error: ErrorCode) -> None:
            self._fx.complete(token, EndTxnResult(error))

        if not req.transactional_id:
            return answer(_E.INVALID_REQUEST)
        meta = self._txns.get(req.transactional_id)
        error = self._producer_error(meta, req.producer_id, req.producer_epoch)
        if error is not None or meta is None:
            return answer(error or _E.INVALID_PRODUCER_ID_MAPPING)
        if meta.pending is not None:
            return answer(_E.CONCURRENT_TRANSACTIONS)
        state = meta.state
        if state is _S.ONGOING:
            return self._end(meta, committed=req.committed, fence=False, now_ms=now_ms,
                             answer=answer, wait=True)
        same = (state in (_S.COMPLETE_COMMIT, _S.PREPARE_COMMIT)) == req.committed
        if state in _COMPLETE and same:
            return answer(_E.NONE)  # a retry of the EndTxn that finished it
        if state in _PREPARE and same:
            return answer(_E.CONCURRENT_TRANSACTIONS)
        return answer(_E.INVALID_TXN_STATE)  # Empty, or the opposite outcome

    def _end(self, meta: TxnMetadata, *, committed: bool, fence: bool, now_ms: int,
             answer: _Answer | None, wait: bool = False) -> None:
        """Ongoing -> Prepare*: persisted, then the markers, then Complete*. `answer` is given
        once Prepare* is durable, or (`wait`: a client's EndTxn) once Complete* is, at most
        `end_txn_wait_ms` later: the client's next AddPartitionsToTxn then finds the id
        Complete* instead of answering CONCURRENT_TRANSACTIONS (README "EndTxn"). `fence` (an
        InitProducerId or a timeout aborting it) bumps the epoch so that the producer of the
        open transaction is fenced; that epoch is never given to a client."""
        epoch = min(meta.producer_epoch + 1, MAX_EPOCH) if fence else meta.producer_epoch
        transit = meta.transit(
            state=_S.PREPARE_COMMIT if committed else _S.PREPARE_ABORT, producer_epoch=epoch,
            last_producer_epoch=NO_PRODUCER_EPOCH if fence else meta.last_producer_epoch,
            last_update_ms=now_ms,
        )

        def persisted(error: ErrorCode, now: int) -> None:
            if answer is not None and wait and error is _E.NONE:
                self._end_waiting[meta.transactional_id] = (
                    answer, now + self.config.end_txn_wait_ms)
            elif answer is not None:
                answer(error)
            if error is _E.NONE:
                self._send_markers(meta, now)

        self._persist(meta, transit, persisted)

    def _send_markers(self, meta: TxnMetadata, now_ms: int) -> None:
        """Prepare* is durable: write the markers, then Complete*. Nothing else may start for
        this id meanwhile (pending)."""
        committed = meta.state is _S.PREPARE_COMMIT
        meta.pending = _S.COMPLETE_COMMIT if committed else _S.COMPLETE_ABORT
        if not meta.partitions:
            self._complete(meta, now_ms)
            return
        marker_id = self._fx.next_marker_id()
        self._fx.write_markers(
            WriteMarkers(
                marker_id, meta.transactional_id, meta.producer_id, meta.producer_epoch,
                committed, self._coordinator_epoch, tuple(meta.partitions),
            ),
            lambda now: self._complete(meta, now),
        )

    def _complete(self, meta: TxnMetadata, now_ms: int) -> None:
        """Markers written: Prepare* -> Complete*. Group commit: while one Complete* append is
        in flight, the transactions completed meanwhile wait and go out together in the next
        (one batch, one fsync), as soon as it is reported."""
        if self._txns.get(meta.transactional_id) is not meta or meta.state not in _PREPARE:
            return
        state = _S.COMPLETE_COMMIT if meta.state is _S.PREPARE_COMMIT else _S.COMPLETE_ABORT
        meta.pending = state
        self._completing.append((meta, meta.transit(state=state, partitions=(),
                                                    last_update_ms=now_ms)))
        if not self._completes_in_flight:
            self._append_completes()

    def _append_completes(self) -> None:
        batch, self._completing = self._completing, []
        self._completes_in_flight = True

        def done(error: ErrorCode, now: int) -> None:
            self._completes_in_flight = False
            for meta, transit in batch:
                tid = meta.transactional_id
                if self._txns.get(tid) is not meta:
                    continue
                if error is _E.NONE:
                    meta.pending = None
                    meta.apply(transit)
                    self._answer_ended([tid])
                else:  # still Prepare*, still locked: try again shortly (Kafka's marker manager)
                    self._complete_retry[tid] = now + self.config.complete_retry_backoff_ms
            if self._completing:
                self._append_completes()

        self._fx.append([txn_record(m.transactional_id, t.value()) for m, t in batch], done)

    def _answer_ended(self, tids: Iterable[str]) -> None:
        """Give the held EndTxn answers of `tids` (their outcome is durable): NONE."""
        for tid in tids:
            held = self._end_waiting.pop(tid, None)
            if held is not None:
                held[0](_E.NONE)

    # ListTransactions, DescribeTransactions --------------------------------------------------

    def _list(self, req: ListTransactionsRequest, now_ms: int) -> ListTransactionsResult:
        names = {s.value: s for s in _S}
        unknown = tuple(f for f in req.state_filters if f not in names)
        states = {names[f] for f in req.state_filters if f in names}
        pids = set(req.producer_id_filters)
        listed = tuple(
            TransactionListing(m.transactional_id, m.producer_id, m.state)
            for m in self._txns.values()
            if m.state is not _S.DEAD
            and (not pids or m.producer_id in pids)
            and (not req.state_filters or m.state in states)
            and not (req.duration_filter_ms >= 0 and now_ms - m.start_ms <= req.duration_filter_ms)
        )
        return ListTransactionsResult(_E.NONE, listed, unknown)

    def _describe(self, transactional_id: str) -> DescribedTransaction:
        if not transactional_id:
            return DescribedTransaction(transactional_id, _E.INVALID_REQUEST)
        meta = self._txns.get(transactional_id)
        if meta is None or meta.state is _S.DEAD:
            return DescribedTransaction(transactional_id, _E.TRANSACTIONAL_ID_NOT_FOUND)
        return meta.describe()

    # -- persistence -----------------------------------------------------------------------

    def _persist(self, meta: TxnMetadata, transit: Transit, answer: _Timed) -> None:
        """Append the transition; apply it once durable, then call `answer(error, now_ms)`.
        On failure the metadata is as before (an id created by this request and never
        persisted is forgotten again)."""
        meta.pending = transit.state
        tid = meta.transactional_id

        def done(error: ErrorCode, now: int) -> None:
            if self._txns.get(tid) is not meta:
                answer(_E.NOT_COORDINATOR, now)
                return
            meta.pending = None
            if error is _E.NONE:
                meta.apply(transit)
            elif not meta.persisted:
                del self._txns[tid]
            answer(append_error(error), now)

        self._fx.append([txn_record(tid, transit.value())], done)

    # -- host callbacks --------------------------------------------------------------------

    def on_persisted(self, append_id: int, error: int, now_ms: int) -> Output:
        """The append `append_id` is durable (error NONE) or failed; report in append order."""
        try:
            code = ErrorCode(error)
        except ValueError:
            code = _E.UNKNOWN_SERVER_ERROR
        self._fx.persisted(append_id, code, now_ms)
        return self._drain()

    def on_markers_written(self, marker_id: int, now_ms: int) -> Output:
        """Every partition of `marker_id` has its marker: the transaction completes."""
        self._fx.markers_written(marker_id, now_ms)
        return self._drain()

    def tick(self, now_ms: int) -> Output:
        """Abort transactions past their timeout (every `abort_timed_out_check_ms`), expire idle
        transactional ids (every `remove_expired_check_ms`), retry failed Complete* appends,
        answer EndTxns held past `end_txn_wait_ms`."""
        if self._status is not CoordinatorStatus.ACTIVE:
            return self._drain()
        self._answer_ended([tid for tid, (_a, deadline) in self._end_waiting.items()
                            if deadline <= now_ms])
        for tid, deadline in list(self._complete_retry.items()):
            if deadline <= now_ms:
                del self._complete_retry[tid]
                meta = self._txns.get(tid)
                if meta is not None:
                    self._complete(meta, now_ms)
        if self._abort_check_ms is not None and self._abort_check_ms <= now_ms:
            self._abort_check_ms = now_ms + self.config.abort_timed_out_check_ms
            self._abort_timed_out(now_ms)
        if self._expire_check_ms is not None and self._expire_check_ms <= now_ms:
            self._expire_check_ms = now_ms + self.config.remove_expired_check_ms
            self._expire_ids(now_ms)
        return self._drain()

    def next_deadline_ms(self) -> int | None:
        """When `tick` next has work (None: no timer). Earlier ticks are harmless no-ops."""
        if self._status is not CoordinatorStatus.ACTIVE:
            return None
        candidates = [d for d in (self._abort_check_ms, self._expire_check_ms) if d is not None]
        candidates += self._complete_retry.values()
        candidates += (deadline for _a, deadline in self._end_waiting.values())
        return min(candidates, default=None)

    def _abort_timed_out(self, now_ms: int) -> None:
        """TransactionStateManager.timedOutTransactions: Ongoing, nothing in flight, started
        longer than its timeout ago. The abort bumps the epoch: the zombie is fenced."""
        for meta in list(self._txns.values()):
            if (meta.state is _S.ONGOING and meta.pending is None
                    and meta.start_ms + meta.timeout_ms < now_ms):
                self._end(meta, committed=False, fence=True, now_ms=now_ms, answer=None)

    def _expire_ids(self, now_ms: int) -> None:
        """Idle transactional ids (Empty/Complete*, untouched for the expiration time) get a
        tombstone; they are forgotten once it is durable."""
        horizon = now_ms - self.config.transactional_id_expiration_ms
        expired = [
            m for m in self._txns.values()
            if m.pending is None and m.state in (_S.EMPTY, *_COMPLETE)
            and m.last_update_ms <= horizon
        ]
        if not expired:
            return
        for meta in expired:
            meta.pending = _S.DEAD

        def done(error: ErrorCode, _now: int) -> None:
            for meta in expired:
                if self._txns.get(meta.transactional_id) is meta:
                    meta.pending = None
                    if error is _E.NONE:
                        del self._txns[meta.transactional_id]

        self._fx.append([txn_record(m.transactional_id, None) for m in expired], done)

    # -- introspection ---------------------------------------------------------------------

    def transactional_ids(self) -> list[str]:
        return list(self._txns)

    def snapshot(self, transactional_id: str) -> TxnSnapshot | None:
        m = self._txns.get(transactional_id)
        if m is None:
            return None
        return TxnSnapshot(
            m.transactional_id, m.state, m.pending, m.producer_id, m.producer_epoch,
            m.timeout_ms, tuple(m.partitions), m.start_ms, m.last_update_ms,
        )

    def in_flight(self) -> tuple[int, int]:
        """(appends, marker sets) handed out and not yet reported."""
        return self._fx.in_flight()

    def _drain(self) -> Output:
        if self._status is CoordinatorStatus.ACTIVE and self._ids.wants_more():
            self._fx.wants_producer_ids = True
        return self._fx.drain()


def _failed(req: TxnRequest, error: ErrorCode) -> TxnResult:
    """The whole request fails with `error` (not the coordinator, still loading)."""
    if isinstance(req, InitProducerIdRequest):
        return InitProducerIdResult(error)
    if isinstance(req, AddPartitionsRequest):
        return AddPartitionsResult(tuple((tp, error) for tp in req.partitions))
    if isinstance(req, AddOffsetsRequest):
        return AddOffsetsResult(error)
    if isinstance(req, EndTxnRequest):
        return EndTxnResult(error)
    if isinstance(req, ListTransactionsRequest):
        return ListTransactionsResult(error)
    return DescribeTransactionsResult(
        tuple(DescribedTransaction(tid, error) for tid in req.transactional_ids)
    )
