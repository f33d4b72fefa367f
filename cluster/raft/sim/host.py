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

from redshank.cluster.raft.flush_debouncer import FlushDebouncer
from redshank.cluster.raft.heartbeat_manager import GroupId, HeartbeatManager, NodeHeartbeat
from redshank.cluster.raft.log import MemoryLog
from redshank.cluster.raft.offset_translator import OffsetTranslator
from redshank.cluster.raft.raft import RaftConfig, RaftCore
from redshank.cluster.raft.replicate_batcher import ReplicateBatcher, ReplicateRequest
from redshank.cluster.raft.replicate_entries_stm import (
    ReplicateEntriesStm,
    ReplicateError,
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
        self.core = self._boot()

    def _boot(self) -> RaftCore:
        cfg = RaftConfig(id=self.id, rng=random.Random(self.rng.random()),
                         election_ticks=self.params.election_ticks, prevote=self.params.prevote,
                         check_quorum=self.params.check_quorum, priorities=self.params.priorities)
        core = RaftCore(cfg, MemoryLog(self.disk.log), self.disk.hard_state, self.bootstrap)
        self.translator = OffsetTranslator()
        for e in self.disk.log:
            self.translator.append(e)
        self.batcher = ReplicateBatcher()
        self.stm = ReplicateEntriesStm()
        self.flusher = FlushDebouncer()
        self.hwm = core.commit
        self.was_leader = False
        return core

    # ---- inputs -----------------------------------------------------------------------------

    def tick(self) -> None:
        before = (self.core.term, self.core.vote)
        self.core.tick()
        if self.core.role == Role.PRECANDIDATE:
            # Becoming a precandidate changes no persistent state.
            self.checker.prevote_handled(self.id, before, (self.core.term, self.core.vote),
                                         True, False)
        self.drain()

    def deliver(self, m: Message) -> None:
        if m.type in (MessageType.PREVOTE, MessageType.PREVOTE_RESPONSE):
            before = (self.core.term, self.core.vote)
            self.core.step(m)
            self.checker.prevote_handled(
                self.id, before, (self.core.term, self.core.vote),
                m.type == MessageType.PREVOTE, self.core.role == Role.CANDIDATE)
        else:
            self.core.step(m)
        self.drain()

    def produce(self, req: ReplicateRequest) -> bool:
        if self.core.role != Role.LEADER or not self.batcher.enqueue(req):
            return False
        self._propose_batches()
        self.drain()
        return True

    def _propose_batches(self) -> None:
        while self.batcher.pending():
            batch = self.batcher.take()
            base = self.translator.next_offset()
            res = self.core.propose(tuple(r for req in batch for r in req.records))
            if isinstance(res, ProposeError):
                self.batcher.refuse(batch)
                return
            self.batcher.hold(res, batch)
            for r in self.stm.appended(batch, res, self.core.term, base):
                self._on_result(self.id, r)
            self.drain()  # keep the translator in step before the next batch

    def flush(self) -> None:
        """The debounced fsync (instantaneous in virtual time): it covers every write so far."""
        self.flusher.begin()
        self.disk.sync()
        batch, again = self.flusher.complete()
        for m in batch.messages:
            if m.type == MessageType.VOTE_RESPONSE and not m.reject:
                self.checker.vote_sent(self.id, m.term, m.dst, self.disk, self.core.config)
        self._emit(batch.messages)
        if batch.mark is not None:
            self.core.on_persisted(batch.mark)
        if again:
            self._request_flush(self.id, self.group)
        self.drain()

    def crash(self) -> None:
        self.disk.crash(self.rng)

    def restart(self) -> None:
        self.core = self._boot()

    # ---- the Ready loop ---------------------------------------------------------------------

    def drain(self) -> None:
        core = self.core
        while core.has_ready():
            rd = core.ready()
            if rd.entries:
                self.translator.truncate(rd.entries[0].index)
                for e in rd.entries:
                    self.translator.append(e)
            self.disk.write(rd.entries, rd.hard_state)
            self._emit(rd.messages)
            if core.role == Role.LEADER:
                self.batcher.handed_off(rd.mark.index)
                for r in self.stm.written(rd.mark.index):
                    self._on_result(self.id, r)
            if self.flusher.add(rd):
                self._request_flush(self.id, self.group)
            if rd.committed:
                self.checker.applied(self.id, rd.committed)
            for n in rd.notices:
                self._notice(n.kind, n.index)
        if self.was_leader and core.role == Role.LEADER:
            for r in self.stm.committed(core.commit, core.log.term):
                if r.error is None and r.base_offset is not None:
                    e = core.log.entry(r.index)
                    self.checker.acked_all_entry(r.id, r.index, r.term, r.base_offset,
                                                 self._records_of(r.id, e.records), core.config,
                                                 self.disks)
                self._on_result(self.id, r)
        hwm = core.commit
        self.checker.hwm(self.id, self.hwm, hwm)
        self.hwm = hwm

    @staticmethod
    def _records_of(req: int, records: tuple[bytes, ...]) -> tuple[bytes, ...]:
        # The simulator tags each record with its request id: b"r<id>.<n>".
        tag = b"r%d." % req
        return tuple(x for x in records if x.startswith(tag))

    def _notice(self, kind: NoticeKind, index: Index) -> None:
        core = self.core
        if kind == NoticeKind.BECAME_LEADER:
            self.was_leader = True
            self.checker.became_leader(self.id, core.term, core.log.slice(Index(1),
                                                                          core.last_index()))
        elif kind in (NoticeKind.BECAME_FOLLOWER, NoticeKind.STEPPED_DOWN,
                      NoticeKind.BECAME_CANDIDATE):
            if self.was_leader:
                self.was_leader = False
                for req in self.batcher.drop_all():
                    self._on_result(self.id, ReplicateResult(
                        req.id, req.acks, Index(0), core.term, None, ReplicateError.NOT_LEADER))
                for r in self.stm.lost_leadership():
                    self._on_result(self.id, r)
        elif kind == NoticeKind.COMMIT_ADVANCED and core.role == Role.LEADER:
            self.checker.leader_committed(self.id, core.term,
                                          core.log.slice(Index(1), core.last_index()),
                                          self._last_leader_commit(index), index, core.config,
                                          self.disks)
        elif kind == NoticeKind.LEADER_READY:
            self.checker.leader_ready(self.id, core.term, core.commit)

    def _last_leader_commit(self, index: Index) -> Index:
        return Index(min(self.hwm, index))

    def _emit(self, msgs: list[Message]) -> None:
        for m in msgs:
            if m.type == MessageType.TIMEOUT_NOW:
                self.checker.timeout_now_sent(self.id, m.dst, self.core.term,
                                              self.core.last_index(), self.core.last_term(),
                                              self.disks[m.dst])
        self._emit_cb(self.group, msgs)
