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
      every 0.2 s: route every member's controller; leader: members not in group 0 -> learners

A node that is not a seed records the same voters, registers through a voter (its host knows
no leader yet: the frontend asks the voters), and the leader, which watches the members table,
adds it to group 0 as a learner: it replicates and applies the controller's log like a voter,
and never votes. Must not know: Raft, how the host stores or replicates, Kafka requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import struct
import time
import uuid
from collections.abc import Callable
from dataclasses import field, replace
from typing import Any

import structlog

from redshank.actors._async import spawn
from redshank.actors.controller_admin import (
    ADMIN_MESSAGES,
    NOT_HOSTED,
    AllocateClusterProducerId,
    ControllerAdmin,
    ProposeConfigs,
    ProposeGrows,
    ProposeTopics,
    TopicConfigs,
)
from redshank.actors.controller_backend import ControllerBackend
from redshank.actors.controller_host import ControllerHost, ControllerHostConfig, ProposeFailed
from redshank.actors.node_identity_store import load_identity, store_identity, write_durably
from redshank.actors.node_rpc import NODE_RPC, ClusterAssigned, NodeRpcConfig, NodeRpcHandle
from redshank.actors.partition_leader import partition_name
from redshank.actors.peer_views import (
    ALTER_CONFIGS_METHOD,
    DESCRIBE_METHOD,
    PRODUCER_ID_METHOD,
    TOPIC_CONFIGS_METHOD,
    PeerViews,
)
from redshank.actors.runtime import CoreContext, CoreRouter, LoopActor
from redshank.cluster.controller import (
    Applied,
    Command,
    DeleteTopic,
    RegisterNode,
)
from redshank.cluster.kafka import TopicInfo
from redshank.cluster.kafka.handlers._alter import AlterOutcome
from redshank.cluster.kafka.handlers.delete_topics import DeleteOutcome, DeleteTarget
from redshank.cluster.kafka.handlers.metadata import (
    BrokerAddress,
    ClusterView,
    ReplicatedPartition,
    ReplicatedTopic,
    cluster_id,
    decode_view,
    encode_view,
)
from redshank.cluster.kafka.topic_configs import ConfigChange, ConfigOp
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
from redshank.protocol.fast_dataclass import dataclass

__all__ = ["CONTROLLER_DIR", "CONTROLLER_SERVICE", "AllocateClusterProducerId",
           "ControllerService", "ControllerServiceConfig", "DescribeTopics", "ProposeConfigs",
           "ProposeDeletes", "ProposeGrows", "ProposeTopics", "TopicConfigs",
           "metadata_leader", "start_controller_service"]

CONTROLLER_SERVICE = "controller-service"
CONTROLLER_DIR = "controller"  # group 0's log and kvstore, under the data dir

