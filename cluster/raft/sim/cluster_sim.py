"""A cluster under the simulator: the controller (group 0) and the partitions it creates,
hosted together on 3 nodes, as a broker node hosts them.

Each node hosts its replica of group 0 (a `ControllerReplica`, as in `controller_sim.py`) and,
like `actors/controller_backend.py`, after its controller state changed (a reconcile event a
moment after an apply, the backend's task), the partition replicas that state assigns to it:
`replica_plan.node_replicas` gives the plans, `replica_plan.replica_changes` what to drop (a
deleted topic: the replica closed, its directory removed) and what to open (a `PartitionReplica`
in the plan's group, bootstrapped with the plan's voters, in `/n<node>/kafka/` +
`ReplicaPlan.directory` as the partition manager names it). A crash throws every replica away;
at the restart the node reopens group 0 (log, kvstore, snapshot) and then, from the state it
applied, its partition replicas from their files.

Workload: the controller seeds' proposals (bootstrap, RegisterNode, CreateTopic, DeleteTopic,
CreatePartitions, AlterTopicConfigs, AllocateProducerIds) and, on the partitions' leaders, the
Raft seeds' Kafka clients (produce at acks 0/1/all, consumer reads below the high watermark,
leadership transfers; no reconfiguration: voters are the controller's assignment). Faults: the
Raft seeds'.

    checks: the controller checker on group 0; the Raft and Kafka checkers on every group;
            at the end (healed, the controller applied everywhere), every node hosts exactly
            the replicas the final state assigns to it, and every acks=all batch of every topic
            that still exists is on every replica of its partition

Must not know real time, files or sockets; runs the controller and partition code, not copies.
"""

from __future__ import annotations

import dataclasses
import random
import traceback
from typing import Any

from redshank.cluster.controller import Applied, Command, ControllerStm, CreatePartitions
from redshank.cluster.controller.replica_plan import ReplicaPlan, node_replicas, replica_changes
from redshank.cluster.raft.heartbeat_manager import GroupId
from redshank.cluster.raft.sim.checkers import Checker
from redshank.cluster.raft.sim.controller_sim import (
    ControllerSimulator,
    controller_params,
)
from redshank.cluster.raft.sim.disk import Durable
from redshank.cluster.raft.sim.host import PartitionReplica
from redshank.cluster.raft.sim.simulator import CLIENT, FaultParams, SimResult
from redshank.cluster.raft.types import Config, NodeId

__all__ = ["ClusterSimulator", "cluster_params", "run_cluster_seed"]

RECONCILE = 110  # event kind: a node's controller backend runs a pass
CONTROLLER = GroupId(0)
MAX_PARTITIONS = 3  # per topic (CreatePartitions past it is not proposed): bounded seeds
WARM_UP_MS = 8000.0
CONTROL_SHARE = 0.2  # of client actions: a controller proposal (the rest go to partitions)


def cluster_params(rng: random.Random) -> FaultParams:
    """The controller seeds' mix, with a shorter safety phase (each seed hosts more groups)."""
    p = controller_params(rng)
    return dataclasses.replace(p, safety_ms=rng.uniform(1500, 3000),
                               produce_every_ms=rng.choice((10.0, 20.0, 40.0)))


class GroupChecker(Checker):
    """A partition group's checker. Once a node dropped the group (its topic's deletion
    applied), what happens in it no longer counts: a node replaying the controller log from an
    older snapshot may open the deleted topic's replica again, empty, until it applies the
    delete (as the backend does), and a vote it gave before is gone with the files. Counted in
    `after_delete`, not reported."""

    def __init__(self) -> None:
        super().__init__()
        self.deleted_at: float | None = None
        self.after_delete = 0

    def fail(self, what: str) -> None:
        if self.deleted_at is not None and self.now >= self.deleted_at:
            self.after_delete += 1
            return
        super().fail(what)


def replica_dir(node: NodeId, plan: ReplicaPlan) -> str:
    """Where the node keeps the replica: as the partition manager names it (`kafka/` and
    `ReplicaPlan.directory` under the node's data directory)."""
    return f"/n{node}/kafka/{plan.directory}"


