"""The controller (Raft group 0) under the simulator: three voters hosting group 0 as the
broker's own `Partition` on power-loss files, each applying what commits through its own
`ControllerLog` + `ControllerStm` with snapshots in the kvstore, as `actors/controller_host.py`
does (`cluster/controller/controller_replica.py` holds the rules both follow).

Workload: proposals from random nodes, chosen from the proposer's own (advisory) tables as the
frontend's callers do: BootstrapCluster (racing ones from nodes that see no cluster yet),
RegisterNode of each node, CreateTopic placed by `placement.place` (the same name sometimes
from two nodes at once), DeleteTopic, CreatePartitions, AlterTopicConfigs,
AllocateProducerIds. A proposal is appended on the leader (acks=all) if the proposer leads, else
forwarded to the leader it knows over the faulty network, tried again after a NOT_LEADER or
`RESEND_MS` without an answer (a second copy may commit: decided again at apply), answered when
the proposer's own state machine applies it, failed at `PROPOSE_TIMEOUT_MS` or when the
proposer crashes. Faults are the Raft seeds' (crashes by kill -9 and power loss, restarts that
recover the log and restore the snapshot, partitions, drops, pauses, slow disks, drift),
minus reconfiguration (group 0's voters are the seed nodes).

    ControllerChecker: state agreement, results agree, acked proposals kept, producer ids unique
    Checker (group 0):  every Raft check, and the Kafka ones over the command batches

Must not know real time, files or sockets; runs the controller code, not a copy of the host.
"""

from __future__ import annotations

import dataclasses
import random
import traceback
import uuid
from collections.abc import Callable
from typing import Any

from redshank.cluster.controller import (
    AllocateProducerIds,
    AlterTopicConfigs,
    Applied,
    BootstrapCluster,
    Command,
    ControllerStm,
    CreatePartitions,
    CreateTopic,
    DeleteTopic,
    NetAddress,
    PlacementRefused,
    RegisterNode,
    decode_command,
    encode_command,
    place,
)
from redshank.cluster.controller.controller_log import ControllerLog, Resolved, batch_id
from redshank.cluster.controller.controller_replica import (
    READ_BYTES,
    SNAPSHOT_KEY,
    apply_batches,
    committed_end,
    restore_snapshot,
)
from redshank.cluster.raft.batches import values_of
from redshank.cluster.raft.heartbeat_manager import GroupId
from redshank.cluster.raft.sim.controller_checker import ControllerChecker, state_digest
from redshank.cluster.raft.sim.host import PartitionReplica, Wiring
from redshank.cluster.raft.sim.simulator import CLIENT, FaultParams, SimResult, Simulator
from redshank.cluster.raft.types import NO_NODE, NodeId, Role
from redshank.protocol.fast_dataclass import dataclass
from redshank.protocol.record_batch import iter_batches

__all__ = ["ControllerReplica", "ControllerSimulator", "controller_params",
           "run_controller_seed"]

SNAPSHOT_EVERY = 8  # commands between snapshots (the host's default is 64): restores are common
RESEND_MS = 2000.0  # ControllerHostConfig.resend_after_s
NO_LEADER_WAIT_MS = 200.0  # controller_frontend.NO_LEADER_WAIT_S
PROPOSE_TIMEOUT_MS = 10_000.0  # ControllerHostConfig.propose_timeout_s
TOPICS = ("orders", "users", "clicks", "audit")  # few names: creates and deletes race
SEND, FORWARD = 100, 101  # event kinds past the base simulator's


def controller_params(rng: random.Random) -> FaultParams:
    """The Raft seeds' fault mix on 3 voters and one group, without reconfiguration."""
    p = FaultParams.draw(rng)
    return dataclasses.replace(
        p, nodes=3, voters=3, learners=0, groups=1, reconfigure=False,
        drift=p.drift[:3], priorities=p.priorities[:3], flush_ms=p.flush_ms[:3],
        produce_every_ms=rng.choice((20.0, 40.0, 80.0)))


