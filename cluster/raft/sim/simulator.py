"""The seeded Raft simulator: virtual time, a faulty network, crashing disks, pauses and clock
drift, a produce/transfer/reconfigure workload, then a healed liveness phase.

`run_seed(seed)` is a pure function of the seed: the same seed gives the same event trace (its
hash is in the result). Must not read a clock, sleep or touch files: time is `self.now`.

    safety phase (faults on)  ->  heal  ->  liveness phase: one leader within 10 s,
                                            every acks=all entry committed everywhere within 10 s
"""

from __future__ import annotations

import hashlib
import heapq
import random
import traceback
from dataclasses import field
from typing import Any

from redshank.cluster.partition.api import PartitionResult
from redshank.cluster.partition.raft_log import EntryLoad
from redshank.cluster.raft.batches import batch_of
from redshank.cluster.raft.heartbeat_manager import GroupId, NodeHeartbeat
from redshank.cluster.raft.sim.checkers import Checker
from redshank.cluster.raft.sim.disk import Durable
from redshank.cluster.raft.sim.host import (
    GroupMessage,
    HostParams,
    Packet,
    PartitionReplica,
    SimNode,
    Wiring,
)
from redshank.cluster.raft.types import Config, NodeId, Role
from redshank.protocol.fast_dataclass import dataclass
from redshank.storage.types import Offset

TICK_MS = 100.0  # one Raft tick; election timeout 10-20 ticks = 1-2 s
LEADER_DEADLINE_MS = 10_000.0
COMMIT_DEADLINE_MS = 10_000.0
# A run normally takes a few thousand events; a message storm (two nodes bouncing appends and
# rejections forever, multiplied by duplication) is reported instead of hanging the test.
MAX_EVENTS = 300_000

TICK, DELIVER, FLUSH, CLIENT, FAULT, RESTART, LOAD = range(7)


@dataclass(frozen=True, slots=True)
class FaultParams:
    nodes: int
    voters: int
    learners: int
    drop: float
    duplicate: float
    latency_ms: tuple[float, float]
    fault_every_ms: float
    crash_weight: float
    pause_weight: float
    partition_weight: float
    drift: tuple[float, ...]
    produce_every_ms: float
    reconfigure: bool
    transfer: bool
    prevote: bool
    priorities: tuple[int, ...]
    safety_ms: float
    groups: int  # Raft groups sharing the nodes (and their node-level heartbeats)
    flush_ms: tuple[float, ...]  # per node: how long an fsync may take (slow disks)

    @staticmethod
    def draw(rng: random.Random) -> FaultParams:
        n = rng.choice((3, 3, 4, 5, 5))
        voters = 3 if n < 5 else rng.choice((3, 5))
        learners = rng.randrange(n - voters + 1)
        drifty = rng.random() < 0.5
        prio = rng.random() < 0.25
        return FaultParams(
            nodes=n, voters=voters, learners=learners,
            drop=rng.choice((0.0, 0.01, 0.05, 0.15)),
            duplicate=rng.choice((0.0, 0.02, 0.1)),
            latency_ms=(1.0, rng.choice((5.0, 20.0, 80.0))),
            fault_every_ms=rng.uniform(200, 900),
            crash_weight=rng.random(), pause_weight=rng.random(), partition_weight=rng.random(),
            drift=tuple(rng.uniform(0.8, 1.25) if drifty else 1.0 for _ in range(n)),
            produce_every_ms=rng.choice((5.0, 15.0, 40.0)),
            reconfigure=rng.random() < 0.4, transfer=rng.random() < 0.4,
            prevote=rng.random() < 0.85,
            priorities=tuple(rng.choice((1, 1, 2, 5)) if prio else 1 for _ in range(n)),
            safety_ms=rng.uniform(4000, 9000),
            groups=rng.choice((1, 1, 2, 3)),
            flush_ms=tuple(rng.choice((2.0, 6.0, 6.0, 40.0)) for _ in range(n)),
        )


@dataclass(slots=True)
class SimResult:
    seed: int
    params: FaultParams
    violations: list[str]
    trace_hash: str
    events: int = 0
    acked: dict[str, int] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        head = f"seed={self.seed} params={self.params}"
        return "\n".join([head, *self.violations])


class StormError(Exception):
    """The run exceeded its event budget."""


