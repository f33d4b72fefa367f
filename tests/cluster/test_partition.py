"""The sans-IO partition over a real storage log and kvstore, one replica (Raft's degenerate
case): election at once, acks at commit, Kafka offsets untouched by Raft's own entries, leader
epochs in the batches, recovery after a clean stop and after a crash between the kvstore's
flush and the log's."""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path

import pytest

from redshank.cluster.kafka.producer_state import ProducerStateTable
from redshank.cluster.partition import raft_log
from redshank.cluster.partition.api import Append, PartitionResult, ProducerBatch
from redshank.cluster.partition.partition import Partition
from redshank.cluster.partition.raft_log import recover
from redshank.cluster.raft.log import EntriesUnavailable
from redshank.cluster.raft.types import EntryKind, Index, Term
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.record_batch import iter_batches
from redshank.protocol.records import BatchBuilder, iter_records
from redshank.storage import KvStore, Log, LogConfig


def batch(n: int, producer: ProducerBatch | None = None) -> bytearray:
    b = BatchBuilder(producer_id=producer.producer_id if producer else -1,
                     producer_epoch=producer.producer_epoch if producer else -1,
                     base_sequence=producer.first_sequence if producer else -1)
    for i in range(n):
        b.append(b"v%d" % i, timestamp=1000 + i)
    return bytearray(b.build())


class Host:
    """What the partition-leader actor does, synchronously: flush kvstore then log."""

    def __init__(self, root: Path, anchor_every: int = raft_log.ANCHOR_FLUSH_ENTRIES,
                 config: LogConfig | None = None,
                 producers: ProducerStateTable | None = None) -> None:
        self.root = root
        self.log = Log.open(str(root / "log"), config)
        self.kv = KvStore.open(str(root / "raft"))
        self.part = Partition(self.log, self.kv, recover(self.log, self.kv),
                              producers or ProducerStateTable(), anchor_every=anchor_every)
        self.answers: dict[Hashable, PartitionResult] = {}
        self.owed = False
        self.part.start()

    def run(self, flush: bool = True) -> None:
        for _ in range(10):
            io = self.part.take_io()
            self.answers.update(io.answers)
            self.owed |= io.start_flush  # the partition asks once; the host must remember
            if not (self.owed and flush):
                return
            self.owed = False
            self.part.kv_flushing()
            self.part.flush_begin()
            self.kv.flush()
            self.log.flush()
            self.part.flush_done()
        raise AssertionError("flushes never settle")

    def close(self) -> None:
        self.log.close()
        self.kv.close()


def epochs(log: Log) -> list[tuple[int, int]]:
    data = log.read(log.start_offset, 1 << 20)
    return [(h.base_offset, h.partition_leader_epoch) for _, h in iter_batches(data)]


def test_one_replica_elects_itself_and_acks_at_commit(tmp_path: Path) -> None:
    h = Host(tmp_path)
    h.run()
    assert h.part.is_ready_leader() and h.part.term == 1
    for i, n in enumerate((2, 3, 1)):
        assert h.part.append(Append(batch(n), -1, None), i) is None
    assert h.answers == {}  # acks=all: nothing before the flush
    assert h.part.high_watermark == 0
    h.run()
    assert [h.answers[i].base_offset for i in range(3)] == [0, 2, 5]
    assert h.part.high_watermark == 6
    assert epochs(h.log) == [(0, 1), (2, 1), (5, 1)]  # Raft's no-op took no offset


def test_acks_1_answers_once_written_and_0_at_once(tmp_path: Path) -> None:
    h = Host(tmp_path)
    h.run()
    assert h.part.append(Append(batch(1), 0, None), "a0") is None
    assert h.part.append(Append(batch(1), 1, None), "a1") is None
    h.run(flush=False)
    assert h.answers["a0"].base_offset == 0 and h.answers["a1"].base_offset == 1
    assert h.part.high_watermark == 0  # visible only once committed
    h.run()
    assert h.part.high_watermark == 2


