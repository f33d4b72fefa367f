"""A node's replica of the controller (Raft group 0), run on core 0 of a seed node.

Concern: the glue between a node and its `ControllerHost`: which voters group 0 has (the seeds,
as HELLO found them at the first start, then as `<data>/cluster/controller_voters.json`
remembers them, so a restart needs no seed reachable), starting the host on core 0's RPC server
with its log in `<data>/controller`, bootstrapping the cluster once and registering this node
(the decisions are `cluster/node_join.py`'s), putting the cluster uuid in the node identity
(durably) and in every core's HELLO, and writing this node's view of the controller to
`<data>/cluster/controller.json` (atomically, when it changes, at most every `view_every_s`).

    NodeRpc (core 0) --HELLO answers--> SeedAnswers --all seeds--> voters record (fsync)
    ControllerHost(voters).start() --> leader --> lowest seed: propose BootstrapCluster
      stm.cluster_uuid --> node_identity.json (fsync) + ClusterAssigned to each core's NodeRpc
      RegisterNode if absent or changed;   every 0.2 s: controller.json if changed

A node that is not a seed hosts no replica yet (it still greets the seeds). Must not know:
Raft, how the host stores or replicates, Kafka requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from redshank.actors._async import spawn
from redshank.actors.controller_admin import (
    ADMIN_MESSAGES,
    AllocateClusterProducerId,
    ControllerAdmin,
    ProposeConfigs,
    ProposeGrows,
    ProposeTopics,
    TopicConfigs,
)
from redshank.actors.controller_backend import ControllerBackend
from redshank.actors.controller_host import ControllerHost, ControllerHostConfig, ProposeFailed
from redshank.actors.leader_views import LeaderViews
from redshank.actors.node_identity_store import load_identity, store_identity, write_durably
from redshank.actors.node_rpc import NODE_RPC, ClusterAssigned, NodeRpcConfig, NodeRpcHandle
from redshank.actors.partition_leader import partition_name
from redshank.actors.runtime import CoreContext, CoreRouter, LoopActor
from redshank.cluster.controller import (
    Applied,
    Command,
    DeleteTopic,
    RegisterNode,
)
from redshank.cluster.kafka.handlers.delete_topics import DeleteOutcome, DeleteTarget
from redshank.cluster.kafka.handlers.metadata import (
    BrokerAddress,
    ClusterView,
    ReplicatedPartition,
    ReplicatedTopic,
)
from redshank.cluster.node_join import (
    VIEW_FILE,
    VOTERS_FILE,
    bootstrap_command,
    controller_view,
    decode_voters,
    encode_voters,
    is_voter,
    needs_register,
    register_command,
    should_bootstrap,
)
from redshank.cluster.raft.types import NO_NODE, NodeId
from redshank.protocol.error_codes import ErrorCode

__all__ = ["CONTROLLER_DIR", "CONTROLLER_SERVICE", "AllocateClusterProducerId",
           "ControllerService", "ControllerServiceConfig", "DescribeTopics", "ProposeConfigs",
           "ProposeDeletes", "ProposeGrows", "ProposeTopics", "TopicConfigs",
           "start_controller_service"]

CONTROLLER_SERVICE = "controller-service"
CONTROLLER_DIR = "controller"  # group 0's log and kvstore, under the data dir

_log = structlog.get_logger("redshank.controller_service")


@dataclass(frozen=True, slots=True)
class ControllerServiceConfig:
    data_dir: str
    voter: bool  # this node's RPC address is among the seeds
    host: ControllerHostConfig = field(default_factory=ControllerHostConfig)
    view_every_s: float = 0.2  # controller.json: checked this often, written when changed
    retry_s: float = 0.5  # after a proposal failed (no leader yet, no quorum)


@dataclass(frozen=True, slots=True)
class ProposeDeletes:
    """DeleteTopics in cluster mode: -> one `DeleteOutcome` per target the controller holds,
    None for the others (the node's own topic table deletes those)."""

    targets: tuple[DeleteTarget, ...]


@dataclass(frozen=True, slots=True)
class DescribeTopics:
    """Metadata in cluster mode: -> `ClusterView` of `names` (None: every topic)."""

    names: tuple[str, ...] | None


def start_controller_service(rpc: NodeRpcConfig, ctx: CoreContext, handle: NodeRpcHandle,
                             data_dir: str) -> None:
    """On core 0 of a node with seeds: start the service and register it on the router."""
    own = {rpc.advertised, rpc.listen}
    config = ControllerServiceConfig(data_dir, is_voter(own, rpc.identity.seeds))

    def assign(cluster: uuid.UUID) -> None:
        for core in range(ctx.ncores):
            with contextlib.suppress(Exception):  # a core down learns it at its restart
                ctx.router.ref(core, NODE_RPC).tell(ClusterAssigned(cluster))

    ctx.router.register(CONTROLLER_SERVICE,
                        ControllerService.start(config, handle, assign, ctx.router))


class ControllerService(LoopActor):
    """One per node, on core 0's loop: started by the core's setup when the node has seeds,
    stopped with the core (the host closes before the RPC server stops: `handle.closers`).
    A restarted core 0 starts it again over the same directory (recovery, snapshot)."""

    def __init__(self, config: ControllerServiceConfig, handle: NodeRpcHandle,
                 assign: Callable[[uuid.UUID], None], router: CoreRouter | None = None
                 ) -> None:
        super().__init__()
        self.router = router
        self.config = config
        self.handle = handle
        self.assign = assign
        self.host: ControllerHost | None = None
        self.voters: tuple[RegisterNode, ...] = ()
        self.me = register_command(handle.me)
        self.admin = ControllerAdmin(self.me.node_id)
        self.views = LeaderViews(self.me.node_id, router, handle.server)
        self.log = _log.bind(core=0, node=int(self.me.node_id))
        self.tasks: list[asyncio.Task[None]] = []
        self.actor_closing: asyncio.Task[None] | None = None  # awaited by the core's shutdown
        self._closing: asyncio.Task[None] | None = None
        self._last_view: dict[str, Any] | None = None
        handle.closers.append(self.close)

    def on_start(self) -> None:
        self.views.start()
        self._spawn(self._run())

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, ADMIN_MESSAGES):
            return spawn(asyncio.get_running_loop(), self.admin.serve(message))
        if isinstance(message, ProposeDeletes):
            return spawn(asyncio.get_running_loop(), self._delete_topics(message.targets))
        if isinstance(message, DescribeTopics):
            return spawn(asyncio.get_running_loop(), self._describe(message.names))
        raise TypeError(f"controller service got {type(message).__name__}")

    async def _delete_topics(self, targets: tuple[DeleteTarget, ...]
                             ) -> list[DeleteOutcome | None]:
        out: list[DeleteOutcome | None] = []
        for target in targets:
            host = self.host
            topic = None
            if host is not None and host.stm.cluster_uuid is not None:
                topics = host.stm.topics
                topic = (topics.get(target.name) if target.name is not None
                         else topics.by_id(target.topic_id) if target.topic_id is not None
                         else None)
            if host is None or topic is None or (
                    target.topic_id is not None and target.topic_id != topic.topic_id):
                out.append(None)
                continue
            try:
                applied = await host.propose(DeleteTopic(topic.name, topic.topic_id))
            except ProposeFailed as exc:
                out.append(DeleteOutcome(topic.name, topic.topic_id,
                                         ErrorCode.REQUEST_TIMED_OUT, str(exc)))
                continue
            if applied.ok:
                self.log.info("topic_deleted", topic=topic.name)
            out.append(DeleteOutcome(topic.name, topic.topic_id, applied.error_code,
                                     applied.message))
        return out

    async def _describe(self, names: tuple[str, ...] | None) -> ClusterView:
        """The controller's brokers and topics for Metadata; leaders as this node's replicas
        know them (Raft's leader id, term; none while electing), else the preferred replica (a
        client sent to a follower is told NOT_LEADER_OR_FOLLOWER and asks again); in-sync
        replicas as the leader reports them (here, or its node over RPC: `LeaderViews`),
        unknown (None: the replicas are said) when it cannot be asked or is not known here."""
        host = self.host
        if host is None or host.stm.cluster_uuid is None:
            return ClusterView((), -1, {})
        stm = host.stm
        me = self.me.node_id
        brokers = tuple(BrokerAddress(int(n.node_id), n.kafka_addr.host, n.kafka_addr.port)
                        for n in stm.members if n.active)
        wanted = [t for t in stm.topics if names is None or t.name in names]
        cores = {int(r.core) for t in wanted for a in t.assignments for r in a
                 if r.node_id == me}
        known = await self.views.local(cores)
        others = {NodeId(v[0]) for v in known.values() if v[0] > 0 and v[0] != me}
        addrs = {n: (info.rpc_addr.host, info.rpc_addr.port) for n in others
                 if (info := stm.members.get(n)) is not None}
        reported = await self.views.remote(addrs) if addrs else {}
        topics = {}
        for t in wanted:
            parts = []
            for p, a in enumerate(t.assignments):
                name = partition_name(t.name, p)
                here = known.get(name)
                isr: tuple[int, ...] | None = None
                if here is None:  # no replica here: the preferred one
                    leader, term = int(a[0].node_id), -1
                elif here[0] <= 0:  # an election under way: LEADER_NOT_AVAILABLE (ask again)
                    leader, term = -1, -1
                else:
                    leader, term = here[0], here[1]
                    there = here if leader == me else reported.get(name)
                    if there is not None and there[:2] == (leader, term) and there[2]:
                        isr = there[2]
                parts.append(ReplicatedPartition(tuple(int(r.node_id) for r in a), leader,
                                                 term, isr))
            topics[t.name] = ReplicatedTopic(t.topic_id, tuple(parts))
        return ClusterView(brokers, int(host.leader), topics)

    def on_stop(self) -> None:
        self.actor_closing = asyncio.get_running_loop().create_task(self.close())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.append(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.log.error("controller_service_failed", error=repr(task.exception()))

    async def close(self) -> None:
        """Stop joining and writing the view, close the host (flushed). Idempotent."""
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close())
        await self._closing

    async def _close(self) -> None:
        for task in self.tasks:
            task.cancel()
        if self.tasks:
            await asyncio.wait(self.tasks)
        await self.views.close()
        if self.host is not None:
            await self.host.close()

    # ---- starting the host --------------------------------------------------------------------

    async def _run(self) -> None:
        voters = await self._voters()
        if voters is None:
            return
        ids = frozenset(v.node_id for v in voters)
        if NO_NODE in ids:
            self.log.error("controller_not_started", reason="node id 0 cannot vote in group 0 "
                           "(Raft's ids start at 1)")
            return
        self.voters = voters
        self.host = host = ControllerHost(
            self.me.node_id, os.path.join(self.config.data_dir, CONTROLLER_DIR), ids,
            {v.node_id: (v.rpc_addr.host, v.rpc_addr.port) for v in voters},
            self.handle.server, config=self.config.host)
        await host.start()
        self._spawn(self._write_views())
        if self.router is not None:
            backend = ControllerBackend(self.me.node_id, host, self.router)
            self.admin.backend = backend
            self._spawn(backend.run())
        self.admin.host = host
        await self._join(host)

    async def _voters(self) -> tuple[RegisterNode, ...] | None:
        """The voters record of an earlier start, else (a seed's first start) every seed's
        HELLO answer, recorded durably before the host starts."""
        loop = asyncio.get_running_loop()
        path = os.path.join(self.config.data_dir, VOTERS_FILE)
        raw = await loop.run_in_executor(None, _read, path)
        if raw is not None:
            return decode_voters(raw)
        if not self.config.voter:
            self.log.info("controller_not_hosted", reason="not a seed")
            return None
        self.log.info("controller_waiting_for_seeds",
                      seeds=[str(s) for s in self.handle.seeds.seeds])
        answers = await self.handle.seeds.wait_all()
        voters = tuple({h.node_id: register_command(h) for h in answers.values()}.values())
        await loop.run_in_executor(None, write_durably, path, encode_voters(voters))
        return decode_voters(encode_voters(voters))

    # ---- joining the cluster ------------------------------------------------------------------

    async def _join(self, host: ControllerHost) -> None:
        loop = asyncio.get_running_loop()
        identity = await loop.run_in_executor(None, load_identity, self.config.data_dir)
        stored = None if identity is None else identity.cluster_uuid
        while host.stm.cluster_uuid is None:
            if host.leader != NO_NODE and should_bootstrap(self.me.node_id, self.voters, stored,
                                                           host.stm.cluster_uuid):
                cluster = uuid.uuid4()
                applied = await self._propose(host, bootstrap_command(cluster, self.voters))
                if applied is not None and applied.ok:
                    self.log.info("cluster_bootstrapped", cluster=str(cluster),
                                  voters=[int(v.node_id) for v in self.voters])
                elif applied is not None:  # decided at apply: another copy came first
                    self.log.info("cluster_bootstrap_refused", error=applied.error_code.name,
                                  message=applied.message)
            else:
                await asyncio.sleep(0.05)
        cluster = host.stm.cluster_uuid
        if stored is not None and stored != cluster:
            self.log.error("cluster_mismatch", identity=str(stored), controller=str(cluster))
            return
        if identity is not None and stored is None:
            await loop.run_in_executor(None, store_identity, self.config.data_dir,
                                       replace(identity, cluster_uuid=cluster))
            self.log.info("cluster_joined", cluster=str(cluster))
        self.assign(cluster)
        while needs_register(host.stm.members.get(self.me.node_id), self.me):
            applied = await self._propose(host, self.me)
            if applied is not None and not applied.ok:
                # Decided at apply (another incarnation holds the id, fewer cores): the node
                # serves on, unregistered; the reason is in the log.
                self.log.warning("register_refused", error=applied.error_code.name,
                                 message=applied.message)
                return
        self.log.info("node_registered", members=len(host.stm.members))

    async def _propose(self, host: ControllerHost, command: Command) -> Applied | None:
        try:
            return await host.propose(command)
        except ProposeFailed as exc:
            self.log.warning("controller_propose_failed", command=type(command).__name__,
                             error=str(exc))
            await asyncio.sleep(self.config.retry_s)
            return None

    # ---- the view -----------------------------------------------------------------------------

    async def _write_views(self) -> None:
        host = self.host
        assert host is not None
        while True:
            view = controller_view(self.me.node_id, self.voters, host.stm, host.leader,
                                   host.term, host.clog.next_offset)
            if view != self._last_view:
                self._last_view = view
                _write_atomically(os.path.join(self.config.data_dir, VIEW_FILE),
                                  {**view, "written_at": time.time()})
            await asyncio.sleep(self.config.view_every_s)


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _write_atomically(path: str, record: dict[str, Any]) -> None:
    # A view rebuilt while the node runs: atomic (rename), not durable (no fsync).
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=1)
    os.replace(tmp, path)

