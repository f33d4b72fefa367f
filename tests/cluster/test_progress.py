"""progress: the recovery (RecoveryStm) / replicate hand-off over one last-sent cursor."""

from __future__ import annotations

from redshank.cluster.raft.progress import Progress, ProgressState
from redshank.cluster.raft.recovery_stm import RecoveryStm
from redshank.cluster.raft.types import Index


def test_probe_keeps_one_append_in_flight_then_replicates() -> None:
    pr = Progress(match=Index(0), next=Index(5), recovery=RecoveryStm(target=Index(4)))
    assert not pr.paused(8)
    pr.sent(Index(7), 3)  # recovery sends 5..7
    assert pr.paused(8) and pr.next == 5  # probe does not move the cursor optimistically
    assert pr.acked(Index(7))
    assert pr.state == ProgressState.REPLICATE and (pr.match, pr.next) == (7, 8)


def test_replicate_pipelines_up_to_the_inflight_limit() -> None:
    pr = Progress(match=Index(7), next=Index(8))
    for last in (8, 9, 10):
        assert not pr.paused(3)
        pr.sent(Index(last), 1)
    assert pr.paused(3) and pr.next == 11  # the cursor is the last sent offset + 1
    pr.acked(Index(9))
    assert not pr.paused(3) and pr.inflight == [10]


def test_stale_responses_are_ignored() -> None:
    pr = Progress(match=Index(7), next=Index(11))
    assert not pr.acked(Index(5))  # an old ack never moves match back
    assert pr.match == 7
    assert not pr.rejected(Index(6), Index(6), Index(12))  # a rejection below match is stale
    assert pr.state == ProgressState.REPLICATE


def test_rejection_falls_back_to_probe_from_match() -> None:
    pr = Progress(match=Index(7), next=Index(11))
    pr.inflight = [9, 10]
    assert pr.rejected(Index(9), Index(8), Index(12))
    assert pr.state == ProgressState.PROBE and pr.next == 8 and pr.inflight == []
    # In probe, only a rejection of the probe just sent counts; the hint moves the cursor.
    pr2 = Progress(match=Index(2), next=Index(20), recovery=RecoveryStm(target=Index(25)))
    assert not pr2.rejected(Index(12), Index(4), Index(25))
    assert pr2.rejected(Index(19), Index(4), Index(25)) and pr2.next == 5
