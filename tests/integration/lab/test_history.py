"""The history checker on synthetic histories: a clean one, and one per violation kind with its
exact message; the knobs (idempotent, duplicates_allowed, failed_may_exist); the summary."""

from __future__ import annotations

import threading

import pytest

from lab.history import History, HistoryViolation, Kind, Report


def clean_history() -> History:
    """Two producers on two partitions; p1 has an unknown write that landed and one that
    did not, p2 a definite failure; consumer c1 saw part of partition 0."""
    h = History()
    finals: dict[int, list[tuple[int, str]]] = {0: [], 1: []}
    for i in range(6):
        for producer, p in (("p1", 0), ("p2", 1)):
            rid = f"{producer}-{i}"
            h.attempt(rid, producer=producer)
            h.acked(rid, p, len(finals[p]))
            finals[p].append((len(finals[p]), rid))
    h.attempt("p1-u1", producer="p1")
    h.unknown("p1-u1")
    finals[0].append((6, "p1-u1"))
    h.attempt("p1-u2", producer="p1")
    h.unknown("p1-u2")
    h.attempt("p2-f", producer="p2")
    h.failed("p2-f")
    for o, rid in finals[0][:4]:
        h.observed(0, o, rid, consumer="c1")
    h.observed(0, 1, "p1-1", consumer="c1")  # read twice: not a second record
    for p, records in finals.items():
        h.final(p, records)
    return h


def kinds(report: Report) -> set[Kind]:
    return {v.kind for v in report.violations}


def messages(report: Report, kind: Kind) -> list[str]:
    return [v.message for v in report.of(kind)]


def test_clean_history_is_ok_and_counted() -> None:
    report = clean_history().check()
    report.assert_ok()
    c = report.counts
    assert (c["attempted"], c["acked"], c["failed"], c["unknown"]) == (15, 12, 1, 2)
    assert (c["unknown_present"], c["unknown_absent"]) == (1, 1)
    assert (c["observed"], c["final_records"], c["final_partitions"]) == (5, 13, 2)
    assert report.summary().startswith("history ok\n  attempted 15, acked 12")


def test_lost_acked_write() -> None:
    h = History()
    for i, rid in enumerate("abc"):
        h.attempt(rid)
        h.acked(rid, 0, i)
    h.attempt("d")
    h.acked("d", 1, 0)
    h.final(0, [(0, "a"), (1, "c")])  # b lost, c moved into its place; no final read of p1
    report = h.check()
    assert messages(report, Kind.LOST) == [
        "lost acked write 'b': acked at p0@1, absent from the final read; p0@1 holds ['c']",
        "lost acked write 'd': acked at p1@0, absent from the final read (no final read of p1)",
    ]
    assert messages(report, Kind.OFFSET_MISMATCH) == [
        "'c' acked at p0@2, final read has it at p0@1"]


def test_offset_means_two_things_across_observations_and_final_read() -> None:
    h = History()
    for rid in "abx":
        h.attempt(rid)
    h.acked("a", 0, 0)
    h.observed(0, 1, "b", consumer="c1")
    h.observed(0, 1, "x", consumer="c2")
    h.final(0, [(0, "a"), (1, "x")])
    report = h.check()
    assert messages(report, Kind.INCONSISTENT_OFFSET) == [
        "p0@1 means two things: 'b' (observed by 'c1') vs 'x' (final read, observed by 'c2')"]
    v = report.of(Kind.INCONSISTENT_OFFSET)[0]
    assert (v.partition, v.offset) == (0, 1)
    assert kinds(report) == {Kind.INCONSISTENT_OFFSET, Kind.PHANTOM}


def test_acked_offset_mismatch() -> None:
    h = History()
    h.attempt("a")
    h.acked("a", 0, 5)
    h.final(0, [(6, "a")])
    report = h.check()
    assert kinds(report) == {Kind.OFFSET_MISMATCH}
    assert messages(report, Kind.OFFSET_MISMATCH) == [
        "'a' acked at p0@5, final read has it at p0@6"]
    v = report.violations[0]
    assert (v.id, v.partition, v.offset) == ("a", 0, 5)


