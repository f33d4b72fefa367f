"""Incremental fetch sessions (KIP-227): what each (session_id, epoch) means, which partitions an
incremental fetch reads and answers, session ids, and the bounded, idle-evicting cache."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping

import pytest

from redshank.cluster.kafka import TopicPartition
from redshank.cluster.kafka.fetch_session import (
    FetchContext,
    FetchSessionCache,
    SessionError,
)
from redshank.cluster.partition.api import ReadResult
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages.fetch import (
    FetchPartition,
    FetchRequest,
    FetchTopic,
    ForgottenTopic,
)

A0, A1, B0 = ("a", 0), ("a", 1), ("b", 0)
INT32_MAX = 2**31 - 1


def _req(sid: int = 0, epoch: int = -1, parts: Iterable[tuple[str, int, int]] = (),
         forget: Iterable[TopicPartition] = ()) -> FetchRequest:
    """parts: (topic, partition, fetch_offset); one FetchTopic each, as the wire allows."""
    return FetchRequest(
        session_id=sid, session_epoch=epoch,
        topics=tuple(FetchTopic(t, partitions=(FetchPartition(p, fetch_offset=o,
                                                              partition_max_bytes=1000),))
                     for t, p, o in parts),
        forgotten_topics_data=tuple(ForgottenTopic(t, partitions=(p,)) for t, p in forget),
    )


def _ok(hw: int = 10, start: int = 0, records: bytes | None = None, stable: int = -1
        ) -> ReadResult:
    return ReadResult(0, hw, start, records, stable)


def _ctx(cache: FetchSessionCache, req: FetchRequest, now: float = 0.0) -> FetchContext:
    ctx = cache.context(req, now)
    assert isinstance(ctx, FetchContext), ctx
    return ctx


def _reads(ctx: FetchContext) -> list[tuple[str, int, int]]:
    return [(p.topic, p.partition, p.fetch_offset) for p in ctx.partitions]


def _cache(slots: int = 10, core: int = 0, ncores: int = 1, seed: int = 1,
           evict_idle_s: float = 120.0) -> FetchSessionCache:
    return FetchSessionCache(slots, core, ncores, random.Random(seed), evict_idle_s)


def _session(cache: FetchSessionCache, results: Mapping[TopicPartition, ReadResult] | None = None,
             now: float = 0.0) -> int:
    """A session on a0@5, a1@7, b0@0, every one answered with hw 10 unless `results` says."""
    ctx = _ctx(cache, _req(0, 0, [("a", 0, 5), ("a", 1, 7), ("b", 0, 0)]), now)
    assert not ctx.incremental
    out = {A0: _ok(), A1: _ok(), B0: _ok(), **(results or {})}
    sid, send = ctx.respond(out, now)
    assert sid != 0 and send == [A0, A1, B0]
    return sid


def test_sessionless_fetch_reads_and_answers_every_requested_partition() -> None:
    cache = _cache()
    ctx = _ctx(cache, _req(0, -1, [("b", 0, 3), ("a", 1, 4)]))
    assert not ctx.incremental
    assert _reads(ctx) == [("b", 0, 3), ("a", 1, 4)]
    assert ctx.respond({B0: _ok(), A1: _ok()}, 0.0) == (0, [B0, A1])
    assert len(cache) == 0


def test_incremental_fetch_reads_the_whole_session_and_answers_only_what_changed() -> None:
    cache = _cache()
    sid = _session(cache)
    assert len(cache) == 1
    ctx = _ctx(cache, _req(sid, 1), 1.0)
    assert ctx.incremental
    assert _reads(ctx) == [("a", 0, 5), ("a", 1, 7), ("b", 0, 0)]
    # a0 has records, a1 a new high watermark, b0 a new log start offset.
    out = {A0: _ok(records=b"x"), A1: _ok(hw=11), B0: _ok()}
    assert ctx.respond(out, 1.0) == (sid, [A0, A1])
    out = {A0: _ok(records=b""), A1: _ok(hw=11), B0: _ok(start=3)}
    assert _ctx(cache, _req(sid, 2), 2.0).respond(out, 2.0) == (sid, [B0])
    out = {A0: _ok(), A1: _ok(hw=11), B0: _ok(start=3)}
    assert _ctx(cache, _req(sid, 3), 3.0).respond(out, 3.0) == (sid, [])


def test_incremental_fetch_answers_a_moved_last_stable_offset() -> None:
    # A read_committed consumer at the last stable offset (an open transaction holds it at 4,
    # below the high watermark 10) must hear that it moved, even with the high watermark
    # where it was: only then does it know its next fetch finds records (KIP-98, KIP-227).
    cache = _cache()
    sid = _session(cache, {A1: _ok(stable=4)})
    out = {A0: _ok(), A1: _ok(stable=4), B0: _ok()}
    assert _ctx(cache, _req(sid, 1)).respond(out, 0.0) == (sid, [])
    out = {A0: _ok(), A1: _ok(stable=10), B0: _ok()}
    assert _ctx(cache, _req(sid, 2)).respond(out, 0.0) == (sid, [A1])
    assert _ctx(cache, _req(sid, 3)).respond(out, 0.0) == (sid, [])


def test_a_board_answer_and_a_leader_answer_saying_the_same_are_unchanged() -> None:
    # The watermark board answers without a last stable offset (-1: the response says the
    # high watermark); the leader answers with it. Same words to the client: nothing to send
    # (compared raw, every switch between the two re-sent the partition, empty).
    cache = _cache()
    sid = _session(cache)
    assert _ctx(cache, _req(sid, 1)).respond(
        {A0: _ok(stable=10), A1: _ok(), B0: _ok(stable=10)}, 0.0) == (sid, [])
    assert _ctx(cache, _req(sid, 2)).respond(
        {A0: _ok(), A1: _ok(stable=10), B0: _ok()}, 0.0) == (sid, [])


def test_incremental_request_updates_a_partition_in_place() -> None:
    cache = _cache()
    sid = _session(cache)
    ctx = _ctx(cache, _req(sid, 1, [("a", 1, 9)]))
    assert _reads(ctx) == [("a", 0, 5), ("a", 1, 9), ("b", 0, 0)]
    # Updated, not added: nothing changed in its answer, so it is left out.
    assert ctx.respond({A0: _ok(), A1: _ok(), B0: _ok()}, 0.0) == (sid, [])
    assert _reads(_ctx(cache, _req(sid, 2))) == [("a", 0, 5), ("a", 1, 9), ("b", 0, 0)]


def test_forgotten_partitions_leave_the_session() -> None:
    cache = _cache()
    sid = _session(cache)
    ctx = _ctx(cache, _req(sid, 1, forget=[A1, ("nope", 3)]))
    assert _reads(ctx) == [("a", 0, 5), ("b", 0, 0)]
    assert ctx.respond({A0: _ok(hw=12), B0: _ok()}, 0.0) == (sid, [A0])
    assert _reads(_ctx(cache, _req(sid, 2))) == [("a", 0, 5), ("b", 0, 0)]


def test_partition_added_incrementally_is_always_answered() -> None:
    cache = _cache()
    sid = _session(cache)
    ctx = _ctx(cache, _req(sid, 1, [("c", 0, 2)]))
    assert _reads(ctx)[-1] == ("c", 0, 2)
    out = {A0: _ok(), A1: _ok(), B0: _ok(), ("c", 0): _ok()}
    assert ctx.respond(out, 0.0) == (sid, [("c", 0)])
    assert _ctx(cache, _req(sid, 2)).respond(out, 0.0) == (sid, [])


def test_errors_are_always_answered_and_so_is_their_clearing() -> None:
    cache = _cache()
    sid = _session(cache, {B0: ReadResult(ErrorCode.NOT_LEADER_OR_FOLLOWER, 10, 0)})
    err = ReadResult(ErrorCode.NOT_LEADER_OR_FOLLOWER, 10, 0)
    for epoch in (1, 2):
        out = {A0: _ok(), A1: _ok(), B0: err}
        assert _ctx(cache, _req(sid, epoch)).respond(out, 0.0) == (sid, [B0])
    # Same offsets as during the error, but the client must hear that it is gone.
    out = {A0: _ok(), A1: _ok(), B0: _ok()}
    assert _ctx(cache, _req(sid, 3)).respond(out, 0.0) == (sid, [B0])
    assert _ctx(cache, _req(sid, 4)).respond(out, 0.0) == (sid, [])


def test_wrong_epoch_is_refused_and_the_session_survives() -> None:
    cache = _cache()
    sid = _session(cache)
    for epoch in (2, -2, INT32_MAX):
        assert cache.context(_req(sid, epoch), 0.0) == SessionError(
            ErrorCode.INVALID_FETCH_SESSION_EPOCH)
    ctx = _ctx(cache, _req(sid, 1))
    assert ctx.incremental and len(ctx.partitions) == 3
    assert cache.context(_req(sid, 1), 0.0) == SessionError(ErrorCode.INVALID_FETCH_SESSION_EPOCH)
    assert _ctx(cache, _req(sid, 2)).incremental


def test_unknown_session_is_refused() -> None:
    cache = _cache()
    sid = _session(cache)
    missing = SessionError(ErrorCode.FETCH_SESSION_ID_NOT_FOUND)
    assert cache.context(_req(sid + 1, 1), 0.0) == missing
    assert cache.context(_req(0, 1), 0.0) == missing
    assert len(cache) == 1


def test_epoch_zero_with_an_id_replaces_that_session() -> None:
    cache = _cache()
    old = _session(cache)
    ctx = _ctx(cache, _req(old, 0, [("b", 0, 1)]))
    assert not ctx.incremental and _reads(ctx) == [("b", 0, 1)]
    assert len(cache) == 0  # closed as soon as the request is seen
    new, send = ctx.respond({B0: _ok()}, 0.0)
    assert new not in (0, old) and send == [B0]
    assert cache.context(_req(old, 1), 0.0) == SessionError(ErrorCode.FETCH_SESSION_ID_NOT_FOUND)
    assert _reads(_ctx(cache, _req(new, 1))) == [("b", 0, 1)]
    assert len(cache) == 1


def test_final_epoch_with_an_id_closes_that_session() -> None:
    cache = _cache()
    sid = _session(cache)
    ctx = _ctx(cache, _req(sid, -1, [("a", 0, 6)]))
    assert not ctx.incremental and _reads(ctx) == [("a", 0, 6)]
    assert ctx.respond({A0: _ok()}, 0.0) == (0, [A0])
    assert len(cache) == 0
    assert cache.context(_req(sid, 1), 0.0) == SessionError(ErrorCode.FETCH_SESSION_ID_NOT_FOUND)


def test_ids_are_positive_unique_and_of_their_core() -> None:
    for core in range(3):
        cache = _cache(slots=200, core=core, ncores=3, seed=core)
        ids = [_session(cache) for _ in range(200)]
        assert len(set(ids)) == 200
        assert all(0 < i <= INT32_MAX and i % 3 == core for i in ids)
    # With 2**30 cores, core 1 has two ids (1 and 2**30 + 1) and core 0 one (2**30, never 0):
    # every draw but the first collides, and the cache still finds the free id.
    for core, expected in ((1, {1, 2**30 + 1}), (0, {2**30})):
        cache = _cache(slots=len(expected), core=core, ncores=2**30)
        assert {_session(cache) for _ in expected} == expected
        assert _session_or_zero(cache) == 0
    with pytest.raises(ValueError):
        _cache(slots=2, core=0, ncores=2**30)  # more slots than ids
    with pytest.raises(ValueError):
        _cache(core=3, ncores=3)


def _session_or_zero(cache: FetchSessionCache, now: float = 0.0) -> int:
    ctx = _ctx(cache, _req(0, 0, [("a", 0, 0)]), now)
    return ctx.respond({A0: _ok()}, now)[0]


def test_full_cache_evicts_the_least_recently_used_idle_session() -> None:
    cache = _cache(slots=2, evict_idle_s=100.0)
    first = _session(cache, now=0.0)
    second = _session(cache, now=10.0)
    _ctx(cache, _req(first, 1), 20.0).respond({A0: _ok(), A1: _ok(), B0: _ok()}, 20.0)
    # `second` (last used at 10) is the least recently used; at 109 it has idled 99 s.
    assert _session_or_zero(cache, 109.0) == 0
    third = _session_or_zero(cache, 110.0)
    assert third not in (0, first, second) and len(cache) == 2
    assert cache.context(_req(second, 1), 110.0) == SessionError(
        ErrorCode.FETCH_SESSION_ID_NOT_FOUND)
    assert _ctx(cache, _req(first, 2), 110.0).incremental


def test_full_cache_without_an_idle_session_creates_none() -> None:
    cache = _cache(slots=1)
    sid = _session(cache, now=0.0)
    ctx = _ctx(cache, _req(0, 0, [("b", 0, 0)]), 119.0)
    assert ctx.respond({B0: _ok()}, 119.0) == (0, [B0])  # the client keeps full-fetching
    assert len(cache) == 1 and _ctx(cache, _req(sid, 1)).incremental
    assert _session_or_zero(_cache(slots=0)) == 0


def test_epoch_after_int32_max_is_one() -> None:
    cache = _cache()
    sid = _session(cache)
    cache._sessions[sid].epoch = INT32_MAX  # 2**31 fetches would take a while
    assert _ctx(cache, _req(sid, INT32_MAX)).incremental
    assert cache.context(_req(sid, INT32_MAX), 0.0) == SessionError(
        ErrorCode.INVALID_FETCH_SESSION_EPOCH)
    assert _ctx(cache, _req(sid, 1)).incremental
    assert _ctx(cache, _req(sid, 2)).incremental


def test_partition_that_returned_records_is_read_last_next_time() -> None:
    cache = _cache()
    sid = _session(cache)
    ctx = _ctx(cache, _req(sid, 1))
    out = {A0: _ok(records=b"x"), A1: _ok(hw=20), B0: _ok()}
    assert ctx.respond(out, 0.0) == (sid, [A0, A1])
    assert _reads(_ctx(cache, _req(sid, 2))) == [("a", 1, 7), ("b", 0, 0), ("a", 0, 5)]


def test_session_emptied_by_forgetting_is_closed() -> None:
    cache = _cache()
    sid = _session(cache)
    ctx = _ctx(cache, _req(sid, 1, forget=[A0, A1, B0]))
    assert not ctx.incremental and ctx.partitions == ()
    assert ctx.respond({}, 0.0) == (0, [])
    assert len(cache) == 0


def test_session_closed_while_the_fetch_waited_is_answered_without_one() -> None:
    cache = _cache()
    sid = _session(cache)
    ctx = _ctx(cache, _req(sid, 1))
    _ctx(cache, _req(sid, -1))  # closed by another request meanwhile
    out = {A0: _ok(), A1: _ok(), B0: _ok()}
    assert ctx.respond(out, 1.0) == (0, [A0, A1, B0])


def test_partitions_held_in_all_sessions_are_bounded() -> None:
    cache = FetchSessionCache(10, 0, 1, random.Random(1), max_partitions=4)
    sid = _session(cache)  # 3 partitions held
    assert cache.partitions_held == 3
    # A second session of 3 would pass the bound: the fetch is answered, no session made.
    ctx = _ctx(cache, _req(0, 0, [("c", 0, 0), ("c", 1, 0), ("c", 2, 0)]))
    out = {("c", 0): _ok(), ("c", 1): _ok(), ("c", 2): _ok()}
    assert ctx.respond(out, 0.0) == (0, [("c", 0), ("c", 1), ("c", 2)])
    assert (len(cache), cache.partitions_held) == (1, 3)
    # Growing the first to 4 is fine; forgetting one gives it back.
    ctx = _ctx(cache, _req(sid, 1, [("c", 0, 0)], forget=[B0]))
    assert ctx.incremental and cache.partitions_held == 3
    ctx.respond({A0: _ok(), A1: _ok(), ("c", 0): _ok()}, 0.0)
    # Growing it past the bound closes it: this fetch reads and answers all, with id 0.
    ctx = _ctx(cache, _req(sid, 2, [("c", 1, 0), ("c", 2, 0)]))
    assert not ctx.incremental and len(_reads(ctx)) == 5
    assert (len(cache), cache.partitions_held) == (0, 0)
    every = {A0: _ok(), A1: _ok(), ("c", 0): _ok(), ("c", 1): _ok(), ("c", 2): _ok()}
    assert ctx.respond(every, 0.0)[0] == 0
    assert isinstance(cache.context(_req(sid, 3), 0.0), SessionError)
