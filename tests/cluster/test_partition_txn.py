"""The partition side of transactions (KIP-98), sans-IO over real storage logs: transactional
batches open a producer's transaction, COMMIT/ABORT markers (control batches taking an offset)
close it, the last stable offset holds read_committed readers below every undecided
transaction, the aborted-transactions index names the aborted ones, epochs fence zombies, a
retried marker is written again harmlessly, and all of it is the same after a restart (rebuilt
from the log), on a new leader (followers keep it from the batches they are sent), and after a
Raft truncation cut a marker or a transaction's first batch."""

from __future__ import annotations

from pathlib import Path

from test_partition import Host
from test_partition_replicas import Hub, stored

from redshank.actors.disk_writer import scan_producers
from redshank.cluster.kafka.handlers.write_txn_markers import MarkerWrite, control_batch
from redshank.cluster.kafka.producer_state import RECENT_MAX, ProducerStateTable
from redshank.cluster.partition.api import Append, AppendMarker, ProducerBatch
from redshank.cluster.raft.types import Role
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.records import BatchBuilder
from redshank.storage import LogConfig

P1, P2, P3 = 1001, 1002, 1003


def txn(pid: int, seq: int, n: int = 1, epoch: int = 0, transactional: bool = True
        ) -> Append:
    b = BatchBuilder(producer_id=pid, producer_epoch=epoch, base_sequence=seq,
                     is_transactional=transactional)
    for i in range(n):
        b.append(b"v%d" % i, timestamp=1000 + i)
    return Append(bytearray(b.build()), -1,
                  ProducerBatch(pid, epoch, seq, seq + n - 1, transactional))


def marker(pid: int, commit: bool, epoch: int = 0, coordinator_epoch: int = 0) -> Append:
    w = MarkerWrite(0, None, 0, pid, epoch, commit, coordinator_epoch)  # type: ignore[arg-type]
    return Append(bytearray(control_batch(w, 5000)), -1, None)


def plain(n: int = 1) -> Append:
    b = BatchBuilder()
    for i in range(n):
        b.append(b"p%d" % i, timestamp=1000)
    return Append(bytearray(b.build()), -1, None)


def lso(h: Host) -> int:
    return h.part.last_stable_offset()


def test_lso_with_interleaved_producers_and_the_aborted_index(tmp_path: Path) -> None:
    h = Host(tmp_path)
    h.run()
    part = h.part
    assert part.append(txn(P1, 0, 2), "a") is None   # 0-1, P1's txn starts at 0
    assert part.append(txn(P2, 0), "b") is None      # 2, P2's txn starts at 2
    assert part.append(plain(), "c") is None         # 3
    h.run()
    assert part.high_watermark == 4 and lso(h) == 0
    assert part.append(txn(P1, 2), "d") is None      # 4, P1's txn goes on
    assert part.append(marker(P1, True), "e") is None  # 5: P1 commits
    assert lso(h) == 0  # the marker is not committed yet: still undecided for readers
    h.run()
    assert h.answers["e"].base_offset == 5
    assert part.high_watermark == 6 and lso(h) == 2  # P2's transaction is still open
    assert part.append(marker(P2, False), "f") is None  # 6: P2 aborts
    h.run()
    assert part.high_watermark == 7 and lso(h) == 7
    assert part.aborted(0, 7) == ((P2, 2),)
    assert part.aborted(3, 7) == ((P2, 2),)  # ends at 6: overlaps a read from 3
    assert part.aborted(0, 2) == ()  # a read ending before it started
    assert part.aborted(7, 9) == ()  # a read after its marker
    info = {p.producer_id: p for p in part.producers.describe()}
    assert info[P1].current_txn_start_offset == -1 and info[P1].last_sequence == 2
    h.close()


def test_fencing_and_txn_state_errors(tmp_path: Path) -> None:
    h = Host(tmp_path)
    h.run()
    part = h.part
    assert part.append(txn(P1, 0, epoch=3), 1) is None
    h.run()
    stale = part.append(txn(P1, 1, epoch=2), 2)
    assert stale is not None and stale.error_code == ErrorCode.INVALID_PRODUCER_EPOCH
    mixed = part.append(txn(P1, 1, epoch=3, transactional=False), 3)
    assert mixed is not None and mixed.error_code == ErrorCode.INVALID_TXN_STATE
    old = part.append(marker(P1, True, epoch=2), 4)
    assert old is not None and old.error_code == ErrorCode.INVALID_PRODUCER_EPOCH
    assert part.append(marker(P1, False, epoch=3, coordinator_epoch=5), 5) is None
    h.run()
    fenced = part.append(marker(P1, False, epoch=3, coordinator_epoch=4), 6)
    assert fenced is not None and fenced.error_code == ErrorCode.TRANSACTION_COORDINATOR_FENCED
    assert part.high_watermark == 2 and lso(h) == 2 and part.aborted(0, 2) == ((P1, 0),)
    h.close()