def test_restart_keeps_indexes_offsets_and_raises_the_epoch(tmp_path: Path) -> None:
    h = Host(tmp_path)
    h.run()
    h.part.append(Append(batch(2), -1, None), 0)
    h.run()
    last = h.part.raft_log.last_index()
    h.close()
    h = Host(tmp_path)
    assert h.part.raft_log.last_index() == last + 1  # + the new term's no-op
    h.run()
    assert h.part.term == 2 and h.part.high_watermark == 2
    h.part.append(Append(batch(1), -1, None), 1)
    h.run()
    assert h.answers[1].base_offset == 2
    assert epochs(h.log) == [(0, 1), (2, 2)]


def test_batch_whose_noop_was_lost_is_cut_on_recovery(tmp_path: Path) -> None:
    h = Host(tmp_path)
    h.run()
    h.part.append(Append(batch(2), -1, None), 0)
    h.run()
    h.close()
    # Term 2 starts; its no-op is put in the kvstore, a batch is appended, and only the log
    # is flushed before a crash (the kvstore's write never reaches the disk).
    log = Log.open(str(tmp_path / "log"))
    kv = KvStore.open(str(tmp_path / "raft"))
    part = Partition(log, kv, recover(log, kv), ProducerStateTable())
    part.start()
    part.take_io()
    part.append(Append(batch(3), 1, None), 1)
    log.flush()
    log.close()  # kv is dropped unflushed: the crash
    h = Host(tmp_path)
    assert epochs(h.log) == [(0, 1)]  # the orphan batch of term 2 is gone
    h.run()
    assert h.part.term == 2 and h.part.high_watermark == 2


def test_idempotent_retry_before_commit_answers_with_the_original(tmp_path: Path) -> None:
    h = Host(tmp_path)
    h.run()
    pb = ProducerBatch(7, 0, 0, 1)
    assert h.part.append(Append(batch(2, pb), -1, pb), "first") is None
    assert h.part.append(Append(batch(2, pb), -1, pb), "retry") is None  # not yet committed
    h.run()
    assert h.answers["first"].base_offset == h.answers["retry"].base_offset == 0
    assert h.part.high_watermark == 2  # appended once
    again = h.part.append(Append(batch(2, pb), -1, pb), "late")
    assert again is not None and again.base_offset == 0


def test_entries_not_in_memory_are_unavailable_not_read_from_disk(tmp_path: Path) -> None:
    h = Host(tmp_path)
    h.run()
    h.part.append(Append(batch(2), -1, None), 0)
    h.run()  # committed: recovery starts after this entry from now on
    h.part.append(Append(batch(3), 1, None), 1)
    h.part.append(Append(batch(1), 1, None), 2)
    h.run(flush=False)
    rl = h.part.raft_log
    last = rl.last_index()
    assert values_count(rl.entry(last).batch) == 1  # still in memory
    h.log.flush()
    h.close()
    h = Host(tmp_path)  # a fresh process: the batch cache is empty
    rl = h.part.raft_log
    assert rl.first_index() <= last - 1 and rl.term(last) == 1
    with pytest.raises(EntriesUnavailable) as err:
        rl.slice(Index(last - 1), last)
    assert (err.value.lo, err.value.hi) == (last - 1, last)
    # The host reads them where the disk may be touched (EntryLoad.read) and steps them in.
    loaded = rl.plan_load(Index(last - 1), last).read(h.log).entries
    assert [(e.index, e.term, values_count(e.batch)) for e in loaded] == [
        (last - 1, 1, 3), (last, 1, 1)]
    h.log.truncate(h.log.dirty_offset)  # the last batch goes meanwhile: the read stops there
    assert [e.index for e in rl.plan_load(Index(last - 1), last).read(h.log).entries] == [
        last - 1]


def values_count(b: bytes | bytearray | memoryview) -> int:
    return sum(1 for _ in iter_records(b))


