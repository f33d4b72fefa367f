"""The controller backend: opens on this node the partition replicas the controller assigned to
it (Redpanda's `controller_backend`: it reconciles desired with actual).

Concern: on core 0 of a node that hosts a controller replica, after every change this node's
`ControllerStm` applies, the replicas this node must host (`replica_plan.node_replicas`) are
compared with the last plan: each new or changed one is sent to the partition manager of its
assigned core (`EnsureReplica`, which also refreshes the group's routes there; a hosted one
whose topic's configs changed is first given them, `Reconfigure`, as the node-local topic
controller does), each gone one is dropped there (`Drop`, its directory removed). A replica
that could not be opened is retried at the next change or after `retry_s`; a core that
restarted (a new incarnation) gets its replicas and the topics again within `check_s`. Cores
learn the controller state only through these messages (one per replica per change): no core
but 0 reads the stm. `reconciled(count)` tells the admin paths when a pass over the first
`count` commands is done.

    ControllerHost applies --> applied_future --> node_replicas(stm) --diff--> EnsureReplica/Drop
                                                                          to (core, partitions)

Startup order (a restart): the first pass waits until the host replayed every command its log
held at start (`ControllerHost.replay_end`), then until it applied as many commands as the
leader had when asked (`ControllerHost.leader_applied`), bounded by `replay_timeout_s`: the
restored snapshot, a replay midway, or the log as it was when this node went down may still list
a topic deleted since, whose replicas must not open again (and recreate their directories) only
to be dropped a moment later. Once replayed,
replica directories under `<data>/kafka/` that no replica of the current state (nor one still
hosted) names are removed (`remove_stale_replicas`): a topic deleted while this node was down,
or whose delete it applied before its first pass, has no `Drop` to send (its replicas were never
opened in this run). Checked again whenever the set of replicas to host changes.

Must not know: Raft, how replicas replicate or store, Kafka requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import uuid

import structlog

from redshank.actors._async import resolve
from redshank.actors.controller_host import ControllerHost
from redshank.actors.partition_manager import (
    MANAGER,
    ControllerTopics,
    Drop,
    EnsureReplica,
    Reconfigure,
)
from redshank.actors.runtime import CoreRouter
from redshank.actors.topic_cache import TOPIC_CACHE, TopicCreated, TopicDeleted
from redshank.cluster.controller.replica_plan import (
    ReplicaPlan,
    is_replica_directory,
    node_replicas,
    replica_changes,
)
from redshank.cluster.kafka import TopicInfo
from redshank.cluster.raft.heartbeat_manager import GroupId
from redshank.cluster.raft.types import NodeId

__all__ = ["DELETING_SUFFIX", "ControllerBackend", "remove_stale_replicas"]

# A replica directory being removed: renamed to this first, so a crash midway leaves a name no
# replica ever opens (removed at the next sweep), never half a log under a replica's name.
DELETING_SUFFIX = ".deleting"

_log = structlog.get_logger("redshank.controller_backend")


class ControllerBackend:
    """One per node, on core 0's loop: created by the `ControllerService` once its host started,
    run as one of its tasks (`run`), ended by cancelling that task when the service closes."""

    def __init__(self, node: NodeId, host: ControllerHost, router: CoreRouter,
                 retry_s: float = 0.5, check_s: float = 1.0, data_dir: str | None = None,
                 replay_timeout_s: float = 10.0) -> None:
        """`data_dir`: the node's (its replicas under `kafka/`); None: stale directories are
        not looked for."""
        self.node = node
        self.kafka_dir = None if data_dir is None else os.path.join(data_dir, "kafka")
        self.replay_timeout_s = replay_timeout_s
        self._swept: frozenset[GroupId] | None = None  # the replicas wanted at the last sweep
        self.check_s = check_s  # how soon a restarted core gets its replicas back
        self.host = host
        self.router = router
        self.retry_s = retry_s
        self.generations: dict[int, int] = {}  # incarnation of each other core, last pass
        self.hosted: dict[GroupId, ReplicaPlan] = {}  # opened (or asked to open) and answered
        # Asked to open, not answered (the ask failed or timed out: the core may have opened it
        # all the same): dropped like a hosted one when the controller no longer wants it.
        self.tried: dict[GroupId, ReplicaPlan] = {}
        self.announced: dict[str, TopicInfo] = {}  # told to every core's topic cache
        self.controller_topics: frozenset[uuid.UUID] = frozenset()  # told to every manager
        self.log = _log.bind(core=0, node=int(node))
        self.passed = 0  # the commands the last finished pass had applied
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def reconciled(self, count: int) -> asyncio.Future[None]:
        """Set once a pass that saw the first `count` commands applied is done (whether or not
        every replica could be opened: a failed one is retried). Cancel it to give up."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.passed >= count:
            fut.set_result(None)
        else:
            self._waiters = [(c, f) for c, f in self._waiters if not f.done()]
            self._waiters.append((count, fut))
        return fut

    def _passed(self, count: int) -> None:
        self.passed = count
        still = []
        for c, fut in self._waiters:
            if fut.done():
                continue
            if c <= count:
                fut.set_result(None)
            else:
                still.append((c, fut))
        self._waiters = still

    async def run(self) -> None:
        await self._replayed()
        while True:
            applied = self.host.clog.next_offset
            self._forget_restarted_cores()
            complete = await self.reconcile()
            self._passed(applied)
            change = self.host.applied_future(applied + 1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(change),
                                       self.check_s if complete else self.retry_s)
            change.cancel()

    async def _replayed(self) -> None:
        """At a restart (a log to replay), until the host replayed its log as it was at start,
        then applied as many commands as the leader had (module docstring); past
        `replay_timeout_s` (no quorum to learn what committed) the passes start from the state
        so far, as they always did, and the sweep waits for the replay."""
        host = self.host
        if host.replay_end == 0:
            return  # a first start: nothing was hosted here before
        try:
            await asyncio.wait_for(self._catch_up(), self.replay_timeout_s)
        except TimeoutError:
            self.log.warning("controller_replay_slow", applied=host.clog.next_offset,
                             replay_end=host.replay_end, waited_s=self.replay_timeout_s)

    async def _catch_up(self) -> None:
        host = self.host
        await _until(host.applied_future(host.replay_end))
        # What this node missed while it was down (a topic deleted then) is in the leader's
        # state: reach it before the first pass, rather than open its replicas and drop them.
        # No leader answering at once (the whole cluster restarting, an election): nothing
        # newer to wait for now; what arrives later is reconciled like any change.
        target = await host.leader_applied(timeout=self.retry_s)
        if target is not None:
            await _until(host.applied_future(target))

    async def _sweep(self, want: dict[GroupId, ReplicaPlan]) -> None:
        """Remove the replica directories no replica of `want`, `hosted` or `tried` names, once
        the host replayed its log (before, an older state could miss a topic created since), and
        again whenever `want`'s replicas change."""
        groups = frozenset(want)
        if self.kafka_dir is None or not self.host.replayed or groups == self._swept:
            return
        self._swept = groups
        keep = frozenset(p.directory for p in (*want.values(), *self.hosted.values(),
                                               *self.tried.values()))
        try:
            gone = await asyncio.get_running_loop().run_in_executor(
                None, remove_stale_replicas, self.kafka_dir, keep)
        except OSError as exc:  # the disk failing: tried again at the next change
            self._swept = None
            self.log.warning("stale_replicas_not_removed", error=str(exc))
            return
        for name in gone:
            self.log.info("stale_replica_removed", directory=name)

    def _forget_restarted_cores(self) -> None:
        """A core restarted since the last pass (a new incarnation) lost its replicas, its
        topic cache and its manager's list of controller topics: its replicas are opened again
        and every core is told the topics again (both idempotent)."""
        me = self.router.core
        gens = {c: self.router.transport.generation(c) for c in range(self.router.ncores)
                if c != me}
        restarted = {c for c, g in gens.items() if self.generations.get(c, g) != g}
        self.generations = gens
        if restarted:
            self.log.info("cores_restarted", cores=sorted(restarted))
            self.hosted = {g: p for g, p in self.hosted.items() if p.core not in restarted}
            self.tried = {g: p for g, p in self.tried.items() if p.core not in restarted}
            self.announced = {}
            self.controller_topics = frozenset()

    async def reconcile(self) -> bool:
        """One pass; True when every desired replica is open and every gone one dropped."""
        stm = self.host.stm
        want = node_replicas(stm.topics, stm.members, self.node)
        complete = True
        drops, ensures = replica_changes(self.hosted, want)
        drops += [p for g, p in self.tried.items() if g not in want and g not in self.hosted]
        for plan in drops:
            if await self._ask(plan, Drop(plan.topic, plan.partition, plan.topic_id,
                                           plan.directory)):
                self.hosted.pop(plan.group, None)
                self.tried.pop(plan.group, None)
                self.log.info("replica_dropped", ntp=f"{plan.topic}/{plan.partition}")
            else:
                complete = False
        for plan in ensures:
            known = self.hosted.get(plan.group)
            if known is not None and known.configs != plan.configs and not await self._ask(
                    plan, Reconfigure(plan.topic, plan.partition, plan.configs)):
                complete = False
                continue
            topic = stm.topics.get(plan.topic)
            partitions = 0 if topic is None else topic.partitions
            self.tried[plan.group] = plan
            if await self._ask(plan, EnsureReplica(plan, partitions)):
                self.hosted[plan.group] = plan
                del self.tried[plan.group]
            else:
                complete = False
        self._announce(want)
        await self._sweep(want)
        return complete

    def _announce(self, want: dict[GroupId, ReplicaPlan]) -> None:
        """Every core's topic cache learns the topics this node hosts a replica of (the
        produce and fetch paths find a partition's core there); a partition not hosted here
        is given core 0, whose manager refuses to open it (NOT_LEADER_OR_FOLLOWER): every
        core's manager is told the controller's topic ids (`ControllerTopics`)."""
        cores: dict[str, dict[int, int]] = {}
        for plan in want.values():
            cores.setdefault(plan.topic, {})[plan.partition] = int(plan.core)
        infos = {}
        for name, hosted in cores.items():
            topic = self.host.stm.topics.get(name)
            if topic is not None:
                infos[name] = TopicInfo(name, topic.topic_id,
                                        tuple(hosted.get(p, 0) for p in range(topic.partitions)),
                                        topic.configs, replicated=True)
        messages: list[object] = [TopicDeleted(info.name, info.topic_id)
                                  for name, info in self.announced.items() if name not in infos]
        messages += [TopicCreated(info) for name, info in infos.items()
                     if self.announced.get(name) != info]
        self.announced = infos
        ids = frozenset(t.topic_id for t in self.host.stm.topics)
        if ids != self.controller_topics:
            self.controller_topics = ids
            for core in range(self.router.ncores):
                with contextlib.suppress(Exception):  # a core down: told at the next change
                    self.router.ref(core, MANAGER).tell(ControllerTopics(ids))
        for message in messages:
            for core in range(self.router.ncores):
                with contextlib.suppress(Exception):  # a core down: seeded at its restart
                    self.router.ref(core, TOPIC_CACHE).tell(message)

    async def _ask(self, plan: ReplicaPlan, message: object) -> bool:
        try:
            await resolve(self.router.ref(plan.core, MANAGER).ask(message, block=False))
        except Exception as exc:  # the core down, the disk failing: retried, loudly
            self.log.warning("replica_not_reconciled", ntp=f"{plan.topic}/{plan.partition}",
                             core=int(plan.core), error=repr(exc))
            return False
        return True


async def _until(fut: asyncio.Future[None]) -> None:
    """Wait for `fut`; cancelled with the waiter (the host keeps no abandoned waits)."""
    try:
        await fut
    finally:
        fut.cancel()


def remove_stale_replicas(kafka_dir: str, keep: frozenset[str]) -> list[str]:
    """Remove every replica directory under `kafka_dir` not in `keep` (names), and what an
    interrupted removal left: each is renamed (`DELETING_SUFFIX`, the rename made durable)
    before its files go. Single-node partition directories are not touched. The names
    removed."""
    try:
        names = os.listdir(kafka_dir)
    except FileNotFoundError:
        return []
    for name in names:  # first: a rename below may need the name
        if name.endswith(DELETING_SUFFIX):
            shutil.rmtree(os.path.join(kafka_dir, name), ignore_errors=True)
    gone = []
    for name in sorted(names):
        path = os.path.join(kafka_dir, name)
        if is_replica_directory(name) and name not in keep and os.path.isdir(path):
            os.rename(path, path + DELETING_SUFFIX)
            gone.append(name)
    if gone:
        fd = os.open(kafka_dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    for name in gone:
        shutil.rmtree(os.path.join(kafka_dir, name + DELETING_SUFFIX), ignore_errors=True)
    return gone