def test_a_marker_without_an_ongoing_transaction_is_written_and_changes_nothing(
        tmp_path: Path) -> None:
    h = Host(tmp_path)
    h.run()
    part = h.part
    part.append(txn(P1, 0), 1)
    part.append(marker(P1, False), 2)
    h.run()
    assert part.append(marker(P1, False), 3) is None  # the coordinator's retry
    assert part.append(marker(P2, True), 4) is None   # a producer never seen here
    h.run()
    assert h.answers[3].base_offset == 2 and h.answers[4].base_offset == 3
    assert part.high_watermark == 4 and lso(h) == 4
    assert part.aborted(0, 4) == ((P1, 0),)  # once
    h.close()


def test_restart_rebuilds_transactions_from_the_log(tmp_path: Path) -> None:
    h = Host(tmp_path)
    h.run()
    part = h.part
    part.append(txn(P1, 0, 3), 1)     # 0-2 aborted
    part.append(marker(P1, False), 2)  # 3
    part.append(txn(P2, 0), 3)        # 4, still open
    part.append(plain(), 4)           # 5
    part.append(txn(P3, 0), 5)        # 6 committed
    part.append(marker(P3, True), 6)  # 7
    h.run()
    before = (lso(h), part.aborted(0, 8))
    assert before == (4, ((P1, 0),))
    h.close()
    table = scan_producers(Host(tmp_path).log)  # what the disk writer hands a reopened host
    assert table.last_stable_offset(8) == 4 and table.aborted(0, 8) == ((P1, 0),)
    info = {p.producer_id: p.current_txn_start_offset for p in table.describe()}
    assert info == {P1: -1, P2: 4, P3: -1}


def test_truncation_undoes_transaction_state() -> None:
    t = ProducerStateTable()
    t.record(ProducerBatch(P1, 0, 0, 0, True), 10, 10)
    t.record(ProducerBatch(P2, 0, 0, 0, True), 11, 11)
    t.end_txn(AppendMarker(P1, 0, 0, False), 12)
    # (the high watermark is at most the marker: only an uncommitted suffix is ever cut)
    assert t.last_stable_offset(12) == 10 and t.aborted(0, 20) == ((P1, 10),)
    t.truncate(12)  # the abort marker never committed: P1's transaction is open again
    assert t.aborted(0, 20) == () and t.last_stable_offset(12) == 10
    t.truncate(11)  # P2's first batch is gone: it has no transaction
    assert {p.producer_id: p.current_txn_start_offset for p in t.describe()} == {P1: 10}
    t.truncate(10)
    assert len(t) == 0 and t.last_stable_offset(10) == 10


def test_retention_trims_the_aborted_index() -> None:
    t = ProducerStateTable()
    for i, pid in enumerate((P1, P2)):
        t.record(ProducerBatch(pid, 0, 0, 0, True), 10 * i, 10 * i)
        t.end_txn(AppendMarker(pid, 0, 0, False), 10 * i + 5)
    assert t.aborted(0, 30) == ((P1, 0), (P2, 10))
    t.trim(6)
    assert t.aborted(0, 30) == ((P2, 10),)


def test_a_new_leader_has_the_same_lso_and_aborted_index(tmp_path: Path) -> None:
    hub = Hub(tmp_path)
    try:
        hub.elect(1)
        one = hub.nodes[1].part
        one.append(txn(P1, 0, 2), "a")      # 0-1
        one.append(txn(P2, 0), "b")         # 2
        one.append(marker(P1, False), "c")  # 3
        hub.settle()
        assert one.high_watermark == 4 and one.last_stable_offset() == 2
        hub.cut = {1}
        hub.elect(2)
        two = hub.nodes[2].part
        hub.settle()
        assert two.last_stable_offset() == 2 and two.aborted(0, 10) == ((P1, 0),)
        two.append(marker(P2, True), "d")   # 4 (after the new term's no-op took none)
        hub.settle()
        assert two.last_stable_offset() == two.high_watermark == 5
    finally:
        hub.close()