class Simulator:
    replica_cls: type[PartitionReplica] = PartitionReplica  # what each node hosts per group

    def __init__(self, seed: int, params: FaultParams | None = None) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.params = params or FaultParams.draw(self.rng)
        p = self.params
        self.now = 0.0
        self._queue: list[tuple[float, int, int, int, Any]] = []
        self._seq = 0
        self._trace = hashlib.blake2b(digest_size=16)
        self.events = 0
        self.groups = [GroupId(g) for g in range(p.groups)]
        self.checkers = {g: Checker() for g in self.groups}
        self.ids = [NodeId(i) for i in range(1, p.nodes + 1)]
        voters = frozenset(self.ids[: p.voters])
        learners = frozenset(self.ids[p.voters : p.voters + p.learners])
        bootstrap = Config(voters=voters, learners=learners)
        self.durables = {g: {n: Durable() for n in self.ids} for g in self.groups}
        hp = HostParams(prevote=p.prevote,
                        priorities={n: p.priorities[n - 1] for n in self.ids})
        self.nodes = {
            n: SimNode(n, {g: (bootstrap, self.checkers[g], self.durables[g])
                           for g in self.groups},
                       hp, random.Random(self.rng.random()), self._send,
                       self._wiring(), self.replica_cls)
            for n in self.ids
        }
        self.epoch = dict.fromkeys(self.ids, 0)
        self.paused_until = dict.fromkeys(self.ids, 0.0)
        self.flush_pending = {(n, g): False for n in self.ids for g in self.groups}
        self.blocked: set[tuple[NodeId, NodeId]] = set()
        self.faults_on = True
        self.drop = p.drop
        self.duplicate = p.duplicate
        self.next_req = 0
        self.requests: dict[int, tuple[int, tuple[bytes, ...]]] = {}  # id -> (acks, records)
        self.acked = {"all": 0, "leader": 0, "none": 0, "failed": 0, "refused": 0}
        self.stats = dict.fromkeys(("crashes", "power_losses", "pauses", "partitions",
                                    "transfers", "configs", "loads", "reads"), 0)
        for n in self.ids:
            self._schedule(self.rng.uniform(0, TICK_MS), TICK, n, 0)
        self._schedule(p.produce_every_ms, CLIENT, 0, None)
        self._schedule(p.fault_every_ms, FAULT, 0, None)

    # ---- scheduling -------------------------------------------------------------------------

    def _schedule(self, delay: float, kind: int, node: int, payload: Any) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (self.now + delay, self._seq, kind, node, payload))

    def _run_until(self, t_end: float, stop: Any = None) -> bool:
        while self._queue and self._queue[0][0] <= t_end:
            if self.events >= MAX_EVENTS:
                raise StormError(f"event budget exceeded: {self.events} events "
                                 f"by t={self.now:.0f}ms")
            t, _seq, kind, node, payload = heapq.heappop(self._queue)
            self.now = t
            for c in self.checkers.values():
                c.now = t
            self.events += 1
            self._dispatch(kind, node, payload)
            if stop is not None and kind == TICK and stop():
                return True
        self.now = max(self.now, t_end)
        return False

    def _dispatch(self, kind: int, node: int, payload: Any) -> None:
        n = NodeId(node)
        if kind == TICK:
            epoch = payload
            if epoch != self.epoch[n] or not self.nodes[n].up:
                return
            if self.paused_until[n] > self.now:
                self._schedule(self.paused_until[n] - self.now, TICK, n, epoch)
                return
            self._trace.update(b"T%d:%d;" % (n, int(self.now * 1000)))
            self.nodes[n].tick()
            self._schedule(TICK_MS * self.params.drift[n - 1], TICK, n, epoch)
        elif kind == DELIVER:
            self._deliver(n, payload)
        elif kind == FLUSH:
            epoch, g = payload
            if epoch != self.epoch[n] or not self.nodes[n].up:
                return
            if self.paused_until[n] > self.now:
                self._schedule(self.paused_until[n] - self.now, FLUSH, n, payload)
                return
            self.flush_pending[n, g] = False
            replica = self.nodes[n].replicas.get(g)
            if replica is None:
                return  # dropped since (a deleted topic's replica)
            self._trace.update(b"F%d:%d;" % (n, g))
            replica.flush()
        elif kind == LOAD:
            epoch, g, load = payload
            if epoch != self.epoch[n] or not self.nodes[n].up:
                return
            if self.paused_until[n] > self.now:
                self._schedule(self.paused_until[n] - self.now, LOAD, n, payload)
                return
            loader = self.nodes[n].replicas.get(g)
            if loader is None:
                return
            self._trace.update(b"L%d:%d;" % (n, g))
            self.stats["loads"] += 1
            loader.load_done(load)
        elif kind == CLIENT:
            self._client()
        elif kind == FAULT:
            self._fault()
        elif kind == RESTART:
            self._restart(n)

    def _deliver(self, n: NodeId, packet: Packet) -> None:
        node = self.nodes[n]
        if not node.up:
            return
        if self.paused_until[n] > self.now:
            self._schedule(self.paused_until[n] - self.now + 0.001, DELIVER, n, packet)
            return
        if isinstance(packet, GroupMessage):
            m = packet.msg
            self._trace.update(b"D%d:%d:%d:%d:%d:%d;" % (packet.group, m.src, n, m.type, m.term,
                                                          m.index))
        else:
            self._trace.update(b"H%d:%d:%d;" % (packet.src, n, len(packet.beats)))
        node.deliver(packet)

    # ---- the world --------------------------------------------------------------------------

    def _send(self, packet: Packet) -> None:
        src, dst = packet.src, packet.dst
        if dst not in self.nodes or (src, dst) in self.blocked:
            return
        rng = self.rng
        if rng.random() < self.drop:
            return
        lo, hi = self.params.latency_ms
        self._schedule(rng.uniform(lo, hi), DELIVER, dst, packet)
        if rng.random() < self.duplicate:
            self._schedule(rng.uniform(lo, hi * 2), DELIVER, dst, packet)

    def _wiring(self) -> Wiring:
        return Wiring(self._request_flush, self._request_load, self._answer)

    def _request_flush(self, n: NodeId, g: GroupId) -> None:
        # Flush debouncing: one fsync covers every write made before it runs.
        if not self.flush_pending.get((n, g), False):
            self.flush_pending[n, g] = True
            delay = self.rng.uniform(0.5, self.params.flush_ms[n - 1])
            self._schedule(delay, FLUSH, n, (self.epoch[n], g))

    def _request_load(self, n: NodeId, g: GroupId, load: EntryLoad) -> None:
        # The disk writer reads the entries a while later; the loop goes on meanwhile.
        delay = self.rng.uniform(0.5, self.params.flush_ms[n - 1])
        self._schedule(delay, LOAD, n, (self.epoch[n], g, load))

    def _answer(self, n: NodeId, g: GroupId, rid: int, r: PartitionResult) -> None:
        acks, records = self.requests.pop(rid)
        if r.error_code != 0:
            self.acked["failed"] += 1
            return
        self.acked[{-1: "all", 1: "leader", 0: "none"}[acks]] += 1
        if acks == -1:
            replica = self.nodes[n].replicas[g]
            rl = replica.part.raft_log
            index = rl.offsets.to_raft(Offset(r.base_offset))
            assert index is not None, f"acked offset {r.base_offset} holds no entry"
            self.checkers[g].acked_all_entry(rid, index, rl.term(index), r.base_offset,
                                             records, replica.core.config, self.durables[g])

    def _leaders(self, group: GroupId | None = None) -> list[PartitionReplica]:
        groups = self.groups if group is None else [group]
        return [r for g in groups for x in self.nodes.values()
                if x.up and (r := x.replicas.get(g)) is not None and r.core.role == Role.LEADER]

    def _client(self) -> None:
        if not self.faults_on:
            return
        self._schedule(self.rng.expovariate(1.0 / self.params.produce_every_ms), CLIENT, 0, None)
        leaders = self._leaders()
        if not leaders:
            return
        self._kafka_client(self.rng.choice(leaders))

    def _kafka_client(self, leader: PartitionReplica) -> None:
        """One client action on a partition's leader: a transfer, a reconfiguration, a consumer
        read or a produce at acks 0/1/all."""
        if self.paused_until[leader.id] > self.now:
            return
        roll = self.rng.random()
        if roll < 0.03 and self.params.transfer:
            target = self.rng.choice(sorted(leader.core.config.voters))
            if leader.transfer(target):
                self.stats["transfers"] += 1
        elif roll < 0.08 and self.params.reconfigure:
            self._reconfigure(leader)
        elif roll < 0.15:
            self._consume(leader)
        else:
            self.next_req += 1
            rid = self.next_req
            acks = self.rng.choice((-1, -1, 1, 0))
            records = tuple(b"r%d.%d" % (rid, k) for k in range(self.rng.randrange(1, 4)))
            self.requests[rid] = (acks, records)
            now = leader.produce(rid, acks, batch_of(records))
            if now is not None:
                self.requests.pop(rid, None)
                self.acked["refused"] += 1

    def _consume(self, leader: PartitionReplica) -> None:
        """A consumer fetches the tail below the high watermark a ready leader serves."""
        if not leader.ready:
            return
        hw = leader.part.high_watermark
        start = max(0, hw - self.rng.randrange(1, 40))
        self.stats["reads"] += 1
        self.checkers[leader.group].consumer_read(leader.id, leader.kafka_records(hw, start))

    def _reconfigure(self, leader: PartitionReplica) -> None:
        cfg = leader.core.config
        voters, learners = set(cfg.voters), set(cfg.learners)
        others = [n for n in self.ids if n not in cfg.members()]
        roll = self.rng.random()
        if roll < 0.3 and others:
            learners.add(self.rng.choice(others))
        elif roll < 0.6 and learners:
            n = self.rng.choice(sorted(learners))
            learners.discard(n)
            voters.add(n)
        elif roll < 0.85 and len(voters) > 3:
            voters.discard(self.rng.choice(sorted(voters)))
        elif learners:
            learners.discard(self.rng.choice(sorted(learners)))
        else:
            return
        res = leader.reconfigure(frozenset(voters), frozenset(learners))
        if res is not None:
            self._trace.update(b"C%d;" % res)
            self.stats["configs"] += 1

    def _fault(self) -> None:
        if not self.faults_on:
            return
        p, rng = self.params, self.rng
        self._schedule(rng.expovariate(1.0 / p.fault_every_ms), FAULT, 0, None)
        total = p.crash_weight + p.pause_weight + p.partition_weight
        roll = rng.uniform(0, total)
        n = rng.choice(self.ids)
        leaders = self._leaders()
        if leaders and rng.random() < 0.5:
            n = rng.choice(leaders).id  # the leader is where the interesting bugs are
        if roll < p.crash_weight:
            if self.nodes[n].up:
                self._trace.update(b"X%d;" % n)
                self.stats["crashes"] += 1
                power_loss = rng.random() < 0.5
                self.stats["power_losses"] += power_loss
                self.nodes[n].crash(power_loss)
                self.epoch[n] += 1
                for g in self.groups:
                    self.flush_pending[n, g] = False
                self._schedule(rng.uniform(100, 1500), RESTART, n, None)
        elif roll < p.crash_weight + p.pause_weight:
            self.paused_until[n] = max(self.paused_until[n], self.now + rng.uniform(100, 2000))
            self.stats["pauses"] += 1
        else:
            self._partition()

    def _partition(self) -> None:
        rng, ids = self.rng, list(self.ids)
        rng.shuffle(ids)
        leaders = self._leaders()
        if leaders and rng.random() < 0.5:
            # Put the leader first: it becomes the isolated node, the bridge or in side a.
            lead = rng.choice(leaders).id
            ids.remove(lead)
            ids.insert(0, lead)
        kind = rng.randrange(5)
        cut = rng.randrange(1, len(ids))
        a, b = ids[:cut], ids[cut:]
        self.blocked = set()
        if kind == 1:  # symmetric
            self.blocked = {(x, y) for x in a for y in b} | {(y, x) for x in a for y in b}
        elif kind == 2:  # asymmetric: a hears nothing from b
            self.blocked = {(y, x) for x in a for y in b}
        elif kind == 3 and len(ids) >= 3:  # bridge: only ids[0] talks to both sides
            bridge, rest = ids[0], ids[1:]
            cut = rng.randrange(1, len(rest))
            a, b = rest[:cut], rest[cut:]
            self.blocked = {(x, y) for x in a for y in b} | {(y, x) for x in a for y in b}
            self._trace.update(b"B%d;" % bridge)
        elif kind == 4:  # isolate one node
            x = ids[0]
            self.blocked = {(x, y) for y in ids[1:]} | {(y, x) for y in ids[1:]}
        self._trace.update(b"P%d:%d;" % (kind, len(self.blocked)))
        self.stats["partitions"] += 1

    def _restart(self, n: NodeId) -> None:
        node = self.nodes[n]
        if node.up:
            return
        self._trace.update(b"R%d;" % n)
        node.restart()
        self.epoch[n] += 1
        self._schedule(self.rng.uniform(0, TICK_MS), TICK, n, self.epoch[n])

    # ---- phases -----------------------------------------------------------------------------

    def heal(self) -> None:
        self.faults_on = False
        self.blocked = set()
        self.drop = 0.0
        self.duplicate = 0.0
        for n in self.ids:
            self.paused_until[n] = 0.0
            if not self.nodes[n].up:
                self._restart(n)

    def _stable_leader(self, g: GroupId) -> PartitionReplica | None:
        leaders = self._leaders(g)
        if len(leaders) != 1 or not leaders[0].core.leader_ready():
            return None
        leader = leaders[0]
        for n in leader.core.config.members():
            r = self.nodes[n].replicas.get(g)
            if r is None or r.core.term != leader.core.term or r.core.lead != leader.id:
                return None
        return leader

    def _live_groups(self) -> list[GroupId]:
        """The groups the liveness phase waits for and the final checks read."""
        return self.groups

    def _all_stable(self) -> bool:
        return all(self._stable_leader(g) is not None for g in self._live_groups())

    def _converged(self) -> bool:
        for g in self._live_groups():
            leader = self._stable_leader(g)
            if leader is None:
                return False
            want = [idx for idx, _t in self.checkers[g].acked_all_index.values()]
            need = max(want, default=0)
            for n in leader.core.config.members():
                c = self.nodes[n].replicas[g].core  # a member of a stable leader's group
                if c.commit < max(need, leader.core.commit) or c.applied < c.commit:
                    return False
        return True

    def _warm_up(self) -> None:
        """Before the safety phase (faults on): a subclass may run until its workload set up."""

    def run(self) -> SimResult:
        self._warm_up()
        self._run_until(self.now + self.params.safety_ms)
        self.heal()
        start = self.now
        first = self.checkers[self.groups[0]]
        if not self._run_until(start + LEADER_DEADLINE_MS, self._all_stable):
            first.fail("liveness: no stable leader within 10 s of healing\n" + self.status())
        elif not self._run_until(self.now + COMMIT_DEADLINE_MS, self._converged):
            first.fail("liveness: acks=all entries not committed everywhere within 10 s\n"
                       + self.status())
        else:
            for g in self._live_groups():
                self._final_checks(g)
        return self._result_now()

    def _result_now(self) -> SimResult:
        violations = []
        for g, c in self.checkers.items():
            prefix = f"group {g}: " if len(self.groups) > 1 else ""
            violations += [prefix + v for v in c.violations]
        self.stats["leaders"] = sum(len(c.leaders) for c in self.checkers.values())
        self.stats["backfills"] = sum(r.backfills for x in self.nodes.values()
                                      for r in x.replicas.values())
        return SimResult(self.seed, self.params, violations, self._trace.hexdigest(),
                         self.events, dict(self.acked), dict(self.stats))

    def status(self) -> str:
        """Every node's view of every group, for a failing seed's report."""
        lines = []
        for g in self.groups:
            for n, x in self.nodes.items():
                if g not in x.replicas:
                    continue
                c = x.replicas[g].core
                prog = " ".join(f"{p}:{pr.match}/{pr.next}{pr.state.name[0]}"
                                f"{int(pr.probe_sent)}{len(pr.inflight)}"
                                for p, pr in c.progress.items())
                lines.append(f"  group {g} node {n} up={x.up} {c.role.name} term={c.term} "
                             f"vote={c.vote} lead={c.lead} commit={c.commit} "
                             f"persisted={c.persisted} last={c.last_index()} "
                             f"{c.config.describe()} {prog}")
        return "\n".join(lines)

    def _final_checks(self, g: GroupId) -> None:
        leader = self._stable_leader(g)
        assert leader is not None
        replicas = {n: x.replicas[g] for n, x in self.nodes.items() if g in x.replicas}
        members = leader.core.config.members()
        logs = {n: list(r.entries()) for n, r in replicas.items()}
        commits = {n: replicas[n].core.commit for n in members}
        offsets = {n: replicas[n].kafka_records(
            int(replicas[n].part.raft_log.offsets.end_offset(commits[n]))) for n in members}
        self.checkers[g].final({n: logs[n] for n in members}, commits, offsets)
        self.checkers[g].log_matching(logs)


def run_seed(seed: int) -> SimResult:
    sim = Simulator(seed)
    try:
        return sim.run()
    except Exception as exc:  # a broken invariant inside the core: report it with the seed
        sim.checkers[sim.groups[0]].fail(f"exception: {traceback.format_exc(limit=-6)}")
        result = sim._result_now()
        result.violations = result.violations or [repr(exc)]
        return result



__all__ = ["FaultParams", "NodeHeartbeat", "SimResult", "Simulator", "run_seed"]
