"""The fetch long-poll's rules, sans-IO (`FetchOperation`): what a round reads, how much each
read may ask, when the fetch answers, what it parks on, and what it re-reads once woken."""

from __future__ import annotations

import random
import uuid

from redshank.cluster.kafka import TopicInfo, TopicPartition
from redshank.cluster.kafka.fetch_op import FetchOperation
from redshank.cluster.kafka.fetch_session import FetchContext, FetchSessionCache, requested
from redshank.cluster.kafka.handlers import fetch as fetch_h
from redshank.cluster.partition.api import ReadResult
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages.fetch import FetchPartition, FetchRequest, FetchTopic

T = TopicInfo("t", uuid.UUID(int=1), (0, 0, 0))
A, B, C = (TopicPartition("t", p) for p in range(3))


def _op(max_bytes: int = 1000, min_bytes: int = 1, part_max: int = 100, parts: int = 3,
        deadline: float = 10.0) -> FetchOperation:
    req = FetchRequest(max_wait_ms=500, min_bytes=min_bytes, max_bytes=max_bytes, topics=(
        FetchTopic("t", partitions=tuple(
            FetchPartition(p, fetch_offset=5, partition_max_bytes=part_max)
            for p in range(parts))),))
    reads, results = fetch_h.plan(requested(req), {"t": T})
    return FetchOperation(req, reads, results, deadline)


def _empty(hw: int = 5) -> ReadResult:
    return ReadResult(0, hw, 0, b"")


def test_first_round_reads_every_partition_together_when_the_budget_fits_them_all() -> None:
    op = _op()
    assert [r.tp for r in op.start_round()] == [A, B, C] and op.together
    assert [op.limit(r) for r in op.reads] == [100, 100, 100]


def test_reads_that_could_shrink_each_other_run_one_by_one_on_what_is_left() -> None:
    op = _op(max_bytes=150)
    todo = op.start_round()
    assert not op.together
    assert op.limit(todo[0]) == 100
    op.on_result(todo[0], ReadResult(0, 9, 0, _batches(100)))
    assert op.limit(todo[1]) == 50
    op.on_result(todo[1], ReadResult(0, 9, 0, _batches(30)))
    assert op.limit(todo[2]) == 20
    op.on_result(todo[2], ReadResult(0, 9, 0, _batches(20)))
    assert op.finish_round(now=1.0) is None  # 150 bytes: spent


def _batches(*sizes: int) -> bytes:
    """Record batches as the log frames them: base offset, length, then length bytes."""
    return b"".join(i.to_bytes(8, "big") + (n - 12).to_bytes(4, "big") + b"b" * (n - 12)
                    for i, n in enumerate(sizes))


def test_only_the_first_non_empty_partition_may_exceed_what_it_was_asked() -> None:
    op = _op(max_bytes=150)
    todo = op.start_round()
    assert op.limit(todo[0]) == 100
    op.on_result(todo[0], ReadResult(0, 9, 0, _batches(40, 40)))
    assert op.limit(todo[1]) == 70
    op.on_result(todo[1], ReadResult(0, 9, 0, _batches(30, 30, 30)))  # past 70: cut to 60
    assert op.limit(todo[2]) == 10
    op.on_result(todo[2], ReadResult(0, 9, 0, _batches(50)))  # larger than 10: nothing
    assert op.finish_round(now=1.0) is None
    assert [len(op.results[tp].records or b"") for tp in (A, B, C)] == [80, 60, 0]

    first = _op(max_bytes=150)  # A is empty: B is the first non-empty and keeps its big batch
    todo = first.start_round()
    first.limit(todo[0])
    first.on_result(todo[0], _empty())
    assert first.limit(todo[1]) == 100
    first.on_result(todo[1], ReadResult(0, 9, 0, _batches(400)))
    assert first.limit(todo[2]) == 0
    first.on_result(todo[2], _empty())
    assert first.finish_round(now=1.0) is None
    assert [len(first.results[tp].records or b"") for tp in (A, B, C)] == [0, 400, 0]


def test_reads_together_are_cut_to_their_partition_limit_after_the_first_non_empty() -> None:
    op = _op(max_bytes=1000, part_max=100)
    todo = op.start_round()
    assert op.together
    for r in todo:
        op.limit(r)
    for r in reversed(todo):  # answers in any order: "first" is the request's order
        op.on_result(r, ReadResult(0, 9, 0, _batches(300)))
    assert op.finish_round(now=1.0) is None
    assert [len(op.results[tp].records or b"") for tp in (A, B, C)] == [300, 0, 0]


def test_answers_once_min_bytes_arrived() -> None:
    op = _op(min_bytes=10)
    for r in op.start_round():
        op.on_result(r, ReadResult(0, 9, 0, b"x" * 4))
    assert op.finish_round(now=1.0) is None


def test_answers_at_the_deadline_on_an_error_or_with_nothing_to_read() -> None:
    late = _op(deadline=1.0)
    for r in late.start_round():
        late.on_result(r, _empty())
    assert late.finish_round(now=1.0) is None
    failed = _op()
    todo = failed.start_round()
    for r in todo:
        failed.on_result(r, _empty() if r.tp != B else ReadResult(ErrorCode.OFFSET_OUT_OF_RANGE))
    assert failed.finish_round(now=0.0) is None
    assert _op(parts=0).finish_round(now=0.0) is None


def test_parks_on_each_partition_past_what_it_read_and_rereads_only_what_moved() -> None:
    op = _op(min_bytes=10, max_bytes=102)
    todo = op.start_round()
    op.on_result(todo[0], ReadResult(0, 9, 0, b"x" * 4))  # read to 9: more from 9 on
    op.on_result(todo[1], ReadResult(0, 5, 0, b""))
    op.on_result(todo[2], ReadResult(0, 2, 0, b""))  # behind the fetch offset: park at 5
    assert op.finish_round(now=2.0) == 8.0
    assert op.parked_on() == [(A, 9), (B, 5), (C, 5)]
    op.moved({A: 9, B: 7, C: 5})
    again = op.start_round()
    assert [r.tp for r in again] == [B] and not op.together  # 100 > the 98 left
    assert op.limit(again[0]) == 98  # what A's last read holds counts against the budget
    op.on_result(again[0], ReadResult(0, 7, 0, b"y" * 6))
    assert op.finish_round(now=3.0) is None  # 4 + 6 bytes: min_bytes reached
    assert op.results[A].records == b"x" * 4 and op.results[B].records == b"y" * 6


def test_a_timeout_rereads_nothing_and_answers() -> None:
    op = _op(min_bytes=10)
    for r in op.start_round():
        op.on_result(r, _empty())
    assert op.finish_round(now=1.0) == 9.0
    op.moved({})
    assert op.start_round() == []
    assert op.finish_round(now=10.0) is None


def test_response_carries_what_the_fetch_session_includes() -> None:
    op = _op(parts=2)
    for r in op.start_round():
        op.on_result(r, ReadResult(0, 7, 0, b""))
    cache = FetchSessionCache(10, 0, 1, random.Random(1))
    ctx = cache.context(op.request, 0.0)
    assert isinstance(ctx, FetchContext)
    resp = op.response(ctx, 0.0)
    assert [(t.topic, [p.partition_index for p in t.partitions]) for t in resp.responses] == [
        ("t", [0, 1])]
    assert [p.high_watermark for p in resp.responses[0].partitions] == [7, 7]
