"""A produce/consume history and its checker: every acknowledged write against what is finally
read, in the spirit of Jepsen's Kafka checker (simplified: one topic, no transactions).

Concern: recording what clients attempted, were told and saw, and judging it. It must not know
any Kafka client or the broker: a record is an id (a string the test writes into the record's
value), a position is (partition, offset).

Recording (thread-safe; any order; delivery callbacks may call it from client threads)::

    h = History()
    h.attempt("p1-17", producer="p1")     # before send: the producer's send order
    h.acked("p1-17", partition=0, offset=42)
    h.failed("p1-18")                     # definitely not written (see below)
    h.unknown("p1-19")                    # timed out / connection lost: may or may not be
    h.observed(0, 42, "p1-17", consumer="c1")   # seen by a consumer during the run
    h.final(0, [(0, "p1-0"), ...])        # the full read of partition 0 at the end
    h.check(idempotent=True).assert_ok()

Violations (each a `Violation` with a precise message):

- LOST: an acked id absent from the final read.
- INCONSISTENT_OFFSET: two different ids at one (partition, offset), across the consumers'
  observations and the final read (an offset means two things).
- OFFSET_MISMATCH: an acked (or observed) id that the final read holds, but not where it was
  acked (or observed).
- DUPLICATE: an id at more than one position of the final read, beyond `duplicates_allowed`
  extra copies (0 for an idempotent producer, any number otherwise unless given). The same
  (offset, id) read twice is one record read twice, not a duplicate.
- ORDER (idempotent producers only): one producer's acked ids in one partition of the final
  read are not in the order it sent them.
- PHANTOM: an id a consumer observed during the run that the final read does not hold at all
  (data seen, then gone: e.g. read above a high watermark that a new leader truncated).
- FAILED_PRESENT: a `failed` id that was read (unless `failed_may_exist`).
- UNATTEMPTED: a read id that nobody attempted, acked, failed or left unknown (garbage).

What counts as a definite failure. Kafka clients report many errors after retries in which a
copy may still have been appended (a timeout after the request left, a lost connection, an
expired batch). Tests must record `failed` only for an outcome the client guarantees was not
persisted -- librdkafka's PERSISTENCE_STATUS NOT_PERSISTED: the message was never sent
(rejected locally, or timed out in the queue before any request carried it), or the broker
answered the whole batch with a non-retriable error before appending it. Every other failure
is `unknown`: it may be present or absent (counted, never a violation). `failed_may_exist`
turns FAILED_PRESENT off for a client whose failures cannot be classified.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import pairwise

__all__ = ["History", "HistoryViolation", "Kind", "Report", "Violation"]

RecordId = str


class Kind(StrEnum):
    LOST = "lost"
    INCONSISTENT_OFFSET = "inconsistent-offset"
    OFFSET_MISMATCH = "offset-mismatch"
    DUPLICATE = "duplicate"
    ORDER = "order"
    PHANTOM = "phantom"
    FAILED_PRESENT = "failed-present"
    UNATTEMPTED = "unattempted"


@dataclass(frozen=True, slots=True)
class Violation:
    kind: Kind
    message: str
    id: RecordId | None = None
    partition: int | None = None
    offset: int | None = None


class HistoryViolation(AssertionError):
    """Raised by `Report.assert_ok`; carries the report."""

    def __init__(self, report: Report, limit: int) -> None:
        super().__init__(report.summary(limit))
        self.report = report


@dataclass(frozen=True, slots=True)
class Report:
    counts: Mapping[str, int]
    violations: tuple[Violation, ...]

    @property
    def ok(self) -> bool:
        return not self.violations

    def of(self, kind: Kind) -> list[Violation]:
        return [v for v in self.violations if v.kind is kind]

    def summary(self, limit: int = 10) -> str:
        """Counts, then up to `limit` violations of each kind."""
        c = self.counts
        by_kind: dict[Kind, list[Violation]] = defaultdict(list)
        for v in self.violations:
            by_kind[v.kind].append(v)
        head = ("history ok" if self.ok else f"history: {len(self.violations)} violations ("
                + ", ".join(f"{k} {len(vs)}" for k, vs in by_kind.items()) + ")")
        lines = [head, (
            f"  attempted {c['attempted']}, acked {c['acked']}, failed {c['failed']}, unknown"
            f" {c['unknown']} (present {c['unknown_present']}, absent {c['unknown_absent']}),"
            f" observed {c['observed']}, final {c['final_records']} records in"
            f" {c['final_partitions']} partitions")]
        for kind, vs in by_kind.items():
            lines.append(f"  {kind} ({len(vs)}):")
            lines += [f"    {v.message}" for v in vs[:limit]]
            if len(vs) > limit:
                lines.append(f"    ... and {len(vs) - limit} more")
        return "\n".join(lines)

    def assert_ok(self, limit: int = 10) -> None:
        if not self.ok:
            raise HistoryViolation(self, limit)


@dataclass
class _Events:
    attempts: dict[RecordId, tuple[str, int]] = field(default_factory=dict)  # producer, seq
    acks: dict[RecordId, list[tuple[int, int]]] = field(default_factory=dict)
    failed: set[RecordId] = field(default_factory=set)
    unknown: set[RecordId] = field(default_factory=set)
    observed: list[tuple[int, int, RecordId, str]] = field(default_factory=list)
    finals: dict[int, list[tuple[int, RecordId]]] = field(default_factory=dict)


class History:
    """The events of one run against one topic (record with the methods, then `check`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._e = _Events()
        self._seq = 0

    def attempt(self, id: RecordId, *, producer: str = "") -> None:
        """`producer` is about to send `id` (call in send order: it defines ORDER)."""
        with self._lock:
            if id in self._e.attempts:
                raise ValueError(f"{id!r} attempted twice: ids must be unique")
            self._e.attempts[id] = (producer, self._seq)
            self._seq += 1

    def acked(self, id: RecordId, partition: int, offset: int) -> None:
        with self._lock:
            self._e.acks.setdefault(id, []).append((partition, offset))

    def failed(self, id: RecordId) -> None:
        """Definitely not written (see the module docstring for what qualifies)."""
        with self._lock:
            self._e.failed.add(id)

    def unknown(self, id: RecordId) -> None:
        """May or may not have been written (a timeout, a lost connection)."""
        with self._lock:
            self._e.unknown.add(id)

    def observed(self, partition: int, offset: int, id: RecordId,
                 *, consumer: str = "") -> None:
        with self._lock:
            self._e.observed.append((partition, offset, id, consumer))

    def final(self, partition: int, records: Iterable[tuple[int, RecordId]]) -> None:
        """The full read of `partition` at the end of the run, as (offset, id)."""
        with self._lock:
            if partition in self._e.finals:
                raise ValueError(f"partition {partition} already has a final read")
            self._e.finals[partition] = list(records)

    def check(self, *, idempotent: bool = True, duplicates_allowed: int | None = None,
              failed_may_exist: bool = False) -> Report:
        """Judge the history. `idempotent` (the producers used enable.idempotence) enables
        ORDER and makes the default `duplicates_allowed` 0 instead of unlimited (None)."""
        with self._lock:
            return _Checker(self._e, idempotent=idempotent,
                            duplicates_allowed=0 if idempotent and duplicates_allowed is None
                            else duplicates_allowed,
                            failed_may_exist=failed_may_exist).run()


def _pos(p: int, o: int) -> str:
    return f"p{p}@{o}"


class _Checker:
    def __init__(self, e: _Events, *, idempotent: bool, duplicates_allowed: int | None,
                 failed_may_exist: bool) -> None:
        self.e = e
        self.idempotent = idempotent
        self.duplicates_allowed = duplicates_allowed
        self.failed_may_exist = failed_may_exist
        self.violations: list[Violation] = []
        # Final read, indexed both ways; identical (offset, id) pairs collapse to one.
        self.final_at: dict[tuple[int, int], set[RecordId]] = defaultdict(set)
        self.where: dict[RecordId, list[tuple[int, int]]] = defaultdict(list)
        for p, records in sorted(e.finals.items()):
            for o, rid in sorted(set(records)):
                self.final_at[(p, o)].add(rid)
                self.where[rid].append((p, o))

    def add(self, kind: Kind, message: str, rid: RecordId | None = None,
            p: int | None = None, o: int | None = None) -> None:
        self.violations.append(Violation(kind, message, rid, p, o))

    def run(self) -> Report:
        self.inconsistent_offsets()
        self.lost_and_mismatched()
        self.duplicates()
        if self.idempotent:
            self.order()
        self.phantoms()
        self.failed_and_unattempted()
        return Report(self.counts(), tuple(self.violations))

    def inconsistent_offsets(self) -> None:
        seen: dict[tuple[int, int], dict[RecordId, list[str]]] = defaultdict(dict)
        for (p, o), rids in self.final_at.items():
            for rid in rids:
                seen[(p, o)].setdefault(rid, []).append("final read")
        for p, o, rid, consumer in self.e.observed:
            who = f"observed by {consumer!r}" if consumer else "observed"
            sources = seen[(p, o)].setdefault(rid, [])
            if who not in sources:
                sources.append(who)
        for (p, o), by_id in sorted(seen.items()):
            if len(by_id) > 1:
                what = " vs ".join(f"{rid!r} ({', '.join(src)})"
                                   for rid, src in sorted(by_id.items()))
                self.add(Kind.INCONSISTENT_OFFSET, f"{_pos(p, o)} means two things: {what}",
                         None, p, o)

    def lost_and_mismatched(self) -> None:
        for rid, acks in sorted(self.e.acks.items()):
            found = self.where.get(rid)
            for p, o in sorted(set(acks)):
                if not found:
                    note = (f" (no final read of p{p})" if p not in self.e.finals else
                            f"; {_pos(p, o)} holds {sorted(self.final_at[(p, o)])}"
                            if (p, o) in self.final_at else "")
                    self.add(Kind.LOST, f"lost acked write {rid!r}: acked at {_pos(p, o)},"
                             f" absent from the final read{note}", rid, p, o)
                elif (p, o) not in found:
                    self.add(Kind.OFFSET_MISMATCH, f"{rid!r} acked at {_pos(p, o)}, final read"
                             f" has it at {', '.join(_pos(*x) for x in found)}", rid, p, o)

    def duplicates(self) -> None:
        dups = {rid: at for rid, at in self.where.items() if len(at) > 1}
        extra = sum(len(at) - 1 for at in dups.values())
        if self.duplicates_allowed is None or extra <= self.duplicates_allowed:
            return
        allowance = f" (allowed {self.duplicates_allowed} extra copies, found {extra})"
        for rid, at in sorted(dups.items()):
            self.add(Kind.DUPLICATE, f"{rid!r} is in the final read {len(at)} times: "
                     + ", ".join(_pos(*x) for x in at) + allowance, rid, *at[1])

    def order(self) -> None:
        # Per producer and partition: acked ids in send order, each at its first final offset.
        lanes: dict[tuple[str, int], list[tuple[int, RecordId, int]]] = defaultdict(list)
        for rid, (producer, seq) in self.e.attempts.items():
            if rid not in self.e.acks:
                continue
            for p, o in self.where.get(rid, [])[:1]:
                lanes[(producer, p)].append((seq, rid, o))
        for (producer, p), lane in sorted(lanes.items()):
            lane.sort()
            for (s1, r1, o1), (s2, r2, o2) in pairwise(lane):
                if o1 >= o2:
                    self.add(Kind.ORDER, f"producer {producer!r} p{p}: {r1!r} (sent #{s1}) is"
                             f" at offset {o1} but {r2!r} (sent #{s2}) at offset {o2}",
                             r2, p, o2)

    def phantoms(self) -> None:
        reported: set[tuple[int, int, RecordId]] = set()
        for p, o, rid, consumer in self.e.observed:
            if (p, o, rid) in reported:
                continue
            reported.add((p, o, rid))
            who = f"consumer {consumer!r}" if consumer else "a consumer"
            found = self.where.get(rid)
            if not found:
                self.add(Kind.PHANTOM, f"{who} observed {rid!r} at {_pos(p, o)} during the"
                         " run; the final read does not have it", rid, p, o)
            elif (p, o) not in found:
                self.add(Kind.OFFSET_MISMATCH, f"{who} observed {rid!r} at {_pos(p, o)}, final"
                         f" read has it at {', '.join(_pos(*x) for x in found)}", rid, p, o)

    def failed_and_unattempted(self) -> None:
        e = self.e
        known = set(e.attempts) | set(e.acks) | e.failed | e.unknown
        read: dict[RecordId, tuple[int, int]] = {rid: at[0] for rid, at in self.where.items()}
        for p, o, rid, _c in e.observed:
            read.setdefault(rid, (p, o))
        for rid, (p, o) in sorted(read.items()):
            if rid in e.failed and rid not in e.acks and not self.failed_may_exist:
                self.add(Kind.FAILED_PRESENT, f"{rid!r} failed definitely, yet was read at"
                         f" {_pos(p, o)}", rid, p, o)
            elif rid not in known:
                self.add(Kind.UNATTEMPTED, f"{rid!r} read at {_pos(p, o)} was never attempted",
                         rid, p, o)

    def counts(self) -> dict[str, int]:
        e = self.e
        unknown = e.unknown - set(e.acks)
        counts = {
            "attempted": len(e.attempts), "acked": len(e.acks), "failed": len(e.failed),
            "unknown": len(unknown),
            "unknown_present": sum(1 for rid in unknown if rid in self.where),
            "unknown_absent": sum(1 for rid in unknown if rid not in self.where),
            "observed": len(e.observed),
            "final_records": sum(len(at) for at in self.where.values()),
            "final_partitions": len(e.finals),
            "duplicate_copies": sum(len(at) - 1 for at in self.where.values()),
        }
        for kind in Kind:
            counts[str(kind)] = sum(1 for v in self.violations if v.kind is kind)
        return counts
