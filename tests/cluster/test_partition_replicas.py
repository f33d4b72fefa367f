"""Three replicas of one partition (real storage logs and kvstores, messages delivered by a
synchronous hub the test partitions at will): followers keep the idempotent-producer state of
the batches they are sent, so a retry after a failover is answered with the original's offsets;
and a batch that never committed and was cut by the next leader is forgotten, so the retry of
it is appended again instead of being answered with offsets that hold nothing or another
batch (an acknowledged write lost)."""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path

from redshank.cluster.kafka.producer_state import ProducerStateTable
from redshank.cluster.partition.api import Append, PartitionResult, ProducerBatch
from redshank.cluster.partition.partition import Partition
from redshank.cluster.partition.raft_log import recover
from redshank.cluster.raft.types import Message, NodeId, Role
from redshank.protocol.record_batch import iter_batches
from redshank.protocol.records import BatchBuilder
from redshank.storage import KvStore, Log

VOTERS = frozenset(NodeId(n) for n in (1, 2, 3))


def batch(values: list[bytes], pid: int = -1, seq: int = -1) -> bytearray:
    b = BatchBuilder(producer_id=pid, producer_epoch=0 if pid >= 0 else -1, base_sequence=seq)
    for v in values:
        b.append(v, timestamp=1000)
    return bytearray(b.build())


def idem(pid: int, seq: int, n: int) -> ProducerBatch:
    return ProducerBatch(pid, 0, seq, seq + n - 1)


class Replica:
    def __init__(self, root: Path, node: int) -> None:
        self.log = Log.open(str(root / f"n{node}" / "log"))
        self.kv = KvStore.open(str(root / f"n{node}" / "raft"))
        self.part = Partition(self.log, self.kv, recover(self.log, self.kv),
                              ProducerStateTable(), voters=VOTERS, node=NodeId(node), seed=node)
        self.part.start()
        self.answers: dict[Hashable, PartitionResult] = {}

    def close(self) -> None:
        self.log.close()
        self.kv.close()


class Hub:
    """Delivers every message at once, in order, except to or from a cut node; flushes every
    replica's kvstore then log whenever it asks (as the actor host does, synchronously)."""

    def __init__(self, root: Path) -> None:
        self.nodes = {n: Replica(root, n) for n in (1, 2, 3)}
        self.cut: set[int] = set()

    def settle(self) -> None:
        for _ in range(1000):
            moved = False
            for n, r in self.nodes.items():
                io = r.part.take_io()
                r.answers.update(io.answers)
                queue: list[Message] = list(io.send)
                if io.start_flush:
                    r.part.kv_flushing()
                    r.part.flush_begin()
                    r.kv.flush()
                    r.log.flush()
                    r.part.flush_done()
                    moved = True
                for m in queue:
                    moved = True
                    if n in self.cut or int(m.dst) in self.cut:
                        continue
                    self.nodes[int(m.dst)].part.step(m)
            if not moved:
                return
        raise AssertionError("the group never settles")

    def elect(self, node: int) -> None:
        """Tick every node not cut, `node` three times as fast, until `node` leads (its
        election timeout fires first; the others' ticks expire their leader lease, so they
        grant their votes)."""
        for _ in range(200):
            for n, r in self.nodes.items():
                if n not in self.cut or n == node:
                    for _ in range(3 if n == node else 1):
                        r.part.tick()
            self.settle()
            if self.nodes[node].part.is_ready_leader():
                return
        raise AssertionError(f"node {node} was not elected")

    def close(self) -> None:
        for r in self.nodes.values():
            r.close()


def stored(log: Log) -> list[tuple[int, int, int]]:
    data = log.read(log.start_offset, 1 << 20)
    return [(h.base_offset, h.producer_id, h.base_sequence) for _, h in iter_batches(data)]


def test_a_retry_after_failover_is_answered_with_the_original(tmp_path: Path) -> None:
    hub = Hub(tmp_path)
    try:
        hub.elect(1)
        one = hub.nodes[1]
        assert one.part.append(Append(batch([b"a", b"b"], 7, 0), -1, idem(7, 0, 2)), "w") is None
        hub.settle()
        assert one.answers["w"] == PartitionResult(0, 0, 0)
        hub.cut = {1}  # the leader is gone
        hub.elect(2)
        two = hub.nodes[2]
        retry = two.part.append(Append(batch([b"a", b"b"], 7, 0), -1, idem(7, 0, 2)), "r")
        assert retry == PartitionResult(0, 0, 0)  # deduplicated: the follower kept its state
        assert stored(two.log) == [(0, 7, 0)]
        nxt = two.part.append(Append(batch([b"c"], 7, 2), -1, idem(7, 2, 1)), "n")
        assert nxt is None  # the next sequence is in order on the new leader
        hub.settle()
        assert two.answers["n"] == PartitionResult(0, 2, 0)
    finally:
        hub.close()