def test_duplicates_against_the_allowance() -> None:
    h = History()
    h.attempt("a", producer="p")
    h.acked("a", 0, 0)
    h.attempt("b", producer="p")
    h.acked("b", 0, 1)
    h.final(0, [(0, "a"), (1, "b"), (2, "b"), (2, "b")])  # b twice; (2, b) re-read
    report = h.check()
    assert messages(report, Kind.DUPLICATE) == [
        "'b' is in the final read 2 times: p0@1, p0@2 (allowed 0 extra copies, found 1)"]
    assert report.counts["duplicate_copies"] == 1
    assert h.check(duplicates_allowed=1).ok
    assert h.check(idempotent=False).ok  # at-least-once: any number unless given
    assert not h.check(idempotent=False, duplicates_allowed=0).ok


def test_order_of_one_idempotent_producer_in_one_partition() -> None:
    h = History()
    for rid in ("a", "b", "c"):
        h.attempt(rid, producer="p1")
    h.attempt("z", producer="p2")
    h.acked("a", 0, 0)
    h.acked("c", 0, 1)
    h.acked("b", 0, 2)
    h.acked("z", 0, 3)
    h.final(0, [(0, "a"), (1, "c"), (2, "b"), (3, "z")])
    report = h.check()
    assert messages(report, Kind.ORDER) == [
        "producer 'p1' p0: 'b' (sent #1) is at offset 2 but 'c' (sent #2) at offset 1"]
    assert kinds(report) == {Kind.ORDER}
    assert h.check(idempotent=False).ok


def test_phantom_read() -> None:
    h = History()
    for rid in "abc":
        h.attempt(rid)
        h.unknown(rid)
    h.observed(0, 0, "a", consumer="c1")
    h.observed(0, 2, "c", consumer="c1")  # seen, then truncated away
    h.observed(0, 2, "c", consumer="c1")  # seen twice: reported once
    h.final(0, [(0, "a"), (1, "b")])
    report = h.check()
    assert messages(report, Kind.PHANTOM) == [
        "consumer 'c1' observed 'c' at p0@2 during the run; the final read does not have it"]
    assert kinds(report) == {Kind.PHANTOM}


def test_observed_at_another_offset_than_finally_read() -> None:
    h = History()
    h.attempt("a")
    h.observed(0, 3, "a")
    h.final(0, [(4, "a")])
    assert messages(h.check(), Kind.OFFSET_MISMATCH) == [
        "a consumer observed 'a' at p0@3, final read has it at p0@4"]


def test_failed_writes_must_be_absent_unknown_ones_may_be_either() -> None:
    h = History()
    for rid in ("f", "u1", "u2"):
        h.attempt(rid)
    h.failed("f")
    h.unknown("u1")
    h.unknown("u2")
    h.final(0, [(0, "f"), (1, "u1")])
    report = h.check()
    assert messages(report, Kind.FAILED_PRESENT) == ["'f' failed definitely, yet was read at p0@0"]
    assert kinds(report) == {Kind.FAILED_PRESENT}
    assert h.check(failed_may_exist=True).ok


def test_a_record_nobody_wrote() -> None:
    h = History()
    h.final(0, [(0, "garbage")])
    assert messages(h.check(), Kind.UNATTEMPTED) == ["'garbage' read at p0@0 was never attempted"]


def test_assert_ok_raises_a_readable_summary() -> None:
    h = History()
    for i in range(15):
        h.attempt(f"r{i}")
        h.acked(f"r{i}", 0, i)
    h.final(0, [])
    with pytest.raises(HistoryViolation) as exc:
        h.check().assert_ok(limit=2)
    assert str(exc.value).splitlines() == [
        "history: 15 violations (lost 15)",
        "  attempted 15, acked 15, failed 0, unknown 0 (present 0, absent 0), observed 0,"
        " final 0 records in 1 partitions",
        "  lost (15):",
        "    lost acked write 'r0': acked at p0@0, absent from the final read",
        "    lost acked write 'r1': acked at p0@1, absent from the final read",
        "    ... and 13 more",
    ]
    assert len(exc.value.report.of(Kind.LOST)) == 15


def test_recording_mistakes_are_errors() -> None:
    h = History()
    h.attempt("a")
    with pytest.raises(ValueError, match="attempted twice"):
        h.attempt("a")
    h.final(0, [])
    with pytest.raises(ValueError, match="already has a final read"):
        h.final(0, [])


def test_recording_from_many_threads() -> None:
    h = History()

    def produce(t: int) -> None:
        for i in range(500):
            rid = f"t{t}-{i}"
            h.attempt(rid, producer=f"t{t}")
            h.acked(rid, t, i)

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(10)
    for t in range(4):
        h.final(t, [(i, f"t{t}-{i}") for i in range(500)])
    report = h.check()
    report.assert_ok()
    assert report.counts["acked"] == 2000
