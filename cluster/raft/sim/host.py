"""One simulated node hosting replicas of several Raft groups the way a core process will.

Each `GroupReplica` owns a RaftCore on its own SimDisk and runs the replication path
(replicate_batcher -> propose -> replicate_entries_stm), flush debouncing (many Readys, one fsync;
acks and dependent messages wait for it) and the offset translator; the node shares one
`HeartbeatManager` among its groups. Every observable fact goes to the group's Checker.
Must not know the fault schedule: the simulator decides what happens when.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from redshank.cluster.raft.batches import values_of
from redshank.cluster.raft.consensus import Consensus
from redshank.cluster.raft.heartbeat_manager import GroupId, HeartbeatManager, NodeHeartbeat
from redshank.cluster.raft.log import MemoryLog
from redshank.cluster.raft.raft import RaftConfig, RaftCore
from redshank.cluster.raft.replicate_batcher import Acks, ReplicateRequest
from redshank.cluster.raft.replicate_entries_stm import (
    ReplicateResult,
)
from redshank.cluster.raft.sim.checkers import Checker
from redshank.cluster.raft.sim.disk import SimDisk
from redshank.cluster.raft.types import (
    Config,
    Index,
    Message,
    MessageType,
    NodeId,
    NoticeKind,
    ProposeError,
    Role,
)


@dataclass(frozen=True, slots=True)
class GroupMessage:
    """A Raft message on the wire, tagged with its group."""

    group: GroupId
    msg: Message

    @property
    def src(self) -> NodeId:
        return self.msg.src

    @property
    def dst(self) -> NodeId:
        return self.msg.dst


Packet = GroupMessage | NodeHeartbeat
Emit = Callable[[GroupId, list[Message]], None]


@dataclass(slots=True)
class HostParams:
    election_ticks: int = 10
    prevote: bool = True
    check_quorum: bool = True
    priorities: dict[NodeId, int] = field(default_factory=dict)


class SimNode:
    """The node: its group replicas, node-level heartbeats, and whether it is up."""

    def __init__(self, node: NodeId, groups: dict[GroupId, tuple[Config, Checker,
                                                                 dict[NodeId, SimDisk]]],
                 params: HostParams, rng: random.Random, send: Callable[[Packet], None],
                 request_flush: Callable[[NodeId, GroupId], None],
                 on_result: Callable[[NodeId, ReplicateResult], None]) -> None:
        self.id = node
        self._send = send
        self.up = True
        self.hb = HeartbeatManager(node)
        self.replicas = {
            g: GroupReplica(node, g, boot, params, random.Random(rng.random()), checker, disks,
                            self._emit, request_flush, on_result)
            for g, (boot, checker, disks) in groups.items()
        }

    def tick(self) -> None:
        for r in self.replicas.values():
            r.tick()
        for nb in self.hb.flush():
            self._send(nb)

    def deliver(self, packet: Packet) -> None:
        if isinstance(packet, NodeHeartbeat):
            for g, m in packet.beats:
                self.replicas[g].deliver(m)
        else:
            self.replicas[packet.group].deliver(packet.msg)

    def flush(self, group: GroupId) -> None:
        self.replicas[group].flush()

    def crash(self) -> None:
        self.up = False
        self.hb = HeartbeatManager(self.id)
        for r in self.replicas.values():
            r.crash()

    def restart(self) -> None:
        self.up = True
        for r in self.replicas.values():
            r.restart()

    def _emit(self, group: GroupId, msgs: list[Message]) -> None:
        for m in self.hb.collect(group, msgs):
            self._send(GroupMessage(group, m))


class GroupReplica:
    """One group's replica: a `Consensus` on a SimDisk, observed by the group's Checker."""

    def __init__(self, node: NodeId, group: GroupId, bootstrap: Config, params: HostParams,
                 rng: random.Random, checker: Checker, disks: dict[NodeId, SimDisk], emit: Emit,
                 request_flush: Callable[[NodeId, GroupId], None],
                 on_result: Callable[[NodeId, ReplicateResult], None]) -> None:
        self.id = node
        self.group = group
        self.bootstrap = bootstrap
        self.params = params
        self.rng = rng
        self.checker = checker
        self.disks = disks
        self.disk = disks[node]
        self._emit_cb = emit
        self._request_flush = request_flush
        self._on_result = on_result
        self._boot()

    def _boot(self) -> None:
        p = self.params
        cfg = RaftConfig(id=self.id, rng=random.Random(self.rng.random()),
                         election_ticks=p.election_ticks, prevote=p.prevote,
                         check_quorum=p.check_quorum, priorities=p.priorities)
        self.core = RaftCore(cfg, MemoryLog(self.disk.log), self.disk.hard_state, self.bootstrap)
        self.consensus = Consensus(self.core)
        self.hwm = self.core.commit
        self.ready = False  # LEADER_READY seen in the current leadership: it serves Kafka

    # ---- inputs -----------------------------------------------------------------------------

    def tick(self) -> None:
        before = (self.core.term, self.core.vote)
        self.consensus.tick()
        if self.core.role == Role.PRECANDIDATE:
            # Becoming a precandidate changes no persistent state.
            self.checker.prevote_handled(self.id, before, (self.core.term, self.core.vote),
                                         True, False)
        self.drain()

    def deliver(self, m: Message) -> None:
        before = (self.core.term, self.core.vote)
        self.consensus.step(m)
        if m.type in (MessageType.PREVOTE, MessageType.PREVOTE_RESPONSE):
            self.checker.prevote_handled(
                self.id, before, (self.core.term, self.core.vote),
                m.type == MessageType.PREVOTE, self.core.role == Role.CANDIDATE)
        self.drain()

    def produce(self, req: ReplicateRequest) -> bool:
        ok = self.consensus.replicate(req)
        self.drain()
        return ok

    def transfer(self, target: NodeId) -> bool:
        ok = self.consensus.transfer_leadership(target) is None
        self.drain()
        return ok

    def reconfigure(self, voters: frozenset[NodeId], learners: frozenset[NodeId]) -> Index | None:
        res = self.consensus.propose_config(voters, learners)
        self.drain()
        return None if isinstance(res, ProposeError) else res

    def flush(self) -> None:
        """The debounced fsync (instantaneous in virtual time): it covers every write so far."""
        self.consensus.flush_begin()
        self.disk.sync()
        self.consensus.flush_done()
        self.drain()

    def crash(self) -> None:
        self.disk.crash(self.rng)

    def restart(self) -> None:
        self._boot()

    # ---- doing what Consensus asks, and watching it -----------------------------------------

    def drain(self) -> None:
        core, checker = self.core, self.checker
        io = self.consensus.take_io()
        for entries, hs in io.writes:
            self.disk.write(entries, hs)
        for m in io.send:
            if m.type == MessageType.VOTE_RESPONSE and not m.reject:
                checker.vote_sent(self.id, m.term, m.dst, self.disk, core.config)
            elif m.type == MessageType.TIMEOUT_NOW:
                checker.timeout_now_sent(self.id, m.dst, core.term, core.last_index(),
                                         core.last_term(), self.disks[m.dst])
        if io.send:
            self._emit_cb(self.group, io.send)
        if io.start_flush:
            self._request_flush(self.id, self.group)
        if io.applied:
            checker.applied(self.id, io.applied)
        for n in io.notices:
            self._notice(n.kind, n.index)
        for r in io.results:
            if r.acks == Acks.ALL and r.error is None and r.base_offset is not None:
                records = self._records_of(r.id, values_of(core.log.entry(r.index).batch))
                checker.acked_all_entry(r.id, r.index, r.term, r.base_offset, records,
                                        core.config, self.disks)
            self._on_result(self.id, r)
        checker.hwm(self.id, self.hwm, core.commit)
        self.hwm = core.commit

    @staticmethod
    def _records_of(req: int, records: tuple[bytes, ...]) -> tuple[bytes, ...]:
        # The simulator tags each record with its request id: b"r<id>.<n>".
        tag = b"r%d." % req
        return tuple(x for x in records if x.startswith(tag))

    def _notice(self, kind: NoticeKind, index: Index) -> None:
        core = self.core
        if kind == NoticeKind.BECAME_LEADER:
            self.ready = False
            self.checker.became_leader(self.id, core.term,
                                       core.log.slice(Index(1), core.last_index()))
        elif kind == NoticeKind.COMMIT_ADVANCED and core.role == Role.LEADER:
            self.checker.leader_committed(self.id, core.term,
                                          core.log.slice(Index(1), core.last_index()),
                                          Index(min(self.hwm, index)), index, core.config,
                                          self.disks)
            if self.ready:
                self.checker.leader_ready(self.id, core.term, index)  # the watermark it serves
        elif kind == NoticeKind.LEADER_READY:
            self.ready = True
            self.checker.leader_ready(self.id, core.term, index)
        elif kind in (NoticeKind.BECAME_FOLLOWER, NoticeKind.BECAME_CANDIDATE,
                      NoticeKind.STEPPED_DOWN):
            self.ready = False
