"""consensus: the replication path around the core, driven like a host would (writes, sends,
debounced flushes), with every acks level and the high watermark."""

from __future__ import annotations

import random

from redshank.cluster.raft import (
    Acks,
    Config,
    HardState,
    MemoryLog,
    Message,
    NodeId,
    RaftConfig,
    RaftCore,
    ReplicateError,
    ReplicateRequest,
    ReplicateResult,
    Role,
)
from redshank.cluster.raft.batches import batch_of
from redshank.cluster.raft.consensus import Consensus

VOTERS = frozenset({NodeId(1), NodeId(2), NodeId(3)})


class Host:
    """Three replicas; `run` delivers messages and completes flushes until quiet, except on
    nodes whose disks are `stalled`."""

    def __init__(self) -> None:
        self.c = {
            NodeId(i): Consensus(RaftCore(RaftConfig(id=NodeId(i), rng=random.Random(i)),
                                          MemoryLog(), HardState(), Config(voters=VOTERS)))
            for i in (1, 2, 3)
        }
        self.results: list[ReplicateResult] = []
        self.flush_wanted: set[NodeId] = set()
        self.stalled: set[NodeId] = set()
        self.down: set[NodeId] = set()

    def run(self) -> None:
        for _ in range(100):
            inbox: list[Message] = []
            for n, c in self.c.items():
                io = c.take_io()
                self.results += io.results
                inbox += io.send
                if io.start_flush:
                    self.flush_wanted.add(n)
            flushing = sorted(self.flush_wanted - self.stalled)
            for n in flushing:
                self.flush_wanted.discard(n)
                self.c[n].flush_begin()
                self.c[n].flush_done()
            if not inbox and not flushing:
                return
            for m in inbox:
                if m.dst not in self.down and m.src not in self.down:
                    self.c[m.dst].step(m)

    def acked(self) -> dict[int, tuple[Acks, int | None, ReplicateError | None]]:
        return {r.id: (r.acks, r.base_offset, r.error) for r in self.results}


def elected() -> Host:
    h = Host()
    h.c[NodeId(1)].core.campaign()
    h.run()
    assert h.c[NodeId(1)].core.role == Role.LEADER
    return h


def test_each_acks_level_and_the_high_watermark() -> None:
    h = elected()
    leader = h.c[NodeId(1)]
    assert leader.high_watermark() == 0
    h.stalled = {NodeId(2), NodeId(3)}  # followers write but do not fsync yet
    assert leader.replicate(ReplicateRequest(1, batch_of((b"a",)), Acks.NONE))
    assert leader.replicate(ReplicateRequest(2, batch_of((b"b", b"c")), Acks.LEADER))
    assert leader.replicate(ReplicateRequest(3, batch_of((b"d",)), Acks.ALL))
    h.run()
    assert h.acked() == {1: (Acks.NONE, 0, None), 2: (Acks.LEADER, 1, None)}
    # Written and fsynced on the leader only: not visible, acks=all still waiting.
    assert leader.high_watermark() == 0
    h.stalled = set()
    h.run()
    assert h.acked()[3] == (Acks.ALL, 3, None)
    assert leader.high_watermark() == 4


def test_leader_not_ready_has_no_high_watermark() -> None:
    h = Host()
    h.c[NodeId(1)].core.campaign()
    h.stalled = {NodeId(1), NodeId(2), NodeId(3)}
    h.run()  # votes need fsyncs: nothing moves
    assert h.c[NodeId(1)].high_watermark() is None


def test_lost_leadership_fails_what_is_pending() -> None:
    h = elected()
    leader = h.c[NodeId(1)]
    h.down = {NodeId(2), NodeId(3)}
    leader.replicate(ReplicateRequest(7, batch_of((b"x",)), Acks.ALL))
    h.run()
    for _ in range(2 * leader.core.cfg.election_ticks):
        leader.tick()
    h.run()
    assert leader.core.role != Role.LEADER
    assert h.acked()[7] == (Acks.ALL, None, ReplicateError.NOT_LEADER)
    assert leader.batcher.idle()


def test_refused_during_transfer() -> None:
    h = elected()
    leader = h.c[NodeId(1)]
    h.down = {NodeId(3)}
    leader.replicate(ReplicateRequest(1, batch_of((b"x",)), Acks.ALL))
    h.run()
    assert leader.transfer_leadership(NodeId(3)) is None
    assert leader.replicate(ReplicateRequest(2, batch_of((b"y",)), Acks.ALL))
    h.run()
    assert h.acked()[2] == (Acks.ALL, None, ReplicateError.REFUSED)