def test_a_retry_of_a_batch_cut_by_the_next_leader_is_appended_again(tmp_path: Path) -> None:
    hub = Hub(tmp_path)
    try:
        hub.elect(1)
        one = hub.nodes[1]
        hub.cut = {1}  # node 1 leads alone: what it appends never commits
        assert one.part.append(Append(batch([b"lost"], 7, 0), -1, idem(7, 0, 1)), "w") is None
        hub.settle()
        assert "w" not in one.answers and stored(one.log) == [(0, 7, 0)]
        hub.elect(2)  # nodes 2 and 3 go on without it
        two = hub.nodes[2]
        assert two.part.append(Append(batch([b"other"]), -1, None), "o") is None
        hub.settle()
        assert two.answers["o"] == PartitionResult(0, 0, 0)
        hub.cut = set()
        for _ in range(30):  # node 1 hears the new leader: its suffix is replaced
            two.part.tick()
            hub.settle()
            if one.part.consensus.core.role == Role.FOLLOWER and stored(one.log) == stored(
                    two.log):
                break
        assert stored(one.log) == [(0, -1, -1)]
        assert one.answers["w"].error_code != 0  # its producer heard it failed
        hub.cut = {2}
        hub.elect(1)  # node 1 leads again (with node 3)
        retry = one.part.append(Append(batch([b"lost"], 7, 0), -1, idem(7, 0, 1)), "r")
        assert retry is None  # appended anew, not "already at offset 0" (that is "other")
        hub.settle()
        assert one.answers["r"] == PartitionResult(0, 1, 0)
        assert stored(one.log) == [(0, -1, -1), (1, 7, 0)]
    finally:
        hub.close()


def test_a_replaced_suffix_keeps_the_producer_state_of_what_replaced_it(tmp_path: Path) -> None:
    """A follower whose uncommitted suffix is cut and replaced by the new leader's batches of the
    same producer keeps those batches' producer state (the cut is applied to the producer state
    before the replacing batches are recorded): leading later, it still deduplicates retries of
    them and takes the next sequence."""
    hub = Hub(tmp_path)
    try:
        hub.elect(1)
        one = hub.nodes[1]
        hub.cut = {1}  # node 1 leads alone: what it appends never commits
        assert one.part.append(Append(batch([b"lost"], 7, 0), -1, idem(7, 0, 1)), "w") is None
        hub.settle()
        hub.elect(2)
        two = hub.nodes[2]
        # The producer's retry of sequence 0 reaches the new leader, then its next batch.
        assert two.part.append(Append(batch([b"again"], 7, 0), -1, idem(7, 0, 1)), "r") is None
        assert two.part.append(Append(batch([b"next"], 7, 1), -1, idem(7, 1, 1)), "n") is None
        hub.settle()
        assert two.answers["r"] == PartitionResult(0, 0, 0)
        assert two.answers["n"] == PartitionResult(0, 1, 0)
        hub.cut = set()
        for _ in range(30):  # node 1 hears the new leader: its suffix is replaced
            two.part.tick()
            hub.settle()
            if one.part.consensus.core.role == Role.FOLLOWER and stored(one.log) == stored(
                    two.log):
                break
        assert stored(one.log) == [(0, 7, 0), (1, 7, 1)]
        hub.cut = {2}
        hub.elect(1)  # node 1 leads again (with node 3): node 2's answers were lost
        for seq, base in ((0, 0), (1, 1)):
            retry = one.part.append(Append(batch([b"x"], 7, seq), -1, idem(7, seq, 1)), seq)
            assert retry == PartitionResult(0, base, 0), seq  # the original's offset
        assert stored(one.log) == [(0, 7, 0), (1, 7, 1)]
        nxt = one.part.append(Append(batch([b"c"], 7, 2), -1, idem(7, 2, 1)), "c")
        assert nxt is None
        hub.settle()
        assert one.answers["c"] == PartitionResult(0, 2, 0)
    finally:
        hub.close()
