"""One simulated node hosting replicas of several partitions the way a core process does.

Each `PartitionReplica` runs the broker's own partition code (`cluster/partition/Partition`:
Raft consensus over `PartitionRaftLog` over a real `storage.Log` and `KvStore`) on the node's
simulated files (`storage/sim_files.py`), and does what `actors/partition_host.py` does for it:
answers, sends, one flush at a time (the kvstore if written, then the log, then `flush_done`),
entries Raft could not hand out from memory read "on the disk thread" (a later event) and
stepped back in. A crash throws the objects away and keeps the files (kill -9) or only what was
fsynced (power loss, the first unsynced write of each file possibly torn); a restart opens the
log and kvstore and runs `recover`, as the disk writer does. The node shares one
`HeartbeatManager` among its groups. Every observable fact goes to the group's Checker.
Must not know the fault schedule: the simulator decides what happens when.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import field
from typing import overload

from redshank.cluster.kafka.producer_state import ProducerStateTable
from redshank.cluster.partition.api import Append, PartitionResult
from redshank.cluster.partition.partition import Partition
from redshank.cluster.partition.raft_log import EntryLoad, recover
from redshank.cluster.raft.batches import values_of
from redshank.cluster.raft.heartbeat_manager import GroupId, HeartbeatManager, NodeHeartbeat
from redshank.cluster.raft.log import EntriesUnavailable
from redshank.cluster.raft.raft import RaftConfig, RaftCore
from redshank.cluster.raft.sim.checkers import Checker
from redshank.cluster.raft.sim.disk import Durable
from redshank.cluster.raft.types import (
    Config,
    Entry,
    HardState,
    Index,
    Message,
    MessageType,
    NodeId,
    NoticeKind,
    ProposeError,
    Role,
)
from redshank.protocol.fast_dataclass import dataclass
from redshank.protocol.record_batch import iter_batches
from redshank.storage import KvStore, Log, LogConfig
from redshank.storage.batch_cache import BatchCache
from redshank.storage.sim_files import PowerLossFiles

# Small segments (rolls, truncations across segments) and a batch cache so small that a
# lagging follower's entries must be read back from the files (`Io.load`).
LOG_CONFIG = LogConfig(segment_bytes=4096, index_interval=512, preallocate_step=1024)
CACHE_BYTES = 2048


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
# What a flush covers: (last index, first index, changed terms, hard state), kvstore seq.
_Covers = tuple[tuple[int, int, dict[int, int], HardState], int | None]
Emit = Callable[[GroupId, list[Message]], None]


@dataclass(slots=True)
class HostParams:
    election_ticks: int = 10
    prevote: bool = True
    check_quorum: bool = True
    priorities: dict[NodeId, int] = field(default_factory=dict)


@dataclass(slots=True)
class Wiring:
    """How a replica reaches the simulator: its events are scheduled there."""

    request_flush: Callable[[NodeId, GroupId], None]
    request_load: Callable[[NodeId, GroupId, EntryLoad], None]
    on_answer: Callable[[NodeId, GroupId, int, PartitionResult], None]


class SimNode:
    """The node: its files, its partition replicas, node-level heartbeats, whether it is up."""

    def __init__(self, node: NodeId, groups: dict[GroupId, tuple[Config, Checker,
                                                                 dict[NodeId, Durable]]],
                 params: HostParams, rng: random.Random, send: Callable[[Packet], None],
                 wiring: Wiring, replica: type[PartitionReplica] | None = None) -> None:
        """`replica`: the class hosting each group (default `PartitionReplica`)."""
        self.id = node
        replica_cls = replica or PartitionReplica
        self._send = send
        self.up = True
        self.rng = rng
        self.params = params
        self.wiring = wiring
        self.files = PowerLossFiles()
        self.hb = HeartbeatManager(node)
        self.replicas: dict[GroupId, PartitionReplica] = {}
        for g, (boot, checker, durables) in groups.items():
            self.host(g, boot, checker, durables, replica_cls)

    def host(self, group: GroupId, bootstrap: Config, checker: Checker,
             durables: dict[NodeId, Durable], replica: type[PartitionReplica] | None = None,
             directory: str | None = None) -> PartitionReplica:
        """Open (or reopen, from its files) this node's replica of `group`."""
        r = (replica or PartitionReplica)(self.id, group, bootstrap, self.params,
                                          random.Random(self.rng.random()), checker, durables,
                                          self, self._emit, self.wiring, directory)
        self.replicas[group] = r
        return r

    def unhost(self, group: GroupId) -> None:
        """Close the replica of `group` and remove its files (the partition manager's `Drop`:
        its directory removed, no fsync of the parent: a power loss may bring files back)."""
        r = self.replicas.pop(group)
        for d in (f"{r.dir}/raft", r.dir):
            if self.files.exists(d):
                for name in self.files.listdir(d):
                    self.files.remove(f"{d}/{name}")

    def tick(self) -> None:
        for r in self.replicas.values():
            r.tick()
        for nb in self.hb.flush():
            self._send(nb)

    def deliver(self, packet: Packet) -> None:
        if isinstance(packet, NodeHeartbeat):
            for g, m in packet.beats:
                if g in self.replicas:  # a group not hosted (yet, or any more): dropped
                    self.replicas[g].deliver(m)
        elif packet.group in self.replicas:
            self.replicas[packet.group].deliver(packet.msg)

    def crash(self, power_loss: bool) -> None:
        """kill -9 (the files keep every write) or power loss (only what was fsynced, the
        first unsynced write of each file possibly torn)."""
        self.up = False
        self.hb = HeartbeatManager(self.id)
        if power_loss:
            self.files = self.files.power_loss(torn=True, seed=self.rng.randrange(1 << 30))
        for r in self.replicas.values():
            r.crash()

    def restart(self) -> None:
        self.up = True
        for r in self.replicas.values():
            r.boot()

    def _emit(self, group: GroupId, msgs: list[Message]) -> None:
        for m in self.hb.collect(group, msgs):
            self._send(GroupMessage(group, m))