@dataclass(slots=True)
class ControllerWiring(Wiring):
    """The replica's reports to the simulator, past the partition's."""

    on_applied: Callable[[NodeId, int, Command, Applied, ControllerStm], None] = (
        lambda *a: None)
    on_resolved: Callable[[NodeId, Resolved], None] = lambda *a: None
    on_restored: Callable[[NodeId, ControllerStm], None] = lambda *a: None
    on_bad: Callable[[NodeId, int, str], None] = lambda *a: None


class _ObservedStm(ControllerStm):
    """The controller's own state machine, reporting each command it applied (nothing else
    changes)."""

    def __init__(self, observe: Callable[[int, Command, Applied, ControllerStm], None]) -> None:
        super().__init__()
        self._observe = observe

    def apply(self, index: Any, command: Command) -> Applied:
        result = super().apply(index, command)
        self._observe(int(index), command, result, self)
        return result


class ControllerReplica(PartitionReplica):
    """One node's replica of group 0: the partition as `PartitionReplica` hosts it, plus the
    controller's applying side (`ControllerLog` over the node's `ControllerStm`) fed after every
    turn, a snapshot in the kvstore every `SNAPSHOT_EVERY` commands, restored at a restart."""

    clog: ControllerLog
    wiring: ControllerWiring
    snapshots = 0  # taken, on this node (class default: set per instance once one is taken)
    restores = 0

    def booted(self) -> None:
        w = self.wiring
        self.clog = ControllerLog(_ObservedStm(
            lambda i, c, a, s: w.on_applied(self.id, i, c, a, s)))
        if restore_snapshot(self.kv, self.clog.stm):
            self.restores += 1
            w.on_restored(self.id, self.clog.stm)

    def turned(self) -> None:
        """Apply what committed, as `ControllerHost._apply_committed` (a read the cache cannot
        serve is the disk thread's there; the simulator reads at once)."""
        end = committed_end(self.part)
        while self.clog.next_offset < end:
            start = self.clog.next_offset
            data = self.log.read_cached(start, READ_BYTES, end - 1)
            if data is None:
                data = self.log.read(start, READ_BYTES, end - 1)
            done = apply_batches(self.clog, data, end, SNAPSHOT_EVERY)
            for offset, why in done.bad:
                self.wiring.on_bad(self.id, offset, why)
            for r in done.resolved:
                self.wiring.on_resolved(self.id, r)
            if done.snapshot is not None:
                self.snapshots += 1
                self.kv.put(SNAPSHOT_KEY, done.snapshot)  # flushed with the next flush
            if self.clog.next_offset == start:
                self.checker.fail(f"controller apply stuck on {self.id} at offset {start}")
                return

    def command_at(self, offset: int) -> Command | None:
        """The command this node's log holds at `offset` (for the final checks)."""
        data = self.log.read(offset, 1 << 16, offset)
        for pos, h in iter_batches(data, verify_crc=False):
            if h.base_offset == offset:
                return decode_command(memoryview(data)[pos : pos + h.size])
        return None


@dataclass(slots=True)
class Proposal:
    pid: int
    node: NodeId
    epoch: int  # the proposer's; a crash ends the proposal (the host fails its waiters)
    command: Command
    batch: bytes
    deadline: float
    attempt: int = 0  # events of earlier attempts are ignored
    done: bool = False