def test_a_cut_marker_reopens_its_transaction_on_the_old_leader(tmp_path: Path) -> None:
    hub = Hub(tmp_path)
    try:
        hub.elect(1)
        one = hub.nodes[1]
        one.part.append(txn(P1, 0), "a")    # 0
        hub.settle()
        hub.cut = {1}  # node 1 leads alone: its marker never commits
        one.part.append(marker(P1, False), "m")
        hub.settle()
        assert one.part.aborted(0, 5) == ((P1, 0),)
        hub.elect(2)
        two = hub.nodes[2]
        two.part.append(plain(), "p")       # 1: replaces node 1's marker
        hub.settle()
        hub.cut = set()
        for _ in range(30):
            two.part.tick()
            hub.settle()
            if one.part.consensus.core.role == Role.FOLLOWER and stored(one.log) == stored(
                    two.log):
                break
        assert stored(one.log) == stored(two.log)
        assert one.part.aborted(0, 5) == ()  # the marker is gone, and its abort with it
        assert {p.producer_id: p.current_txn_start_offset
                for p in one.part.producers.describe()} == {P1: 0}
    finally:
        hub.close()


def _snapshot_sealed(h: Host, since: int) -> int:
    """What the partition leader does after each flush (`_snapshot_sealed`)."""
    for base, end in h.log.sealed_since(since):
        payload = h.part.producers.segment_state(base, end)
        assert payload is not None
        assert h.log.write_segment_state(base, payload)
        since = end
    return since


def test_segment_snapshots_keep_what_retention_cut_and_spare_the_replay(tmp_path: Path) -> None:
    """An aborted transaction whose first batch was deleted by retention stays in the aborted
    index after a restart (its segment snapshot says so; a replay of what is left could not
    know), and so does a transaction open since a segment older than the last two."""
    config = LogConfig(segment_bytes=400)
    h = Host(tmp_path, anchor_every=1, config=config)
    h.run()
    part, since = h.part, 0
    part.append(txn(P1, 0, 4), 1)      # 0-3: aborted below
    part.append(txn(P2, 0), 2)         # 4: open for good
    h.run()
    for i in range(6):
        part.append(plain(2), ("p", i))
        h.run()
        since = _snapshot_sealed(h, since)
    part.append(marker(P1, False), 3)
    h.run()
    for i in range(6):
        part.append(plain(2), ("q", i))
        h.run()
        since = _snapshot_sealed(h, since)
    hw = part.high_watermark
    first_kept = h.log.segments()[1][0]
    assert h.log.truncate_prefix(first_kept) == first_kept  # P1's first batches are gone
    assert len(h.log.segments()) >= 3  # a snapshot is used below the last two segments
    h.close()
    reopened = Host(tmp_path, config=config)
    table = scan_producers(reopened.log)
    assert table.last_stable_offset(hw) == 4
    assert table.aborted(first_kept, hw) == ((P1, 0),)
    reopened.close()
    replayed = ProducerStateTable()  # what a replay alone would know
    log = Host(tmp_path, config=config).log
    replayed.replay(log.read(log.start_offset, 1 << 20), log.start_offset)
    assert replayed.aborted(first_kept, hw) == ()
    log.close()


def test_completed_transactions_are_not_kept_forever() -> None:
    """A follower's table (no high watermark moving, no snapshot taken) stays bounded."""
    t = ProducerStateTable()
    for i in range(3 * RECENT_MAX):
        t.record(ProducerBatch(P1, 0, i, i, True), 2 * i, 2 * i)
        t.end_txn(AppendMarker(P1, 0, 0, True), 2 * i + 1)
    assert len(t._unstable) <= RECENT_MAX and len(t._recent) <= RECENT_MAX
    t.stable(6 * RECENT_MAX)
    assert t._unstable == [] and t.last_stable_offset(6 * RECENT_MAX) == 6 * RECENT_MAX
    # The snapshot of a segment ending before what was forgotten is not taken (replayed).
    assert t.segment_state(0, 10) is None


def test_a_segment_reopened_by_truncation_can_be_snapshotted_again() -> None:
    t = ProducerStateTable()
    t.record(ProducerBatch(P1, 0, 0, 0, True), 2, 2)
    assert t.segment_state(0, 10) is not None  # sealed at 10
    t.truncate(6)  # a new leader's suffix replaced [6, ...): the segment is active again
    t.end_txn(AppendMarker(P1, 0, 0, False), 6)
    payload = t.segment_state(0, 8)  # sealed again, at 8
    assert payload is not None
    restored = ProducerStateTable.restore([payload], 8)
    assert restored is not None and restored.aborted(0, 8) == ((P1, 2),)
    assert restored.last_stable_offset(8) == 8