class PartitionReplica:
    """One partition's replica: a `Partition` over a storage log and kvstore on the node's
    files, hosted as `actors/partition_host.py` hosts it, observed by the group's Checker."""

    def __init__(self, node: NodeId, group: GroupId, bootstrap: Config, params: HostParams,
                 rng: random.Random, checker: Checker, durables: dict[NodeId, Durable],
                 owner: SimNode, emit: Emit, wiring: Wiring, directory: str | None = None
                 ) -> None:
        self.id = node
        self.group = group
        self.bootstrap = bootstrap
        self.params = params
        self.rng = rng
        self.checker = checker
        self.durables = durables
        self.durable = durables[node]
        self.owner = owner
        self.dir = directory or f"/n{node}/g{group}"
        self._emit_cb = emit
        self.wiring = wiring
        self.loads = 0  # entries read back from the files for a lagging follower
        self.backfills = 0  # ... from before the recovery anchor (the index rebuilt)
        self.boot()

    def boot(self) -> None:
        """Open the log and kvstore and recover Raft's index over them (the disk writer's
        `OpenPartition`), then host a new Partition."""
        p, files = self.params, self.owner.files
        self.log = Log.open(self.dir, LOG_CONFIG, files=files, cache=BatchCache(CACHE_BYTES))
        self.kv = KvStore.open(f"{self.dir}/raft", files=files)  # as the disk writer
        recovered = recover(self.log, self.kv)
        self.checker.recovered(self.id, recovered.hard_state, self.durable,
                               {recovered.first + i: int(slot.term)
                                for i, (slot, _) in enumerate(recovered.slots)},
                               recovered.first)
        cfg = RaftConfig(id=self.id, rng=random.Random(self.rng.random()),
                         election_ticks=p.election_ticks, prevote=p.prevote,
                         check_quorum=p.check_quorum, priorities=p.priorities)
        # An anchor every other entry: short runs cross anchors (recovery, backfill).
        self.part = Partition(self.log, self.kv, recovered, ProducerStateTable(), node=self.id,
                              bootstrap=self.bootstrap, raft=cfg, anchor_every=2)
        self.flushing = False
        self.flush_owed = False
        self._flush_covers: _Covers | None = None
        self.hwm = self.core.commit
        self.ready = False  # LEADER_READY seen in the current leadership: it serves Kafka
        self.booted()
        self.part.start()
        self.turn()

    def booted(self) -> None:
        """The Partition is open, not started: a subclass restores what it hosts on top."""

    @property
    def core(self) -> RaftCore:
        return self.part.consensus.core

    # ---- inputs -----------------------------------------------------------------------------

    def tick(self) -> None:
        before = (self.core.term, self.core.vote)
        self.part.tick()
        if self.core.role == Role.PRECANDIDATE:
            # Becoming a precandidate changes no persistent state.
            self.checker.prevote_handled(self.id, before, (self.core.term, self.core.vote),
                                         True, False)
        self.turn()

    def deliver(self, m: Message) -> None:
        before = (self.core.term, self.core.vote)
        self.part.step(m)
        if m.type in (MessageType.PREVOTE, MessageType.PREVOTE_RESPONSE):
            self.checker.prevote_handled(
                self.id, before, (self.core.term, self.core.vote),
                m.type == MessageType.PREVOTE, self.core.role == Role.CANDIDATE)
        self.turn()

    def produce(self, rid: int, acks: int, batch: bytes) -> PartitionResult | None:
        """A produce of one batch (`acks` as Kafka's: -1, 1, 0); answered now or later."""
        res = self.part.append(Append(bytearray(batch), acks, None), rid)
        self.turn()
        return res

    def transfer(self, target: NodeId) -> bool:
        ok = self.part.consensus.transfer_leadership(target) is None
        self.turn()
        return ok

    def reconfigure(self, voters: frozenset[NodeId], learners: frozenset[NodeId]) -> Index | None:
        res = self.part.consensus.propose_config(voters, learners)
        self.turn()
        return None if isinstance(res, ProposeError) else res

    def flush(self) -> None:
        """The flush started at `_start_flush` runs now (the disk writer's round): the kvstore
        if it was written, then the log; then `flush_done`."""
        assert self._flush_covers is not None
        covers, _kv_seq = self._flush_covers
        self._flush_covers = None
        # The kvstore goes first whenever it holds writes, not only if it did when the flush
        # began: the log's flush covers every batch appended so far, and a batch durable
        # without the no-op or configuration entry before it (a kvstore write made after the
        # flush began) would take that entry's Raft index at recovery.
        if self.kv.dirty_offset > self.kv.flushed_offset:
            self.kv.flush()
        self.log.flush()
        last, _first, terms, hs = covers
        self.durable.synced(last, terms, hs)  # what any crash keeps from now on
        self.flushing = False
        self.part.flush_done()
        self.turn()

    def load_done(self, load: EntryLoad) -> None:
        """The disk thread read entries a lagging follower needs: step them in."""
        loaded = load.read(self.log)
        self.loads += 1
        self.backfills += loaded.backfill is not None
        self.part.entries_loaded(loaded)
        self.turn()

    def crash(self) -> None:
        self.flushing = False
        self._flush_covers = None

    # ---- doing what the Partition asks, and watching it -------------------------------------

    def turn(self) -> None:
        core, checker, part = self.core, self.checker, self.part
        io = part.take_io()
        for m in io.send:
            if m.type == MessageType.VOTE_RESPONSE and not m.reject:
                checker.vote_sent(self.id, m.term, m.dst, self.durable, core.config)
            elif m.type == MessageType.TIMEOUT_NOW:
                checker.timeout_now_sent(self.id, m.dst, core.term, core.last_index(),
                                         core.last_term(), self.durables[m.dst])
        if io.send:
            self._emit_cb(self.group, io.send)
        for load in io.load:
            self.wiring.request_load(self.id, self.group, load)
        for n in io.notices:
            self._notice(n.kind, n.index)
        for waiter, result in io.answers:
            assert isinstance(waiter, int)
            self.wiring.on_answer(self.id, self.group, waiter, result)
        if io.high_watermark is not None:
            checker.kafka_hwm(self.id, core.term, io.high_watermark, self.ready)
        checker.hwm(self.id, self.hwm, core.commit)
        self.hwm = core.commit
        self.flush_owed |= io.start_flush
        if self.flush_owed and not self.flushing:
            self._start_flush()
        self.turned()

    def turned(self) -> None:
        """After each turn: a subclass applies what committed (the log is the partition's own
        state machine, so nothing here)."""

    def _start_flush(self) -> None:
        """As `PartitionHost.flush`: the debouncer covers what was written so far."""
        self.flush_owed = False
        self.flushing = True
        self.part.flush_begin()
        kv_seq = None
        if self.part.kv_dirty:
            self.part.kv_flushing()
            kv_seq = self.kv.dirty_offset
        # What this flush will make durable, as of now (later writes wait for the next one).
        core, rl = self.core, self.part.raft_log
        last, first = int(core.last_index()), int(rl.first_index())
        terms = {i: int(rl.term(Index(i))) for i in self.durable.differs(last, first,
                                                                        rl.term)}
        self._flush_covers = ((last, first, terms, core.hard_state()), kv_seq)
        self.wiring.request_flush(self.id, self.group)

    # ---- what the checkers read --------------------------------------------------------------

    def entries(self) -> LogView:
        return LogView(self)

    def kafka_records(self, up_to: int, start: int = 0) -> dict[int, bytes]:
        """Offset -> record value of the storage log from `start` below `up_to` (a
        consumer's read)."""
        out: dict[int, bytes] = {}
        start = max(start, self.log.start_offset)
        if up_to <= start:
            return out
        data = self.log.read(start, 1 << 62, up_to - 1)
        view = memoryview(data)
        for pos, h in iter_batches(data, verify_crc=False):
            for k, v in enumerate(values_of(view[pos : pos + h.size])):
                out[h.base_offset + k] = v
        return out

    def _notice(self, kind: NoticeKind, index: Index) -> None:
        core = self.core
        if kind == NoticeKind.BECAME_LEADER:
            self.ready = False
            self.checker.became_leader(self.id, core.term, self.entries())
        elif kind == NoticeKind.COMMIT_ADVANCED and core.role == Role.LEADER:
            self.checker.leader_committed(self.id, core.term, self.entries(),
                                          Index(min(self.hwm, index)), index, core.config,
                                          self.durables)
            if self.ready:
                self.checker.leader_ready(self.id, core.term, index)  # the watermark it serves
        elif kind == NoticeKind.LEADER_READY:
            self.ready = True
            self.checker.leader_ready(self.id, core.term, index)
            self.checker.kafka_hwm(self.id, core.term, self.part.high_watermark, True)
        elif kind in (NoticeKind.BECAME_FOLLOWER, NoticeKind.BECAME_CANDIDATE,
                      NoticeKind.STEPPED_DOWN):
            self.ready = False


