"""Kafka admin requests of a node in cluster mode, proposed to the controller (Raft group 0).

Concern: on core 0 of a node hosting a controller replica, the request paths' side of the
controller: CreateTopics (and auto-creation), CreatePartitions, AlterConfigs and
IncrementalAlterConfigs of the controller's topics, and reorders of a partition's replicas
(its preferred leader: `SetPreferredReplica`) become commands (decided by
`cluster/controller/kafka_admin.py` against this node's `ControllerStm`, proposed through the
host, answered with what applying them did); DescribeConfigs reads the stm; InitProducerId hands
out ids from blocks the controller cut for this node (`AllocateProducerIds`: unique across the
cluster because blocks are cut in log order). A change is answered once this node's controller
backend has acted on it (replicas opened, configs applied), or after `settle_s`: other nodes
follow within their own backend's pass.

    frontend/topics.py --ProposeTopics/ProposeGrows/ProposeConfigs--> ControllerAdmin
        kafka_admin.*_command(stm) --> host.propose(cmd) --> Applied --> backend.reconciled

Must not know: Raft, the wire shapes of the requests, how replicas are opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import Callable
from typing import TypeVar

import structlog

from redshank.actors.controller_backend import ControllerBackend
from redshank.actors.controller_host import ControllerHost, ProposeFailed
from redshank.cluster.controller import (
    AllocateProducerIds,
    Applied,
    Command,
    CreateTopic,
    SetPreferredReplica,
)
from redshank.cluster.controller.kafka_admin import (
    alter_command,
    create_command,
    grow_command,
    topic_info,
)
from redshank.cluster.kafka import TopicInfo
from redshank.cluster.kafka.handlers._alter import AlterOutcome
from redshank.cluster.kafka.handlers.create_partitions import Grow, GrowOutcome
from redshank.cluster.kafka.handlers.create_topics import CreateOutcome, TopicSpec
from redshank.cluster.kafka.handlers.reassignments import Move
from redshank.cluster.kafka.topic_configs import ConfigChange
from redshank.cluster.raft.types import NodeId
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.fast_dataclass import dataclass

__all__ = ["ADMIN_MESSAGES", "NOT_HOSTED", "AllocateClusterProducerId", "ControllerAdmin",
           "ProposeConfigs", "ProposeGrows", "ProposePreferred", "ProposeTopics",
           "ReplicaOrders", "TopicConfigs"]

_log = structlog.get_logger("redshank.controller_admin")
T = TypeVar("T")
NOT_HOSTED = "no controller replica on this node: send it to the controller"
# `ControllerAdmin.caught_up`: at most this for a ready leader's answer (an election), then for
# applying that far; asked again this often while none answers.
BARRIER_S = 3.0
BARRIER_RETRY_S = 0.1


@dataclass(frozen=True, slots=True)
class ProposeTopics:
    """CreateTopics in cluster mode: each spec placed over the active members (or over the
    brokers its `assignments` name) and proposed as a `CreateTopic`; -> {name: CreateOutcome}
    from what applying it did (`Applied`)."""

    specs: tuple[TopicSpec, ...]
    # Per spec; -1: the cluster default (3 with three or more active nodes, else 1).
    replication_factors: tuple[int, ...]
    validate_only: bool = False


@dataclass(frozen=True, slots=True)
class ProposeGrows:
    """CreatePartitions in cluster mode: -> one `GrowOutcome` per grow of a controller topic,
    None for the others (the node's own topic controller grows those)."""

    grows: tuple[Grow, ...]
    validate_only: bool = False


@dataclass(frozen=True, slots=True)
class ProposeConfigs:
    """(Incremental)AlterConfigs in cluster mode: -> {topic: AlterOutcome} for the changes of
    controller topics (the others are the node's own topic controller's)."""

    changes: tuple[ConfigChange, ...]
    validate_only: bool = False


@dataclass(frozen=True, slots=True)
class TopicConfigs:
    """DescribeConfigs in cluster mode: -> {name: TopicInfo} of the named controller topics."""

    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReplicaOrders:
    """AlterPartitionReassignments in cluster mode: -> {topic: each partition's replicas (node
    ids, preferred first)} of the named controller topics."""

    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ProposePreferred:
    """Make each move's node its partition's first replica (`SetPreferredReplica`): leadership
    follows (the partitions' balance). -> one (error code, message) per move."""

    moves: tuple[Move, ...]


@dataclass(frozen=True, slots=True)
class AllocateClusterProducerId:
    """InitProducerId in cluster mode: -> a range of producer ids unique in the cluster (up to
    `count`, contiguous: fewer when this node's block runs out first; a transaction host asks for
    many), or None when the controller cannot cut a block now (no leader, no quorum, not hosted
    here)."""

    count: int = 1


ADMIN_MESSAGES = (ProposeTopics, ProposeGrows, ProposeConfigs, TopicConfigs,
                  AllocateClusterProducerId, ReplicaOrders, ProposePreferred)


class ControllerAdmin:
    """One per `ControllerService` (core 0's loop), created with it; `host` and `backend` are
    the service's once its host started (None before, and on a node that hosts no controller
    replica: every request is then answered as not the controller's)."""

    def __init__(self, me: NodeId, settle_s: float = 5.0) -> None:
        self.me = me
        self.settle_s = settle_s
        self.host: ControllerHost | None = None
        self.backend: ControllerBackend | None = None
        self._pids = range(0)  # the rest of this node's block
        self._pid_lock = asyncio.Lock()
        self.log = _log.bind(core=0, node=int(me))

    def _ready(self) -> ControllerHost | None:
        host = self.host
        return host if host is not None and host.stm.cluster_uuid is not None else None

    async def caught_up(self) -> None:
        """Until this node applied what the controller leader had committed when asked (at
        most `BARRIER_S` for the answer, then as long for applying), so a change another
        node answered is seen here: Metadata names the node asked as the controller
        (`admin_id`), and a client's next admin request after its CreateTopics may go to
        any node (KRaft gets the same by forwarding every admin request to the active
        controller). No leader answering by then: decided on this node's state."""
        host = self._ready()
        if host is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BARRIER_S
        target = await self._leader_committed(host, BARRIER_S)
        while target is None and loop.time() < deadline:
            await asyncio.sleep(BARRIER_RETRY_S)  # non-leaders answer at once: no spinning
            target = await self._leader_committed(host, max(deadline - loop.time(),
                                                            BARRIER_RETRY_S))
        if target is not None:
            fut = host.applied_future(target)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(fut), BARRIER_S)
            fut.cancel()

    @staticmethod
    async def _leader_committed(host: ControllerHost, timeout: float) -> int | None:
        """The leader's committed count: this node's own when it leads (once an entry of its
        term committed: a new leader may not have applied its predecessor's last commands
        yet), else asked of the voters."""
        if host.is_leader:
            return host.committed_count
        return await host.leader_applied(timeout=timeout)

    async def serve(self, message: object) -> object:
        if not isinstance(message, AllocateClusterProducerId):
            await self.caught_up()
        if isinstance(message, ProposeTopics):
            return await self.create_topics(message)
        if isinstance(message, ProposeGrows):
            return await self.grow(message)
        if isinstance(message, ProposeConfigs):
            return await self.alter(message)
        if isinstance(message, TopicConfigs):
            return self.configs(message.names)
        if isinstance(message, AllocateClusterProducerId):
            return await self.producer_ids(message.count)
        if isinstance(message, ReplicaOrders):
            return self.replica_orders(message.names)
        if isinstance(message, ProposePreferred):
            return await self.prefer(message.moves)
        raise TypeError(f"controller admin got {type(message).__name__}")

    async def _propose(self, host: ControllerHost, command: Command) -> Applied:
        """Propose; once applied here, wait (at most `settle_s`) for this node's backend to act
        on it, so a client reading this node right after the answer sees the change."""
        applied = await host.propose(command)
        backend = self.backend
        if applied.ok and backend is not None:
            done = backend.reconciled(host.clog.next_offset)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(done), self.settle_s)
            done.cancel()
        return applied

    # ---- preferred replicas (AlterPartitionReassignments that reorder) ------------------------

    def replica_orders(self, names: tuple[str, ...]) -> dict[str, list[list[int]]]:
        host = self._ready()
        if host is None:
            return {}
        out = {}
        for name in names:
            topic = host.stm.topics.get(name)
            if topic is not None:
                out[name] = [[int(r.node_id) for r in a] for a in topic.assignments]
        return out

    async def prefer(self, moves: tuple[Move, ...]) -> list[tuple[int, str | None]]:
        host = self._ready()
        out: list[tuple[int, str | None]] = []
        for move in moves:
            if host is None:
                out.append((ErrorCode.NOT_CONTROLLER, NOT_HOSTED))
                continue
            try:
                applied = await self._propose(host, SetPreferredReplica(
                    move.topic, move.partition, NodeId(move.node)))
            except ProposeFailed as exc:
                out.append((ErrorCode.REQUEST_TIMED_OUT, str(exc)))
                continue
            if applied.ok:
                self.log.info("preferred_replica_moved", topic=move.topic,
                              partition=move.partition, node=move.node)
            out.append((applied.error_code, applied.message))
        return out

    # ---- CreateTopics -------------------------------------------------------------------------

    async def create_topics(self, message: ProposeTopics) -> dict[str, CreateOutcome]:
        out: dict[str, CreateOutcome] = {}
        for spec, rf in zip(message.specs, message.replication_factors, strict=True):
            out[spec.name] = await self._create_topic(spec, rf, message.validate_only)
        return out

    async def _create_topic(self, spec: TopicSpec, rf: int, validate_only: bool
                            ) -> CreateOutcome:
        host = self._ready()
        if host is None:
            return CreateOutcome(ErrorCode.NOT_CONTROLLER, "the controller is not running here",
                                 None)
        command = create_command(spec, rf, host.stm, uuid.uuid4())
        if isinstance(command, CreateOutcome):
            return command
        info = TopicInfo(spec.name, command.topic_id, tuple(
            int(a[0].core) for a in command.assignments), command.configs, replicated=True)
        if validate_only:
            return CreateOutcome(ErrorCode.NONE, None, info, command.replication_factor)
        return await self._create(host, command, info)

    async def _create(self, host: ControllerHost, command: CreateTopic, info: TopicInfo
                      ) -> CreateOutcome:
        try:
            applied = await self._propose(host, command)
        except ProposeFailed as exc:
            return CreateOutcome(ErrorCode.REQUEST_TIMED_OUT, str(exc), None, -1)
        if not applied.ok:
            return CreateOutcome(applied.error_code, applied.message, None, -1)
        self.log.info("topic_created", topic=command.name, partitions=command.partitions,
                      rf=command.replication_factor)
        return CreateOutcome(ErrorCode.NONE, None, info, command.replication_factor)

    # ---- CreatePartitions ---------------------------------------------------------------------

    async def grow(self, message: ProposeGrows) -> list[GrowOutcome | None]:
        out: list[GrowOutcome | None] = []
        for grow in message.grows:
            if self.host is None:  # no controller replica here: clients ask the controller
                out.append(GrowOutcome(grow.name, ErrorCode.NOT_CONTROLLER, NOT_HOSTED))
                continue
            host = self._ready()
            if host is None or host.stm.topics.get(grow.name) is None:
                out.append(None)
                continue
            command = grow_command(grow, host.stm)
            if isinstance(command, GrowOutcome):
                out.append(command)
            elif message.validate_only:
                out.append(GrowOutcome(grow.name, ErrorCode.NONE))
            else:
                out.append(await self._outcome(host, command,
                                               functools.partial(GrowOutcome, grow.name)))
        return out

    # ---- AlterConfigs, IncrementalAlterConfigs, DescribeConfigs -------------------------------

    async def alter(self, message: ProposeConfigs) -> dict[str, AlterOutcome]:
        out: dict[str, AlterOutcome] = {}
        for change in message.changes:
            host = self._ready()
            if host is None or host.stm.topics.get(change.topic) is None:
                continue
            command = alter_command(change, host.stm)
            if isinstance(command, AlterOutcome):
                out[change.topic] = command
            elif command is None or message.validate_only:
                out[change.topic] = AlterOutcome(ErrorCode.NONE)
            else:
                out[change.topic] = await self._outcome(host, command, AlterOutcome)
        return out

    def configs(self, names: tuple[str, ...]) -> dict[str, TopicInfo]:
        host = self._ready()
        if host is None:
            return {}
        return {n: topic_info(t, self.me) for n in names
                if (t := host.stm.topics.get(n)) is not None}

    async def _outcome(self, host: ControllerHost, command: Command,
                          make: Callable[[int, str | None], T]) -> T:
        try:
            applied = await self._propose(host, command)
        except ProposeFailed as exc:
            return make(ErrorCode.REQUEST_TIMED_OUT, str(exc))
        if applied.ok:
            self.log.info("controller_change_applied", command=type(command).__name__)
        return make(applied.error_code, applied.message)

    # ---- InitProducerId -----------------------------------------------------------------------

    async def producer_ids(self, count: int = 1) -> range | None:
        """The next `count` ids of this node's block (fewer if it has fewer left); a new block
        from the controller when it is used up (one proposal per `PRODUCER_ID_BLOCK` ids; a
        restarted node starts a new block: the rest of the old one is skipped, never reused)."""
        async with self._pid_lock:
            if not self._pids:
                block = await self._new_block()
                if block is None:
                    return None
                self._pids = block
            got = self._pids[:max(1, count)]
            self._pids = self._pids[len(got):]
            return got

    async def _new_block(self) -> range | None:
        """A new block from the controller (called under the lock)."""
        host = self._ready()
        if host is None:
            return None
        try:
            applied = await host.propose(AllocateProducerIds(self.me))
        except ProposeFailed as exc:
            self.log.warning("producer_ids_not_allocated", error=str(exc))
            return None
        if not applied.ok or applied.producer_ids is None:
            self.log.warning("producer_ids_refused", error=applied.error_code.name,
                             message=applied.message)
            return None
        self.log.info("producer_ids_allocated", first=applied.producer_ids.start,
                      end=applied.producer_ids.stop)
        return applied.producer_ids
