"""Seeded random operations against the transaction coordinator, with invariant checks: every
token answered exactly once, producer epochs never go backwards, a transaction's markers are
written after its Prepare* record is durable and before its Complete* record, and an EndTxn is
answered NONE only once its decision is durable. Restarts (a new coordinator loading the log),
failed appends, timeouts and expiry are part of the mix."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from redshank.cluster.kafka.topic_table import TopicPartition
from redshank.cluster.txn import (
    AddOffsetsRequest,
    AddPartitionsRequest,
    DescribeTransactionsRequest,
    EndTxnRequest,
    EndTxnResult,
    InitProducerIdRequest,
    InitProducerIdResult,
    ListTransactionsRequest,
    MemoryHost,
    TxnConfig,
    TxnCoordinator,
    TxnRequest,
    TxnState,
    TxnValue,
    decode_key,
    decode_value,
)
from redshank.protocol.error_codes import ErrorCode

E = ErrorCode
S = TxnState
TIDS = ("a", "b", "c")
PARTS = tuple(TopicPartition("t", i) for i in range(3))
OFFSETS = TopicPartition("__consumer_offsets", 1)
APPEND_ERRORS = (E.NOT_LEADER_OR_FOLLOWER, E.REQUEST_TIMED_OUT, E.NOT_ENOUGH_REPLICAS)


def _config() -> TxnConfig:
    return TxnConfig(max_timeout_ms=5_000, abort_timed_out_check_ms=500,
                     transactional_id_expiration_ms=20_000, remove_expired_check_ms=2_000,
                     complete_retry_backoff_ms=50)


@dataclass
class Run:
    rng: random.Random
    host: MemoryHost = field(init=False)
    known: dict[str, tuple[int, int]] = field(default_factory=dict)  # tid -> (pid, epoch)
    sent: dict[int, TxnRequest] = field(default_factory=dict)
    seen_epochs: dict[str, tuple[int, int]] = field(default_factory=dict)
    learned: set[int] = field(default_factory=set)
    next_block: int = 1_000
    coordinator_epoch: int = 1

    def __post_init__(self) -> None:
        self.host = MemoryHost(TxnCoordinator(0, _config()), auto_persist=False,
                               auto_markers=False)
        self.give_ids()
        self.host.start(self.coordinator_epoch)

    def give_ids(self) -> None:
        self.host.give_ids(self.next_block, 5)
        self.next_block += 5

    def send(self, req: TxnRequest) -> None:
        self.sent[self.host.send(req)] = req

    def ids(self, tid: str) -> tuple[int, int]:
        pid, epoch = self.known.get(tid, (self.rng.randrange(1_000, 1_040), 0))
        if self.rng.random() < 0.1:
            epoch -= 1  # a zombie
        return pid, epoch

    def step(self) -> None:
        rng, host = self.rng, self.host
        tid = rng.choice(TIDS)
        op = rng.random()
        if op < 0.12:
            pid, epoch = self.known.get(tid, (-1, -1)) if rng.random() < 0.3 else (-1, -1)
            self.send(InitProducerIdRequest(tid, rng.choice((1_000, 3_000, 5_000)), pid, epoch))
        elif op < 0.27:
            pid, epoch = self.ids(tid)
            parts = tuple(rng.sample(PARTS, rng.randint(1, 2)))
            self.send(AddPartitionsRequest(tid, pid, epoch, parts, rng.random() < 0.1))
        elif op < 0.32:
            pid, epoch = self.ids(tid)
            self.send(AddOffsetsRequest(tid, pid, epoch, "g", OFFSETS))
        elif op < 0.42:
            pid, epoch = self.ids(tid)
            self.send(EndTxnRequest(tid, pid, epoch, rng.random() < 0.6))
        elif op < 0.65:
            if host.unpersisted:
                ok = rng.random() < 0.85
                host.persist_next(E.NONE if ok else rng.choice(APPEND_ERRORS))
        elif op < 0.80:
            if host.unwritten:
                host.write_next()
        elif op < 0.92:
            host.advance(rng.randint(1, 1_500))
        elif op < 0.95:
            self.send(rng.choice((ListTransactionsRequest(),
                                  DescribeTransactionsRequest(TIDS))))
        elif op < 0.97:
            self.restart()
        if host.wanted_producer_ids:
            host.wanted_producer_ids = 0
            self.give_ids()
        self.learn()

    def restart(self) -> None:
        """Leadership moves: the old coordinator resigns, a new one loads the log."""
        self.host.resign()
        self.coordinator_epoch += 1
        self.host.coordinator = TxnCoordinator(0, _config())
        self.give_ids()
        self.host.start(self.coordinator_epoch)

    def learn(self) -> None:
        """What producers learn from answers; epochs seen never go backwards."""
        for token, req in self.sent.items():
            result = self.host.result(token)
            if result is None or token in self.learned:
                continue
            self.learned.add(token)
            if (isinstance(req, InitProducerIdRequest) and isinstance(result, InitProducerIdResult)
                    and result.error is E.NONE):
                prev = self.known.get(req.transactional_id)
                now = (result.producer_id, result.producer_epoch)
                assert prev is None or prev[0] != now[0] or prev[1] <= now[1], (prev, now)
                self.known[req.transactional_id] = now
        for tid in TIDS:
            snap = self.host.coordinator.snapshot(tid)
            if snap is None:
                continue
            prev = self.seen_epochs.get(tid)
            if prev is not None and prev[0] == snap.producer_id:
                assert snap.producer_epoch >= prev[1], (tid, prev, snap)
            self.seen_epochs[tid] = (snap.producer_id, snap.producer_epoch)

    def drain(self) -> None:
        for _ in range(100):
            if not (self.host.unpersisted or self.host.unwritten):
                break
            self.host.persist_all()
            self.host.write_all()
            self.host.advance(100)
        assert not (self.host.unpersisted or self.host.unwritten)

    def check(self) -> None:
        for token in self.sent:
            assert self.host.result(token) is not None, f"token {token} never answered"
        log: list[tuple[str, TxnValue | None]] = []
        for r in self.host.log:
            tid = decode_key(r.key)
            assert tid is not None
            log.append((tid, None if r.value is None else decode_value(r.value)))
        last: dict[str, tuple[int, TxnValue]] = {}
        for i, (tid, v) in enumerate(log):
            j, prev = last.pop(tid, (-1, None))
            if v is None:
                continue
            last[tid] = (i, v)
            if prev is not None and prev.producer_id == v.producer_id:
                assert v.producer_epoch >= prev.producer_epoch, (tid, prev, v)
            elif prev is not None:
                assert v.producer_epoch == 0 and v.state is S.EMPTY, (tid, prev, v)
            if v.state in (S.COMPLETE_COMMIT, S.COMPLETE_ABORT):
                self.check_complete(i, j, tid, prev, v)
        for pos, wm in self.host.written:
            # Markers only for a decision durable at the time they were written.
            before = [v for t, v in log[:pos] if t == wm.transactional_id]
            assert before and before[-1] is not None
            decided = before[-1]
            assert decided.state in (S.PREPARE_COMMIT, S.PREPARE_ABORT), (wm, decided)
            assert (decided.state is S.PREPARE_COMMIT) == wm.committed
            assert (decided.producer_id, decided.producer_epoch) == (wm.producer_id,
                                                                     wm.producer_epoch)
            assert set(decided.partitions) == set(wm.partitions)
        for token, req in self.sent.items():
            result = self.host.result(token)
            if isinstance(req, EndTxnRequest) and result == EndTxnResult(E.NONE):
                want = S.PREPARE_COMMIT if req.committed else S.PREPARE_ABORT
                assert any(t == req.transactional_id and v is not None and v.state is want
                           and (v.producer_id, v.producer_epoch) == (req.producer_id,
                                                                     req.producer_epoch)
                           for t, v in log), req

    def check_complete(self, i: int, j: int, tid: str, prev: TxnValue | None,
                       v: TxnValue) -> None:
        """The Complete* record at log index `i`; its Prepare* at `j`."""
        want = S.PREPARE_COMMIT if v.state is S.COMPLETE_COMMIT else S.PREPARE_ABORT
        assert prev is not None and prev.state is want, (tid, prev, v)
        assert (prev.producer_id, prev.producer_epoch) == (v.producer_id, v.producer_epoch)
        if prev.partitions:
            assert any(
                wm.transactional_id == tid and wm.producer_epoch == v.producer_epoch
                and wm.producer_id == v.producer_id and j < pos <= i
                for pos, wm in self.host.written
            ), f"{tid} completed at {i} without markers written after its prepare at {j}"


@pytest.mark.parametrize("seed", range(40))
def test_random_operations_keep_the_invariants(seed: int) -> None:
    run = Run(random.Random(seed))
    for _ in range(300):
        run.step()
    run.drain()
    run.check()
    # Something happened: transactions completed, both ways, across the seeds.
    assert run.host.log