def test_the_kvstore_is_written_only_for_an_anchor_every_so_many_entries(
        tmp_path: Path) -> None:
    h = Host(tmp_path, anchor_every=3)
    h.run()
    forced = []
    for i in range(7):
        h.part.append(Append(batch(1), -1, None), i)
        h.run(flush=False)
        h.part.kv_flushing()
        h.part.flush_begin()
        h.log.flush()
        h.part.flush_done()
        forced.append(h.part.kv_dirty)  # an anchor was written: the kvstore needs a flush
    # Commit moves one entry per round (a commit-only hard state is not written at all): an
    # anchor is written every third entry.
    assert forced.count(True) == 2, forced
    h.close()
    h = Host(tmp_path, anchor_every=3)  # recovery starts at the last anchor
    assert h.part.raft_log.first_index() > 2
    h.run()
    assert h.part.high_watermark == 7


def test_index_before_the_recovery_anchor_is_rebuilt_from_the_files(tmp_path: Path) -> None:
    # Three terms of no-ops and batches; after a restart the Raft log begins at the anchor,
    # and a leader catching up a lagging follower rebuilds the entries before it (backfill).
    h = Host(tmp_path, anchor_every=1)
    h.run()
    for term in range(3):
        for n in (2, 1):
            h.part.append(Append(batch(n), -1, None), (term, n))
        h.run()
        if term < 2:
            h.close()
            h = Host(tmp_path, anchor_every=1)
            h.run()
    # Per term: its leader's no-op, then the two batches.
    before = [(Index(3 * t + k + 1), Term(t + 1), EntryKind.NOOP if k == 0 else EntryKind.DATA)
              for t in range(3) for k in range(3)]
    h.close()
    h = Host(tmp_path, anchor_every=1)
    rl = h.part.raft_log
    first = rl.first_index()
    assert first > 1
    with pytest.raises(EntriesUnavailable):
        rl.entry(Index(1))
    loaded = rl.plan_load(Index(1), Index(first - 1)).read(h.log)
    assert loaded.backfill is not None and len(loaded.backfill) == first - 1
    assert [(e.index, e.term, e.kind) for e in loaded.entries] == before[: first - 1]
    h.part.entries_loaded(loaded)
    assert rl.first_index() == 1
    assert [(Index(i), rl.term(Index(i))) for i in range(1, len(before) + 1)] == [
        (i, t) for i, t, _ in before]
    assert rl.offsets.to_kafka(Index(first)) == loaded.entries[-1].span() + int(
        rl.offsets.to_kafka(Index(first - 1)))


def test_recovery_keeps_the_configuration_from_before_the_anchor(tmp_path: Path) -> None:
    from redshank.cluster.partition.raft_log import _META_KEY, META_PREFIX, _encode_meta
    from redshank.cluster.raft.types import Config, NodeId

    h = Host(tmp_path, anchor_every=1)
    h.run()
    h.part.append(Append(batch(1), -1, None), 0)
    h.run()
    h.close()
    # A configuration entry committed at index 1's place in an earlier life of the group:
    # written as the partition writes Raft's own entries, below the anchor.
    kv = KvStore.open(str(tmp_path / "raft"))
    config = Config(frozenset({NodeId(1), NodeId(2), NodeId(3)}))
    kv.put(META_PREFIX + _META_KEY.pack(1), _encode_meta(Term(1), EntryKind.CONFIG, 0, config))
    kv.close()
    log = Log.open(str(tmp_path / "log"))
    kv = KvStore.open(str(tmp_path / "raft"))
    got = recover(log, kv)
    assert got.first > 1 and got.config == (1, config)
    part = Partition(log, kv, got, ProducerStateTable())
    assert part.consensus.core.config == config  # not the bootstrap's single voter