class LogView(Sequence[Entry]):
    """A replica's Raft log as a sequence from index 1, read lazily: entries in memory from the
    RaftLog, the others from the storage log (the simulator is single-threaded)."""

    def __init__(self, replica: PartitionReplica) -> None:
        self.rl = replica.part.raft_log
        self.log = replica.log
        self.checker = replica.checker
        self._n = int(self.rl.last_index())
        self._before: dict[int, Entry] | None = None  # read once: before the anchor


    def __len__(self) -> int:
        return self._n

    def _at(self, index: int) -> Entry:
        if index < self.rl.first_index():
            # Before the recovery anchor: read as a lagging follower's leader would (the
            # index rebuilt from this replica's own files), else what was committed there.
            if self._before is None:  # one read of them all (each alone rescans the files)
                last = Index(int(self.rl.first_index()) - 1)
                got = self.rl.plan_load(Index(1), last).read(self.log).entries
                self._before = {int(e.index): e for e in got}
            e = self._before.get(index)
            return e if e is not None else self.checker.committed_entry(index)
        try:
            return self.rl.entry(Index(index))
        except EntriesUnavailable:
            got = self.rl.plan_load(Index(index), Index(index)).read(self.log).entries
            assert got, f"entry {index} unreadable"
            return got[0]

    @overload
    def __getitem__(self, k: int) -> Entry: ...
    @overload
    def __getitem__(self, k: slice) -> list[Entry]: ...
    def __getitem__(self, k: int | slice) -> Entry | list[Entry]:
        if isinstance(k, slice):
            return [self._at(i + 1) for i in range(*k.indices(self._n))]
        if k < 0:
            k += self._n
        if not 0 <= k < self._n:
            raise IndexError(k)
        return self._at(k + 1)

    def __iter__(self) -> Iterator[Entry]:
        for i in range(self._n):
            yield self._at(i + 1)