_log = structlog.get_logger("redshank.controller_service")
_PID = struct.Struct(">q")
_PID_COUNT = struct.Struct(">i")


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
        self.views = PeerViews(self.me.node_id, router, handle.server)
        self.log = _log.bind(core=0, node=int(self.me.node_id))
        self.tasks: list[asyncio.Task[None]] = []
        self.actor_closing: asyncio.Task[None] | None = None  # awaited by the core's shutdown
        self._closing: asyncio.Task[None] | None = None
        self._last_view: dict[str, Any] | None = None
        handle.closers.append(self.close)

    def on_start(self) -> None:
        self.views.start()
        server = self.handle.server
        server.register(DESCRIBE_METHOD, self._serve_describe)
        server.register(PRODUCER_ID_METHOD, self._serve_producer_id)
        server.register(TOPIC_CONFIGS_METHOD, self._serve_configs)
        server.register(ALTER_CONFIGS_METHOD, self._serve_alter)
        self._spawn(self._run())

    def on_receive(self, message: Any) -> Any:
        if self.host is None and isinstance(
                message, TopicConfigs | AllocateClusterProducerId | ProposeConfigs):
            # No controller replica here (not a seed): a seed's controller answers.
            return spawn(asyncio.get_running_loop(), self._forward(message))
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
        await self.admin.caught_up()
        for target in targets:
            host = self.host
            topic = None
            if host is not None and host.stm.cluster_uuid is not None:
                topics = host.stm.topics
                topic = (topics.get(target.name) if target.name is not None
                         else topics.by_id(target.topic_id) if target.topic_id is not None
                         else None)
            if host is None:  # no controller replica here: clients ask the controller
                out.append(DeleteOutcome(target.name, target.topic_id or uuid.UUID(int=0),
                                         ErrorCode.NOT_CONTROLLER, NOT_HOSTED))
                continue
            if topic is None or (
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

    # ---- a node without a controller replica: asks the seeds' ------------------------------

    @property
    def _proposal_s(self) -> float:
        """How long a seed may take to answer a call that proposes: its proposal's deadline
        and its backend's settling (`ControllerAdmin.settle_s`)."""
        return self.config.host.propose_timeout_s + self.admin.settle_s

    def _seeds(self) -> list[tuple[str, int]]:
        return [(a.host, a.port) for a in self.handle.seeds.seeds if a != self.me.rpc_addr]

    async def _forward(self, message: TopicConfigs | AllocateClusterProducerId | ProposeConfigs
                       ) -> object:
        if isinstance(message, AllocateClusterProducerId):
            # Payload: the count wanted (empty: one); answer: the first id, then how many
            # (absent: one, as a node before blocks answers).
            raw = await self.views.ask_any(self._seeds(), PRODUCER_ID_METHOD,
                                           _PID_COUNT.pack(message.count),
                                           timeout=self._proposal_s)
            if raw is None:
                return None
            first = _PID.unpack_from(raw)[0]
            n = _PID_COUNT.unpack_from(raw, _PID.size)[0] if len(raw) > _PID.size else 1
            return range(first, first + n)
        if isinstance(message, ProposeConfigs):
            raw = await self.views.ask_any(self._seeds(), ALTER_CONFIGS_METHOD, json.dumps({
                "validate": message.validate_only,
                "changes": [[c.topic, [[int(op), k, v] for op, k, v in c.ops], c.replace]
                            for c in message.changes]}).encode(),
                timeout=self._proposal_s, idempotent=False)
            if raw is None:
                return {c.topic: AlterOutcome(ErrorCode.NOT_CONTROLLER, NOT_HOSTED)
                        for c in message.changes}
            return {str(t): AlterOutcome(int(v[0]), v[1]) for t, v in json.loads(raw).items()}
        raw = await self.views.ask_any(self._seeds(), TOPIC_CONFIGS_METHOD,
                                       json.dumps(list(message.names)).encode())
        if raw is None:
            return {}
        return {name: TopicInfo(name, uuid.UUID(v[0]), (0,) * int(v[1]),
                                tuple((str(k), str(x)) for k, x in v[2]), replicated=True)
                for name, v in json.loads(raw).items()}

    async def _serve_describe(self, payload: memoryview) -> bytes:
        """DESCRIBE_METHOD: this node's controller view (b"": none here either)."""
        if self.host is None or self.host.stm.cluster_uuid is None:
            return b""
        names = json.loads(bytes(payload))
        return encode_view(await self._describe(
            None if names is None else tuple(str(n) for n in names), forward=False))

    async def _serve_producer_id(self, payload: memoryview) -> bytes:
        """PRODUCER_ID_METHOD: ids from this node's block, as many as asked (payload: the count,
        empty: one) or fewer (b"": none to give)."""
        if self.host is None:
            return b""
        count = _PID_COUNT.unpack_from(payload)[0] if len(payload) >= _PID_COUNT.size else 1
        pids = await self.admin.producer_ids(count)
        if not pids:
            return b""
        return _PID.pack(pids.start) + _PID_COUNT.pack(len(pids))

    async def _serve_alter(self, payload: memoryview) -> bytes:
        """ALTER_CONFIGS_METHOD: (Incremental)AlterConfigs of controller topics, proposed here."""
        if self.host is None or self.host.stm.cluster_uuid is None:
            return b""
        d = json.loads(bytes(payload))
        changes = tuple(ConfigChange(str(t), tuple((ConfigOp(int(op)), str(k), v)
                                                   for op, k, v in ops), bool(replace))
                        for t, ops, replace in d["changes"])
        await self.admin.caught_up()
        out = await self.admin.alter(ProposeConfigs(changes, bool(d["validate"])))
        return json.dumps({t: [o.error_code, o.error_message] for t, o in out.items()}).encode()

    async def _serve_configs(self, payload: memoryview) -> bytes:
        """TOPIC_CONFIGS_METHOD: the named controller topics' ids, partitions and configs."""
        if self.host is None or self.host.stm.cluster_uuid is None:
            return b""
        names = tuple(str(n) for n in json.loads(bytes(payload)))
        await self.admin.caught_up()
        found = self.admin.configs(names)
        return json.dumps({n: [str(i.topic_id), i.partitions, [list(c) for c in i.configs]]
                           for n, i in found.items()}).encode()

    # ---- Metadata -----------------------------------------------------------------------------

    async def _describe(self, names: tuple[str, ...] | None, forward: bool = True
                        ) -> ClusterView:
        """The controller's brokers and topics for Metadata; each partition's leader as
        `metadata_leader` picks it from this node's replica and what the other replicas' nodes
        report (`PeerViews`); in-sync replicas as the leader reports them, unknown (None: the
        replicas are said) when it cannot be asked or is not known here."""
        host = self.host
        if host is None or host.stm.cluster_uuid is None:
            if host is None and forward:  # not a seed: the seeds' view
                raw = await self.views.ask_any(self._seeds(), DESCRIBE_METHOD,
                                               json.dumps(names).encode())
                with contextlib.suppress(ValueError, KeyError, TypeError, IndexError):
                    return ClusterView((), -1, {}) if raw is None else decode_view(raw)
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
        # A partition with no replica here, or whose replica here knows no leader (an election,
        # or this node cut off from its group): its replicas' nodes say which of them leads.
        others |= {r.node_id for t in wanted for p, a in enumerate(t.assignments)
                   if (v := known.get(partition_name(t.name, p))) is None or v[0] <= 0
                   for r in a if r.node_id != me}
        addrs = {n: (info.rpc_addr.host, info.rpc_addr.port) for n in others
                 if (info := stm.members.get(n)) is not None}
        reported = await self.views.remote(addrs) if addrs else {}
        dead = self.views.offline(int(n.node_id) for n in stm.members)
        topics = {}
        for t in wanted:
            parts = []
            for p, a in enumerate(t.assignments):
                name = partition_name(t.name, p)
                leader, term, isr = metadata_leader(
                    tuple(int(r.node_id) for r in a), int(me), known.get(name),
                    reported.get(name))
                parts.append(ReplicatedPartition(tuple(int(r.node_id) for r in a), leader,
                                                 term, isr).without(dead))
            topics[t.name] = ReplicatedTopic(t.topic_id, tuple(parts))
        uid = stm.cluster_uuid
        return ClusterView(brokers, int(host.leader), topics,
                           None if uid is None else cluster_id(uid), int(me))

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
        for method in (DESCRIBE_METHOD, PRODUCER_ID_METHOD, TOPIC_CONFIGS_METHOD,
                       ALTER_CONFIGS_METHOD):
            self.handle.server.unregister(method)
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
        self.views.watch(lambda: {n.node_id: (n.rpc_addr.host, n.rpc_addr.port)
                                  for n in host.stm.members if n.active})
        self._spawn(self._write_views())
        self._spawn(self._admit_members(host))
        if self.router is not None:
            backend = ControllerBackend(self.me.node_id, host, self.router,
                                        data_dir=self.config.data_dir)
            self.admin.backend = backend
            self._spawn(backend.run())
        self.admin.host = host
        await self._join(host)

    async def _voters(self) -> tuple[RegisterNode, ...] | None:
        """The voters record of an earlier start, else (a first start) every seed's HELLO
        answer, recorded durably before the host starts. A node that is not a seed records the
        same voters: it hosts group 0 as a learner once it registered (`_join`)."""
        loop = asyncio.get_running_loop()
        path = os.path.join(self.config.data_dir, VOTERS_FILE)
        raw = await loop.run_in_executor(None, _read, path)
        if raw is not None:
            return decode_voters(raw)
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
        if self.me.node_id not in {v.node_id for v in self.voters}:
            # Not a voter: the leader adds this node to group 0 (a learner) once it is a
            # member, so register first (proposed through a voter); the log then arrives.
            while needs_register(host.stm.members.get(self.me.node_id), self.me):
                applied = await self._propose(host, self.me)
                if applied is not None and not applied.ok:
                    self.log.warning("register_refused", error=applied.error_code.name,
                                     message=applied.message)
                    return
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

    # ---- members of group 0 -------------------------------------------------------------------

    async def _admit_members(self, host: ControllerHost) -> None:
        """Every `view_every_s`: reach each registered node's controller at its current
        address, and (on the leader) make every active member that is not in group 0 a learner,
        so a node that joined later replicates and applies the controller's log."""
        while True:
            stm = host.stm
            missing = set()
            for n in stm.members:
                host.route(n.node_id, (n.rpc_addr.host, n.rpc_addr.port))
                if n.active and n.node_id not in host.members:
                    missing.add(n.node_id)
            if missing and stm.cluster_uuid is not None and host.add_learners(
                    frozenset(missing)):
                self.log.info("learners_proposed", nodes=sorted(int(n) for n in missing))
            await asyncio.sleep(self.config.view_every_s)

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


def metadata_leader(replicas: tuple[int, ...], me: int,
                    here: tuple[int, int, tuple[int, ...]] | None,
                    there: tuple[int, int, tuple[int, ...]] | None
                    ) -> tuple[int, int, tuple[int, ...] | None]:
    """(leader, leader epoch, in-sync replicas or None) Metadata gives for a partition of
    `replicas`, from this node's replica's view `here` (None: no replica here) and `there`, what
    another replica's node reports it leads (None: nobody answered or claims it). A leader this
    replica knows wins; else the one reported; else a replica other than this node, epoch
    unknown, rather than LEADER_NOT_AVAILABLE: a replica that knows no leader may be cut off
    from its group, and librdkafka asks Metadata again of the connection it used last (this
    node), so "no leader" would keep its producer here for as long as the cut lasts, while a
    follower named as leader answers NOT_LEADER_OR_FOLLOWER and the client asks that node
    (Redpanda's metadata handler does the same). Only a partition whose one replica is here and
    knows no leader is LEADER_NOT_AVAILABLE (-1)."""
    if here is not None and here[0] > 0:
        reports = here if here[0] == me else there
        isr = reports[2] if reports is not None and reports[:2] == here[:2] and reports[2] \
            else None
        return here[0], here[1], isr
    if there is not None and there[0] > 0:
        return there[0], there[1], there[2] or None
    if here is None and replicas:  # no replica here: the preferred one
        return replicas[0], -1, None
    return next((r for r in replicas if r != me), -1), -1, None


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