def test_leader_epochs_answer_as_kafka_and_survive_restarts_and_anchors(tmp_path: Path) -> None:
    # Terms 1, 2, 3 (a restart each); term 2 appends nothing. The kvstore anchors every 2
    # entries, so recovery rebuilds epochs from no-ops both below and above the anchor.
    h = Host(tmp_path, anchor_every=2)
    h.run()
    for i in range(3):
        h.part.append(Append(batch(2), -1, None), i)  # offsets 0-5, term 1
    h.run()
    h.close()
    h = Host(tmp_path, anchor_every=2)
    h.run()  # term 2: nothing appended
    h.close()
    h = Host(tmp_path, anchor_every=2)
    h.run()
    h.part.append(Append(batch(4), -1, None), 9)  # offsets 6-9, term 3
    h.run()
    assert h.part.term == 3 and epochs(h.log) == [(0, 1), (2, 1), (4, 1), (6, 3)]
    assert h.part.raft_log.epochs.entries == [(1, 0), (2, 6), (3, 6)]
    end = h.part.raft_log.offsets.next_offset()
    assert end == 10
    assert h.part.epoch_end(1) == (1, 6)
    assert h.part.epoch_end(2) == (2, 6)  # an epoch with no batch ends where it began
    assert h.part.epoch_end(3) == (3, 10)  # the latest: the log end offset
    assert h.part.epoch_end(0) == (0, 0)  # older than every epoch: where the first begins
    assert h.part.epoch_end(4) == (-1, -1)
    assert h.part.epoch_end(-1) == (-1, -1)
    assert [h.part.epoch_at(o) for o in (0, 5, 6, 9, 10)] == [1, 1, 3, 3, 3]
    assert h.part.epoch_at(-1) == -1
    assert h.part.epoch_error(-1) == 0 and h.part.epoch_error(3) == 0
    assert h.part.epoch_error(0) == 0  # names no term (librdkafka's "unknown")
    assert h.part.epoch_error(2) == ErrorCode.FENCED_LEADER_EPOCH
    assert h.part.epoch_error(4) == ErrorCode.UNKNOWN_LEADER_EPOCH


def test_leader_epochs_drop_a_truncated_term() -> None:
    e = raft_log.LeaderEpochs([(1, 0), (2, 6), (4, 9)])
    e.begin(3, 12)  # an older term than the latest: not a new epoch
    assert e.entries == [(1, 0), (2, 6), (4, 9)]
    e.truncate_after(2)  # a conflicting suffix of term 4 is gone
    assert e.entries == [(1, 0), (2, 6)] and e.latest() == 2
    e.begin(5, 7)
    assert e.end_of(2, 20) == (2, 7) and e.end_of(3, 20) == (2, 7) and e.end_of(5, 20) == (5, 20)


def test_a_log_trimmed_past_its_anchor_and_no_ops_keeps_its_batches_on_restart(
        tmp_path: Path) -> None:
    """DeleteRecords (or retention) past every recovery anchor and past the no-op of the term
    the remaining batches were written in: recovery numbers on from the log start in that
    term, instead of taking the first batch for one whose no-op was lost and cutting the whole
    log (it did: every batch gone after a restart)."""
    config = LogConfig(segment_bytes=400)
    h = Host(tmp_path, config=config)
    h.run()
    h.part.append(Append(batch(2), -1, None), "a")
    h.run()
    h.close()
    h = Host(tmp_path, config=config)  # term 2: its no-op sits at offset 2
    h.run()
    for i in range(20):
        h.part.append(Append(batch(2), -1, None), i)
        h.run()
    end = h.log.dirty_offset
    start = h.log.segments()[2][0]
    assert start > 2 and h.log.truncate_prefix(start) == start
    h.close()
    h = Host(tmp_path, config=config)
    assert (h.log.start_offset, h.log.dirty_offset) == (start, end)
    h.run()
    assert h.part.term == 3 and h.part.high_watermark == end + 1
    h.part.append(Append(batch(1), -1, None), "next")
    h.run()
    assert h.answers["next"].base_offset == end + 1
    assert h.part.epoch_at(start) == 2
    h.close()
