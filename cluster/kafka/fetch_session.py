"""Incremental fetch sessions (KIP-227): which partitions a fetch reads, and which it answers.

Concern: one core's cache of fetch sessions: what a request's (session_id, session_epoch) asks
for, the partitions a session holds (the request parameters, and the high watermark, last stable
offset, log start offset and error the client last heard), which partitions an incremental
response must carry, new session ids, and bounded memory (at most `slots` sessions holding at
most `max_partitions` partitions in all; an idle session is evicted, least recently used first;
a session that would pass the partition bound is not created, or is closed). Time comes in as
`now`, randomness as a `random.Random`. Must not know: logs, whether topics exist, byte
budgets, actors, sockets, clocks.

    request (id, epoch)   meaning (KIP-227, "FetchRequest Metadata meaning")
    (0, -1)               full fetch, no session
    (0 or ID, 0)          full fetch; close ID; create a session if a slot is free
    (ID, -1)              close ID; full fetch, no session
    (ID, EPOCH > 0)       incremental fetch of session ID, which must expect EPOCH
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Mapping
from typing import Protocol

from redshank.cluster.kafka.topic_table import TopicPartition
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.fast_dataclass import dataclass
from redshank.protocol.messages.fetch import FetchRequest

__all__ = [
    "FetchContext",
    "FetchSessionCache",
    "PartitionOutcome",
    "SessionError",
    "SessionPartition",
    "requested",
]


_INT32_MAX = 2**31 - 1
_INITIAL_EPOCH = 0  # a full fetch that asks for a session
_FINAL_EPOCH = -1  # a full fetch without one


@dataclass(frozen=True, slots=True)
class SessionPartition:
    """What one fetch reads of one partition (`tp`: built once per request, the key of the
    partition's result all along the fetch)."""

    tp: TopicPartition
    fetch_offset: int
    partition_max_bytes: int
    current_leader_epoch: int

    @property
    def topic(self) -> str:
        return self.tp[0]

    @property
    def partition(self) -> int:
        return self.tp[1]


class PartitionOutcome(Protocol):
    """What the broker read of one partition (cluster.partition.api.ReadResult fits)."""

    @property
    def error_code(self) -> int: ...
    @property
    def high_watermark(self) -> int: ...
    @property
    def log_start_offset(self) -> int: ...
    @property
    def last_stable_offset(self) -> int: ...
    @property
    def records(self) -> bytes | memoryview | None: ...


@dataclass(frozen=True, slots=True)
class SessionError:
    error_code: int  # the response's top-level error; it carries no partitions and session id 0


@dataclass(slots=True)
class _Cached:
    fetch_offset: int
    partition_max_bytes: int
    current_leader_epoch: int
    # What the client last heard; None until a response carried the partition (so it must).
    high_watermark: int | None = None
    last_stable_offset: int | None = None
    log_start_offset: int | None = None
    error_code: int = 0

    def must_send(self, out: PartitionOutcome) -> bool:
        """Whether the response must carry this partition; remembers what it will say. Records
        and errors always go; so do a changed high watermark, last stable offset or log start
        offset, and a cleared error (Kafka resets its cached high watermark on an error for the
        same reason). The last stable offset is Kafka's too (KIP-227's
        CachedPartition.maybeUpdateResponseData): a read_committed consumer reads up to it, and
        one not told that it moved would not know that its next fetch finds records. It is
        compared as the response says it: -1 (not known, as the watermark board answers) is
        the high watermark there, so a board answer and a leader's saying the same are the
        same (compared raw, every switch between the two re-sent an unchanged partition)."""
        heard = (self.high_watermark, self.last_stable_offset, self.log_start_offset,
                 self.error_code)
        lso = out.last_stable_offset if out.last_stable_offset >= 0 else out.high_watermark
        told = (out.high_watermark, lso, out.log_start_offset, out.error_code)
        (self.high_watermark, self.last_stable_offset, self.log_start_offset,
         self.error_code) = told
        return bool(out.records) or out.error_code != 0 or told != heard


@dataclass(slots=True)
class _Session:
    id: int
    epoch: int  # the epoch the next incremental request must carry
    last_used: float
    # In read order: insertion order, except that a partition which returned records moves to
    # the back (see FetchContext.respond).
    partitions: dict[TopicPartition, _Cached]


def _next_epoch(epoch: int) -> int:
    return 1 if epoch == _INT32_MAX else epoch + 1  # 0 and -1 mean full fetches, never reused


def requested(request: FetchRequest) -> tuple[SessionPartition, ...]:
    """The partitions a request names, in its order."""
    return tuple(
        SessionPartition(TopicPartition(t.topic, p.partition), p.fetch_offset,
                         p.partition_max_bytes, p.current_leader_epoch)
        for t in request.topics for p in t.partitions
    )


class FetchContext:
    """One fetch: read `partitions`, then `respond` with what they gave."""

    __slots__ = ("_cache", "_create", "_epoch", "_session", "incremental", "partitions")

    def __init__(self, cache: FetchSessionCache, partitions: tuple[SessionPartition, ...], *,
                 create: bool = False, session: _Session | None = None) -> None:
        self.partitions = partitions
        self.incremental = session is not None
        self._cache = cache
        self._create = create
        self._session = session
        self._epoch = session.epoch if session is not None else 0

    def respond(self, results: Mapping[TopicPartition, PartitionOutcome], now: float
                ) -> tuple[int, list[TopicPartition]]:
        """The session_id to put in the response, and the partitions to include, in order.
        `results` holds every partition of `partitions`. Call once per context."""
        everything = [p.tp for p in self.partitions]
        if self._create:
            return self._cache._create(self.partitions, results, now), everything
        s = self._session
        if s is None:
            return 0, everything
        if not self._cache._holds(s) or s.epoch != self._epoch:
            # Closed, replaced or evicted, or used by a later request, while this fetch waited:
            # session id 0 ends the session on the client side, which starts over with a full
            # fetch (Kafka answers INVALID_FETCH_SESSION_EPOCH; this response cannot carry one).
            return 0, everything
        self._cache._touch(s, now)
        send = []
        for tp in everything:
            out = results[tp]
            if s.partitions[tp].must_send(out):
                send.append(tp)
                if out.records:
                    # To the back: the next fetches read the others first, so a request's byte
                    # budget spent on the front of a long session cannot starve the rest (Kafka
                    # rotates its session's partitions the same way).
                    s.partitions[tp] = s.partitions.pop(tp)
        return s.id, send


class FetchSessionCache:
    """The fetch sessions of one core. Ids are congruent to `core` modulo `ncores`, so the caches
    of different cores never hand out the same id. `now` must not go backwards."""

    def __init__(self, slots: int, core: int, ncores: int, rng: random.Random,
                 evict_idle_s: float = 120.0, max_partitions: int = 200_000) -> None:
        if not 0 <= core < ncores:
            raise ValueError(f"core {core} not in [0, {ncores})")
        # Ids are core + ncores * k, positive int32s: k in [lo, hi].
        self._lo = 0 if core else 1
        self._hi = (_INT32_MAX - core) // ncores
        if not 0 <= slots <= self._hi - self._lo + 1:
            raise ValueError(f"slots {slots} not in [0, {self._hi - self._lo + 1}]")
        if evict_idle_s < 0:
            raise ValueError(f"evict_idle_s {evict_idle_s} is negative")
        self._slots = slots
        # Partitions held by all sessions: a client naming millions of partitions (a 100 MB
        # request can) must not make the cache keep them between requests.
        self._max_partitions = max_partitions
        self.partitions_held = 0
        self._core = core
        self._ncores = ncores
        self._rng = rng
        self._evict_idle_s = evict_idle_s
        # Least recently used first (`_touch` moves a session to the end); len <= slots.
        self._sessions: OrderedDict[int, _Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def context(self, request: FetchRequest, now: float) -> FetchContext | SessionError:
        sid, epoch = request.session_id, request.session_epoch
        if epoch in (_INITIAL_EPOCH, _FINAL_EPOCH):
            if sid != 0:
                self._remove(sid)  # a full fetch closes the session it names
            return FetchContext(self, requested(request), create=epoch == _INITIAL_EPOCH)
        session = self._sessions.get(sid)
        if session is None:
            return SessionError(ErrorCode.FETCH_SESSION_ID_NOT_FOUND)
        if epoch != session.epoch:
            return SessionError(ErrorCode.INVALID_FETCH_SESSION_EPOCH)
        parts = session.partitions
        for p in requested(request):
            cached = parts.get(p.tp)
            if cached is None:
                parts[p.tp] = _Cached(p.fetch_offset, p.partition_max_bytes, p.current_leader_epoch)
                self.partitions_held += 1
            else:  # keeps its place and what the client last heard
                cached.fetch_offset = p.fetch_offset
                cached.partition_max_bytes = p.partition_max_bytes
                cached.current_leader_epoch = p.current_leader_epoch
        for t in request.forgotten_topics_data:
            for partition in t.partitions:
                if parts.pop(TopicPartition(t.topic, partition), None) is not None:
                    self.partitions_held -= 1
        session.epoch = _next_epoch(session.epoch)
        everything = tuple(
            SessionPartition(tp, c.fetch_offset, c.partition_max_bytes, c.current_leader_epoch)
            for tp, c in parts.items())
        if not parts or self.partitions_held > self._max_partitions:
            # Nothing left to fetch (as Kafka does), or grown past the bound: free the slot and
            # answer this fetch in full with id 0, which ends the session on the client side.
            self._remove(sid)
            return FetchContext(self, everything)
        self._touch(session, now)
        return FetchContext(self, everything, session=session)

    def _create(self, partitions: tuple[SessionPartition, ...],
                results: Mapping[TopicPartition, PartitionOutcome], now: float) -> int:
        """A new session holding `partitions` as answered by `results`; 0 if no slot is free."""
        parts: dict[TopicPartition, _Cached] = {}
        for p in partitions:
            cached = parts[p.tp] = _Cached(
                p.fetch_offset, p.partition_max_bytes, p.current_leader_epoch)
            cached.must_send(results[p.tp])  # a full response carries all
        if len(parts) + self.partitions_held > self._max_partitions:
            return 0
        if len(self._sessions) >= self._slots and not self._evict_idle(now):
            return 0  # the client keeps sending full fetches, which work without a session
        sid = self._new_id()
        self._sessions[sid] = _Session(sid, _next_epoch(_INITIAL_EPOCH), now, parts)
        self.partitions_held += len(parts)
        return sid

    def _evict_idle(self, now: float) -> bool:
        """Evict the least recently used session if it has been idle `evict_idle_s`. A busy
        session is never evicted for a new one: that would only make both clients thrash."""
        lru = next(iter(self._sessions.values()), None)
        if lru is None or now - lru.last_used < self._evict_idle_s:
            return False
        self._remove(lru.id)
        return True

    def _remove(self, sid: int) -> None:
        session = self._sessions.pop(sid, None)
        if session is not None:
            self.partitions_held -= len(session.partitions)

    def _new_id(self) -> int:
        # Terminates: a slot is free, and there are at least `slots` ids (checked in __init__).
        while True:
            sid = self._core + self._ncores * self._rng.randint(self._lo, self._hi)
            if sid not in self._sessions:
                return sid

    def _holds(self, session: _Session) -> bool:
        return self._sessions.get(session.id) is session

    def _touch(self, session: _Session, now: float) -> None:
        session.last_used = now
        self._sessions.move_to_end(session.id)