class ClusterSimulator(ControllerSimulator):
    def __init__(self, seed: int) -> None:
        # Per node: the plans its backend opened (as `ControllerBackend.hosted`).
        self.hosted: dict[NodeId, dict[GroupId, ReplicaPlan]] = {}
        self.reconcile_pending: set[NodeId] = set()
        self.topic_of: dict[GroupId, str] = {}
        self.group_checkers: dict[GroupId, GroupChecker] = {}
        self.removed: dict[tuple[NodeId, GroupId], Durable] = {}  # dropped replicas' shadows
        self.last_dir: dict[tuple[NodeId, str, int], str] = {}  # a partition's last directory
        self.produced_to: dict[int, GroupId] = {}  # produce request id -> its partition's group
        super().__init__(seed)
        self.hosted = {n: {} for n in self.ids}
        self.stats.update(dict.fromkeys(("opened", "reopened", "dropped", "partition_groups",
                                         "reconciles", "after_delete", "resurrected",
                                         "stale_dirs"), 0))

    @staticmethod
    def draw_params(rng: random.Random) -> FaultParams:
        return cluster_params(rng)

    # ---- the backend ------------------------------------------------------------------------

    def _on_applied(self, node: NodeId, index: int, command: Command, result: Applied,
                    stm: ControllerStm) -> None:
        super()._on_applied(node, index, command, result, stm)
        self._backend_wakes(node)

    def _backend_wakes(self, node: NodeId) -> None:
        """The backend's task waits on the applied future: it runs a pass a moment later (one
        pass covers every change applied before it runs)."""
        if node not in self.reconcile_pending and node in self.hosted:
            self.reconcile_pending.add(node)
            self._schedule(self.rng.uniform(0.5, 5.0), RECONCILE, node, self.epoch[node])

    def _reconcile(self, n: NodeId) -> None:
        """One pass of `ControllerBackend.reconcile` (opening and dropping never fail here)."""
        node = self.nodes[n]
        stm = self._replica(n).clog.stm
        want = node_replicas(stm.topics, stm.members, n)
        hosted = self.hosted[n]
        drops, ensures = replica_changes(hosted, want)
        self.stats["reconciles"] += 1
        for plan in drops:
            self._trace.update(b"d%d:%d;" % (n, plan.group))
            node.unhost(plan.group)
            del hosted[plan.group]
            # Its files are gone (a power loss brings them back: the removal was not synced),
            # and the shadow of what they held fsynced with them.
            self.removed[n, plan.group] = self.durables[plan.group][n]
            self.durables[plan.group][n] = Durable()
            gc = self.group_checkers[plan.group]
            gc.deleted_at = self.now if gc.deleted_at is None else gc.deleted_at
            self.stats["dropped"] += 1
        for plan in ensures:
            if plan.group not in node.replicas:
                self._open(n, plan)
            hosted[plan.group] = plan

    def _open(self, n: NodeId, plan: ReplicaPlan) -> None:
        g = plan.group
        if g not in self.checkers:
            self.groups.append(g)
            self.checkers[g] = self.group_checkers[g] = GroupChecker()
            self.checkers[g].now = self.now
            self.durables[g] = {x: Durable() for x in self.ids}
            self.topic_of[g] = f"{plan.topic}/{plan.partition}"
            self.stats["partition_groups"] += 1
        self._trace.update(b"o%d:%d;" % (n, g))
        directory = replica_dir(n, plan)
        files = self.nodes[n].files
        held = files.exists(directory) and bool(files.listdir(directory))
        self.stats["reopened" if held else "opened"] += 1
        before = self.last_dir.get((n, plan.topic, plan.partition), directory)
        if before != directory and files.exists(before) and files.listdir(before):
            # A deleted topic of the same name left its files here (a missed or undone Drop).
            self.stats["stale_dirs"] += 1
        self.last_dir[n, plan.topic, plan.partition] = directory
        self.nodes[n].host(g, Config(voters=plan.voters), self.checkers[g], self.durables[g],
                           directory=directory)

    # ---- events -----------------------------------------------------------------------------

    def _dispatch(self, kind: int, node: int, payload: Any) -> None:
        if kind != RECONCILE:
            super()._dispatch(kind, node, payload)
            return
        n = NodeId(node)
        if payload != self.epoch[n] or not self.nodes[n].up:
            return
        if self.paused_until[n] > self.now:
            self._schedule(self.paused_until[n] - self.now, RECONCILE, n, payload)
            return
        self.reconcile_pending.discard(n)
        self._reconcile(n)

    def _client(self) -> None:
        if not self.faults_on:
            return
        self._schedule(self.rng.expovariate(1.0 / self.params.produce_every_ms), CLIENT, 0, None)
        if self.rng.random() >= CONTROL_SHARE:
            leaders = [r for r in self._leaders() if r.group != CONTROLLER]
            if leaders:
                self._kafka_client(self.rng.choice(leaders))
            return
        node = self.rng.choice(self.ids)
        if not self.nodes[node].up:
            return
        cmd = self._command(node)
        if isinstance(cmd, CreatePartitions) and cmd.new_total > MAX_PARTITIONS:
            return
        if cmd is not None:
            self._propose(node, cmd)

    def _kafka_client(self, leader: PartitionReplica) -> None:
        if leader.group == CONTROLLER:
            return
        before = self.next_req
        super()._kafka_client(leader)
        if self.next_req != before:  # a produce: its records belong to this partition only
            self.produced_to[self.next_req] = leader.group

    # ---- faults -----------------------------------------------------------------------------

    def _fault(self) -> None:
        before = {n: (x.up, x.files) for n, x in self.nodes.items()}
        super()._fault()
        for n, x in self.nodes.items():
            if before[n][0] and not x.up:
                power_loss = x.files is not before[n][1]
                for (m, g) in [k for k in self.removed if k[0] == n]:
                    old = self.removed.pop((m, g))
                    if power_loss and g not in x.replicas:
                        # The removed directory is back as it was last synced.
                        self.durables[g][n] = old
                        self.stats["resurrected"] += 1
                # The process died: every replica with it (group 0 is reopened by the restart,
                # the others by the backend after it).
                x.replicas = {CONTROLLER: x.replicas[CONTROLLER]}
                self.hosted[n] = {}
                self.reconcile_pending.discard(n)

    def _restart(self, n: NodeId) -> None:
        was_up = self.nodes[n].up
        super()._restart(n)
        if not was_up:
            # Applies at the boot woke it under the old epoch: a pass in the new one.
            self.reconcile_pending.discard(n)
            self._backend_wakes(n)

    # ---- phases -----------------------------------------------------------------------------

    def _warm_up(self) -> None:
        """The safety phase starts once a node applied the bootstrap, every node's registration
        and a topic (faults are on meanwhile), or after `WARM_UP_MS`."""
        def ready() -> bool:
            return any(len(stm.members.active_cores()) >= 3 and len(stm.topics) > 0
                       for stm in (self._replica(n).clog.stm for n in self.ids))

        self._run_until(WARM_UP_MS, ready)

    # ---- the end ----------------------------------------------------------------------------

    def _wants(self) -> dict[NodeId, dict[GroupId, ReplicaPlan]]:
        out = {}
        for n in self.ids:
            stm = self._replica(n).clog.stm
            out[n] = node_replicas(stm.topics, stm.members, n)
        return out

    def _live_groups(self) -> list[GroupId]:
        """Group 0 and the partition groups of the final controller state (the groups of
        deleted topics are not waited for)."""
        live = {g for want in self._wants().values() for g in want}
        return [CONTROLLER, *[g for g in self.groups if g in live]]

    def _converged(self) -> bool:
        """Every group converged, every node applied the whole controller log (the
        controller seeds' condition) and its backend ran a pass since."""
        return not self.reconcile_pending and super()._converged()

    def _final_checks(self, g: GroupId) -> None:
        super()._final_checks(g)
        if g == CONTROLLER:
            self._final_hosting()
        else:
            self._final_records(g)

    def _final_records(self, g: GroupId) -> None:
        """Every record a replica of a partition holds was produced to that partition (not to
        a deleted topic whose files a replica of a new one opened)."""
        for n, x in self.nodes.items():
            r = x.replicas.get(g)
            if r is None:
                continue
            end = int(r.part.raft_log.offsets.end_offset(r.core.commit))
            for off, value in sorted(r.kafka_records(end).items()):
                rid = int(value[1:].split(b".")[0])
                if self.produced_to.get(rid) != g:
                    other = self.produced_to.get(rid, CONTROLLER)
                    self.checkers[g].fail(f"kafka: node {n} holds at offset {off} record "
                                          f"{value!r} produced to {self.topic_of.get(other)} "
                                          f"(group {other}), not to this partition")
                    break

    def _final_hosting(self) -> None:
        """Every node hosts exactly the replicas the final controller state assigns to it (so
        none of a deleted topic), each in the directory the plan names."""
        first = self.checkers[CONTROLLER]
        for n, want in self._wants().items():
            node = self.nodes[n]
            hosting = {g for g in node.replicas if g != CONTROLLER}
            if hosting != set(want):
                extra = sorted(self.topic_of.get(g, str(g)) for g in hosting - set(want))
                missing = sorted(f"{p.topic}/{p.partition}" for g, p in want.items()
                                 if g not in hosting)
                first.fail(f"cluster: node {n} hosts replicas the controller does not assign "
                           f"to it {extra}, or lacks assigned ones {missing}")
            for g, plan in want.items():
                r = node.replicas.get(g)
                if r is not None and r.dir != replica_dir(n, plan):
                    first.fail(f"cluster: node {n} hosts {plan.topic}/{plan.partition} in "
                               f"{r.dir}")

    def _result_now(self) -> SimResult:
        self.stats["after_delete"] = sum(c.after_delete for c in self.group_checkers.values())
        result = super()._result_now()
        # Name partition groups by topic in the report (their ids are 63-bit hashes).
        result.violations = [self._name_groups(v) for v in result.violations]
        return result

    def _name_groups(self, text: str) -> str:
        if not text.startswith("group "):
            return text
        head, _, rest = text.partition(": ")
        g = GroupId(int(head.split()[1]))
        return f"{head} ({self.topic_of.get(g, 'controller')}): {rest}"


def run_cluster_seed(seed: int) -> SimResult:
    """One cluster seed: the same seed gives the same trace."""
    sim = ClusterSimulator(seed)
    try:
        return sim.run()
    except Exception as exc:  # a broken invariant inside the code under test: report it
        sim.checkers[CONTROLLER].fail(f"exception: {traceback.format_exc(limit=-6)}")
        result = sim._result_now()
        result.violations = result.violations or [repr(exc)]
        return result