class ControllerSimulator(Simulator):
    replica_cls = ControllerReplica

    def __init__(self, seed: int) -> None:
        self.proposals: dict[int, Proposal] = {}
        self.ctl: ControllerChecker | None = None
        rng = random.Random(seed ^ 0x5EED_C0DE)
        self.incarnations = {NodeId(n): uuid.UUID(int=rng.getrandbits(128)) for n in (1, 2, 3)}
        self.last_bootstrap = -1e9
        super().__init__(seed, self.draw_params(rng))
        self.ctl = ControllerChecker(self.checkers[GroupId(0)])
        self.stats.update(dict.fromkeys(("proposals", "answered", "propose_failed", "attempts",
                                         "forwarded", "races", "refusals", "pid_blocks",
                                         "applies", "snapshots", "restores"), 0))

    @staticmethod
    def draw_params(rng: random.Random) -> FaultParams:
        return controller_params(rng)

    # ---- wiring -----------------------------------------------------------------------------

    def _wiring(self) -> ControllerWiring:
        return ControllerWiring(self._request_flush, self._request_load, self._answer,
                                self._on_applied, self._on_resolved, self._on_restored,
                                self._on_bad)

    def _on_applied(self, node: NodeId, index: int, command: Command, result: Applied,
                    stm: ControllerStm) -> None:
        assert self.ctl is not None
        self._trace.update(b"a%d:%d:%d;" % (node, index, result.error_code))
        self.ctl.applied(node, index, command, result, state_digest(stm.snapshot()))

    def _on_restored(self, node: NodeId, stm: ControllerStm) -> None:
        if self.ctl is not None:  # None while the nodes first boot (nothing to restore)
            self.ctl.restored(node, int(stm.last_applied), state_digest(stm.snapshot()))

    def _on_bad(self, node: NodeId, offset: int, why: str) -> None:
        self.checkers[GroupId(0)].fail(f"controller: node {node} skipped offset {offset}, no "
                                       f"command: {why}")

    def _on_resolved(self, node: NodeId, r: Resolved) -> None:
        assert self.ctl is not None
        assert isinstance(r.token, int)
        prop = self.proposals[r.token]
        if prop.node != node or prop.done:
            self.checkers[GroupId(0)].fail(f"controller: proposal {prop.pid} of {prop.node} "
                                           f"answered on {node} (done={prop.done})")
        prop.done = True
        self.stats["answered"] += 1
        self._trace.update(b"A%d:%d;" % (prop.pid, r.offset))
        self.ctl.answered(node, r.offset, prop.command, r.applied)

    # ---- events -----------------------------------------------------------------------------

    def _dispatch(self, kind: int, node: int, payload: Any) -> None:
        if kind == SEND:
            pid, attempt = payload
            prop = self.proposals[pid]
            if attempt == prop.attempt:
                self._send_proposal(prop)
        elif kind == FORWARD:
            self._forwarded(NodeId(node), payload)
        else:
            super()._dispatch(kind, node, payload)

    def _client(self) -> None:
        if not self.faults_on:
            return
        self._schedule(self.rng.expovariate(1.0 / self.params.produce_every_ms), CLIENT, 0, None)
        roll = self.rng.random()
        leaders = self._leaders()
        if roll < 0.03 and self.params.transfer and leaders:
            leader = self.rng.choice(leaders)
            if self.paused_until[leader.id] <= self.now:
                target = self.rng.choice(sorted(leader.core.config.voters))
                if leader.transfer(target):
                    self.stats["transfers"] += 1
            return
        if roll < 0.10 and leaders:
            self._consume(self.rng.choice(leaders))
            return
        node = self.rng.choice(self.ids)
        if not self.nodes[node].up:
            return
        cmd = self._command(node)
        if cmd is not None:
            self._propose(node, cmd)

    # ---- the workload -----------------------------------------------------------------------

    def _replica(self, node: NodeId) -> ControllerReplica:
        r = self.nodes[node].replicas[GroupId(0)]
        assert isinstance(r, ControllerReplica)
        return r

    def _register(self, node: NodeId) -> RegisterNode:
        return RegisterNode(node, self.incarnations[node], NetAddress(f"n{node}", 33145),
                            NetAddress(f"n{node}", 9092), 2)

    def _command(self, node: NodeId) -> Command | None:
        stm, rng = self._replica(node).clog.stm, self.rng
        if stm.cluster_uuid is None:
            if self.now - self.last_bootstrap < 1000:
                return None
            self.last_bootstrap = self.now
            return BootstrapCluster(uuid.UUID(int=rng.getrandbits(128)), (self._register(node),))
        if stm.members.get(node) is None or rng.random() < 0.04:
            return self._register(node)
        roll = rng.random()
        known = stm.topics.names()
        name = rng.choice(known) if known and rng.random() < 0.8 else rng.choice(TOPICS)
        topic = stm.topics.get(name)
        if roll < 0.3:
            return self._create(node, rng.choice(TOPICS))
        if roll < 0.45:
            tid = topic.topic_id if topic is not None and rng.random() < 0.5 else None
            return DeleteTopic(name, tid)
        if roll < 0.6:
            have = topic.partitions if topic is not None else 1
            rf = topic.replication_factor if topic is not None else 1
            more = rng.randrange(1, 3)
            placed = place(more, rf, stm.members.active_cores(),
                           [a for _, a in stm.topics.assignments()])
            return CreatePartitions(name, have + more,
                                    () if isinstance(placed, PlacementRefused) else placed)
        if roll < 0.8:
            if rng.random() < 0.7:
                value = str(rng.randrange(1000, 10**7))
                return AlterTopicConfigs.of(name, set=(("retention.ms", value),))
            return AlterTopicConfigs.of(name, delete=("retention.ms",))
        return AllocateProducerIds(node)

    def _create(self, node: NodeId, name: str) -> CreateTopic:
        stm, rng = self._replica(node).clog.stm, self.rng
        nodes = stm.members.active_cores()
        count = rng.randrange(1, 4)
        rf = rng.randrange(1, max(1, min(3, len(nodes))) + 1)
        placed = place(count, rf, nodes, [a for _, a in stm.topics.assignments()])
        return CreateTopic(name, uuid.UUID(int=rng.getrandbits(128)), count, rf,
                           (("cleanup.policy", "delete"),) if rng.random() < 0.3 else (),
                           () if isinstance(placed, PlacementRefused) else placed)

    def _propose(self, node: NodeId, cmd: Command) -> None:
        pid = len(self.proposals) + 1
        # A timestamp unique per proposal, as the frontend's: the batch's identity (BatchId).
        batch = encode_command(cmd, timestamp_ms=pid)
        prop = Proposal(pid, node, self.epoch[node], cmd, batch, self.now + PROPOSE_TIMEOUT_MS)
        self.proposals[pid] = prop
        self.stats["proposals"] += 1
        self._trace.update(b"p%d:%d;" % (pid, node))
        self._replica(node).clog.watch(batch_id(batch), pid)
        self._send_proposal(prop)
        if isinstance(cmd, CreateTopic) and self.rng.random() < 0.25:
            # A race: another node creates the same name at once (its own id and placement).
            other = self.rng.choice([n for n in self.ids if n != node])
            if self.nodes[other].up and self._replica(other).clog.stm.cluster_uuid is not None:
                self.stats["races"] += 1
                self._propose(other, self._create(other, cmd.name))

    def _send_proposal(self, prop: Proposal) -> None:
        """One attempt of `ControllerFrontend._append_anywhere`, and the next one scheduled."""
        n = prop.node
        if prop.done:
            return
        if self.epoch[n] != prop.epoch or not self.nodes[n].up or self.now > prop.deadline:
            prop.done = True  # ProposeFailed: the host closed, or the deadline passed
            self.stats["propose_failed"] += 1
            if self.epoch[n] == prop.epoch and self.nodes[n].up:
                self._replica(n).clog.unwatch(batch_id(prop.batch), prop.pid)
            return
        if self.paused_until[n] > self.now:
            self._retry(prop, self.paused_until[n] - self.now)
            return
        prop.attempt += 1
        self.stats["attempts"] += 1
        replica = self._replica(n)
        lead = replica.core.lead
        if replica.core.role == Role.LEADER:
            wait = RESEND_MS if self._append(replica, prop.batch) else NO_LEADER_WAIT_MS
        elif lead != NO_NODE and lead != n:
            self.stats["forwarded"] += 1
            self._send_packet(n, lead, (prop.pid, prop.attempt, prop.batch))
            wait = RESEND_MS  # a NOT_LEADER reply comes sooner
        else:
            wait = NO_LEADER_WAIT_MS
        self._retry(prop, wait)

    def _retry(self, prop: Proposal, delay: float) -> None:
        self._schedule(delay, SEND, prop.node, (prop.pid, prop.attempt))

    def _send_packet(self, src: NodeId, dst: NodeId, payload: Any) -> None:
        """A PROPOSE call or its reply over the faulty network (dropped, delayed, blocked)."""
        if (src, dst) in self.blocked or self.rng.random() < self.drop:
            return
        lo, hi = self.params.latency_ms
        self._schedule(self.rng.uniform(lo, hi), FORWARD, dst, (src, payload))

    def _forwarded(self, n: NodeId, packet: tuple[NodeId, Any]) -> None:
        src, payload = packet
        node = self.nodes[n]
        if not node.up:
            return  # the call times out: the proposer's resend timer covers it
        if self.paused_until[n] > self.now:
            self._schedule(self.paused_until[n] - self.now + 0.001, FORWARD, n, packet)
            return
        if len(payload) == 3:  # a PROPOSE call
            pid, attempt, batch = payload
            replica = self._replica(n)
            if replica.core.role == Role.LEADER and self._append(replica, batch):
                return  # APPENDED: the proposer waits for the apply (or its resend timer)
            self._send_packet(n, src, (pid, attempt))  # NOT_LEADER
        else:  # its NOT_LEADER reply
            pid, attempt = payload
            prop = self.proposals[pid]
            if attempt == prop.attempt and not prop.done:
                self._schedule(NO_LEADER_WAIT_MS, SEND, prop.node, (pid, attempt))

    def _append(self, replica: ControllerReplica, batch: bytes) -> bool:
        """`ControllerHost.append_here`: acks=all, answered (to the Kafka checkers) on commit."""
        self.next_req += 1
        rid = self.next_req
        self.requests[rid] = (-1, values_of(batch))
        if replica.produce(rid, -1, batch) is not None:
            self.requests.pop(rid, None)
            self.acked["refused"] += 1
            return False
        return True

    # ---- the end ----------------------------------------------------------------------------

    def _converged(self) -> bool:
        if not super()._converged():
            return False
        ends = {committed_end(self._replica(n).part) for n in self.ids}
        return len(ends) == 1 and all(self._replica(n).clog.next_offset in ends
                                      for n in self.ids)

    def _final_checks(self, g: GroupId) -> None:
        super()._final_checks(g)
        if g != GroupId(0):
            return  # a partition group (the cluster seeds): the Raft and Kafka checks only
        assert self.ctl is not None
        reps = {n: self._replica(n) for n in self.ids}
        self.ctl.final({n: r.clog.next_offset for n, r in reps.items()},
                       {n: state_digest(r.clog.stm.snapshot()) for n, r in reps.items()},
                       {n: {i: r.command_at(i - 1) for i in self.ctl.acked} for n, r in
                        reps.items()})

    def _result_now(self) -> SimResult:
        reps = [self._replica(n) for n in self.ids]
        self.stats["snapshots"] = sum(r.snapshots for r in reps)
        self.stats["restores"] = sum(r.restores for r in reps)
        if self.ctl is not None:
            self.stats["applies"] = self.ctl.applies
            self.stats["pid_blocks"] = len(self.ctl.blocks)
            self.stats["refusals"] = sum(1 for _c, a, _n in self.ctl.results.values()
                                         if not a.ok)
        return super()._result_now()


def run_controller_seed(seed: int) -> SimResult:
    """One controller seed: the same seed gives the same trace."""
    sim = ControllerSimulator(seed)
    try:
        return sim.run()
    except Exception as exc:  # a broken invariant inside the code under test: report it
        sim.checkers[GroupId(0)].fail(f"exception: {traceback.format_exc(limit=-6)}")
        result = sim._result_now()
        result.violations = result.violations or [repr(exc)]
        return result
