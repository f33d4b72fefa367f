"""The topic controller (core 0): the node's topic records, auto-creation, producer ids.

Concern: the one writer of topic metadata on this node. Records live in the node's kvstore
(written, then fdatasynced through the core's flush coordinator before a create is answered)
until Raft group 0 takes over (ARCHITECTURE.md section 6). A new topic's partitions are opened on
their owning cores (the shard table in `TopicInfo.cores`) before its creation is answered, so a
client never sees a topic whose leaders are not serving. Also hands out producer ids (persisted in
blocks). Every core's topic cache hears of a created, grown or deleted topic before the change
is answered, so any core can answer for the topics while this core restarts (issue 12). Lives on
core 0, started by `setup_core`; ends with its core (a restarted core 0 reads the kvstore again).
Must not know: connections, Kafka request formats.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from typing import Any

import pykka
import structlog

from redshank.actors._async import resolve, spawn
from redshank.actors.disk_writer import RunRound
from redshank.actors.group_host import GROUPS_TOPIC
from redshank.actors.partition_manager import (
    MANAGER,
    Drop,
    Ensure,
    EnsureGroupHost,
    EnsureTxnHost,
    Reconfigure,
)
from redshank.actors.runtime import CoreRouter, LoopActor, LoopFuture
from redshank.actors.topic_cache import TOPIC_CACHE, TopicChanged, TopicCreated, TopicDeleted
from redshank.actors.txn_host import TXN_TOPIC
from redshank.cluster.kafka import (
    TopicInfo,
    TopicTable,
    assign_cores,
    decode_topic,
    encode_topic,
    topic_key,
)
from redshank.cluster.kafka.handlers._alter import AlterOutcome
from redshank.cluster.kafka.handlers._alter import decide as decide_alter
from redshank.cluster.kafka.handlers.create_partitions import Grow, GrowOutcome, grown
from redshank.cluster.kafka.handlers.create_partitions import decide as decide_grow
from redshank.cluster.kafka.handlers.create_topics import CreateOutcome, TopicSpec
from redshank.cluster.kafka.handlers.delete_topics import DeleteOutcome, DeleteTarget, decide
from redshank.cluster.kafka.topic_configs import ConfigChange
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.fast_dataclass import dataclass
from redshank.storage import FlushCoordinator, FlushHandle, KvStore

__all__ = ["CONTROLLER", "AllocateProducerId", "AlterTopicConfigs", "CreatePartitions",
           "CreateTopics", "DeleteTopics", "Lookup", "LookupResult", "TopicController"]

CONTROLLER = "topics"
_CLUSTER_ID = b"cluster_id"
_PID_LIMIT = b"producer_id_limit"
_PID_BLOCK = 1000
# The coordinators' topics: their partition counts and configs are the broker's.
_INTERNAL = frozenset({GROUPS_TOPIC, TXN_TOPIC})


@dataclass(frozen=True, slots=True)
class Lookup:
    """`names` None: every topic. Names in `create` that do not exist are created, at most
    `max_create` of them (the first in request order); the others stay missing, for a later
    lookup to create (a client naming 100k new topics creates them a bounded batch at a time)."""

    names: tuple[str, ...] | None
    create: tuple[str, ...]
    default_partitions: int
    max_create: int = 1 << 31


@dataclass(frozen=True, slots=True)
class LookupResult:
    cluster_id: str
    topics: dict[str, TopicInfo]
    not_ready: frozenset[str]


@dataclass(frozen=True, slots=True)
class CreateTopics:
    specs: tuple[TopicSpec, ...]
    validate_only: bool


@dataclass(frozen=True, slots=True)
class AllocateProducerId:
    """-> range: `count` producer ids, contiguous, never handed out before (a transaction
    host asks for many at once; an idempotent producer for one)."""

    count: int = 1


@dataclass(frozen=True, slots=True)
class CreatePartitions:
    grows: tuple[Grow, ...]
    validate_only: bool
    node_id: int


@dataclass(frozen=True, slots=True)
class DeleteTopics:
    targets: tuple[DeleteTarget, ...]


@dataclass(frozen=True, slots=True)
class AlterTopicConfigs:
    """Replies {topic: AlterOutcome} once every change is durable, applied to the open logs
    and known to every core's topic cache."""

    changes: tuple[ConfigChange, ...]
    validate_only: bool


class TopicController(LoopActor):
    def __init__(self, router: CoreRouter, kv: KvStore, coordinator: FlushCoordinator,
                 writer: pykka.ActorRef[Any], loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.router = router
        self.kv = kv
        self.coordinator = coordinator
        self.writer = writer
        self.loop = loop
        self.table = TopicTable(decode_topic(v) for _k, v in kv.items(TopicTable.key_prefix()))
        raw = kv.get(_CLUSTER_ID)
        if raw is None:
            raw = f"redshank-{uuid.uuid4()}".encode()
            kv.put(_CLUSTER_ID, raw)
        self.cluster_id = raw.decode()
        self._pid_next = int(kv.get(_PID_LIMIT) or b"0")
        self._pid_limit = self._pid_next
        self._pid_durable = self._pid_limit  # the limit known to be on disk
        self._creating: dict[str, LoopFuture[CreateOutcome]] = {}
        # Topics being grown: lookups wait for them, so Metadata shows new partitions only once
        # they are open and every core's cache has them (issue 17).
        self._growing: dict[str, LoopFuture[None]] = {}
        self._log = structlog.get_logger("redshank.topics")

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Lookup):
            return spawn(self.loop, self._lookup(message))
        if isinstance(message, CreateTopics):
            return spawn(self.loop, self._create_many(message))
        if isinstance(message, CreatePartitions):
            return spawn(self.loop, self._grow_many(message))
        if isinstance(message, DeleteTopics):
            return spawn(self.loop, self._delete_many(message))
        if isinstance(message, AlterTopicConfigs):
            return spawn(self.loop, self._alter_many(message))
        if isinstance(message, AllocateProducerId):
            return spawn(self.loop, self._allocate_pids(max(1, message.count)))
        raise TypeError(f"topic controller got {type(message).__name__}")

    async def durable(self) -> None:
        """Wait until everything put in the kvstore so far is fdatasynced."""
        done: LoopFuture[FlushHandle] = LoopFuture(self.loop)

        def landed(handle: FlushHandle) -> None:  # on the disk-writer thread
            self.loop.call_soon_threadsafe(done.set, handle)

        self.coordinator.request(self.kv, self.kv.dirty_offset, landed)
        self.writer.tell(RunRound())
        handle = await done
        if handle.error is not None:
            raise handle.error

    async def _lookup(self, msg: Lookup) -> LookupResult:
        waits = []
        budget = msg.max_create
        for name in msg.create:
            if self.table.get(name) is None:
                if budget <= 0:
                    continue
                budget -= 1
                spec = TopicSpec(name, msg.default_partitions, ())
                waits.append(self._create(spec))
            elif name in self._creating:
                waits.append(self._creating[name])
        not_ready = set()
        for fut in waits:
            out = await resolve(fut)
            if out.error_code != 0 and out.info is not None:
                not_ready.add(out.info.name)
        names = msg.names if msg.names is not None else self.table.names()
        for growing in [self._growing[n] for n in names if n in self._growing]:
            await growing
        topics = {n: t for n in names if (t := self.table.get(n)) is not None}
        not_ready.update(n for n in topics if n in self._creating)
        return LookupResult(self.cluster_id, topics, frozenset(not_ready))

    async def _create_many(self, msg: CreateTopics) -> dict[str, CreateOutcome]:
        out: dict[str, CreateOutcome] = {}
        futs = {}
        for spec in msg.specs:
            if self.table.get(spec.name) is not None:
                out[spec.name] = CreateOutcome(
                    ErrorCode.TOPIC_ALREADY_EXISTS, f"topic {spec.name!r} already exists", None)
            elif msg.validate_only:
                out[spec.name] = CreateOutcome(0, None, self._info(spec))
            else:
                futs[spec.name] = self._create(spec)
        for name, fut in futs.items():
            out[name] = await resolve(fut)
        return out

    def _info(self, spec: TopicSpec) -> TopicInfo:
        cores = assign_cores(spec.name, spec.partitions, self.router.ncores)
        return TopicInfo(spec.name, uuid.uuid4(), cores, spec.configs)

    def _create(self, spec: TopicSpec) -> LoopFuture[CreateOutcome]:
        info = self._info(spec)
        self.table.add(info)
        self.kv.put(topic_key(info.name), encode_topic(info))
        fut = spawn(self.loop, self._finish_create(info))
        self._creating[info.name] = fut
        return fut

    async def _finish_create(self, info: TopicInfo) -> CreateOutcome:
        try:
            await self.durable()
            opens = [
                self.router.ref(core, MANAGER).ask(
                    EnsureGroupHost(p, info.partitions) if info.name == GROUPS_TOPIC
                    else EnsureTxnHost(p) if info.name == TXN_TOPIC
                    else Ensure(info.name, p, info.configs, info.topic_id), block=False)
                for p, core in enumerate(info.cores)
            ]
            for fut in opens:
                await resolve(fut)
        except Exception as exc:  # a core died or the disk failed: retriable for the client
            self._log.error("topic_create_failed", topic=info.name, error=repr(exc))
            return CreateOutcome(ErrorCode.LEADER_NOT_AVAILABLE, str(exc), info)
        finally:
            self._creating.pop(info.name, None)
        await self._tell_caches(TopicCreated(info))
        self._log.info("topic_created", topic=info.name, partitions=info.partitions,
                       cores=list(info.cores))
        return CreateOutcome(0, None, info)

    async def _grow_many(self, msg: CreatePartitions) -> list[GrowOutcome]:
        """Write each grown record (durably), then open the new partitions on their cores before
        answering, as a create does. Lookups of the topic wait meanwhile: Metadata shows the new
        partitions only once produce and ListOffsets on any core can use them."""
        out: list[GrowOutcome] = []
        for grow in msg.grows:
            if grow.name in self._creating:
                await resolve(self._creating[grow.name])
            while grow.name in self._growing:  # another request grows it: decide after it
                await self._growing[grow.name]
            info = self.table.get(grow.name)
            refused = decide_grow(grow, info, msg.node_id, _INTERNAL)
            if refused is not None or info is None:
                out.append(refused or GrowOutcome(grow.name, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION))
                continue
            if msg.validate_only:
                out.append(GrowOutcome(grow.name, ErrorCode.NONE))
                continue
            bigger = grown(info, grow.count, self.router.ncores)
            growing: LoopFuture[None] = LoopFuture(self.loop)
            self._growing[grow.name] = growing
            try:
                out.append(await self._grow(info, bigger))
            finally:
                del self._growing[grow.name]
                growing.set(None)
        return out

    async def _grow(self, info: TopicInfo, bigger: TopicInfo) -> GrowOutcome:
        """Store `bigger`, open its new partitions and tell every core's cache."""
        self.table.add(bigger)
        self.kv.put(topic_key(bigger.name), encode_topic(bigger))
        try:
            await self.durable()
            opens = [self.router.ref(bigger.cores[p], MANAGER).ask(
                Ensure(bigger.name, p, bigger.configs, bigger.topic_id), block=False)
                for p in range(info.partitions, bigger.partitions)]
            for fut in opens:
                await resolve(fut)
        except Exception as exc:  # a core died or the disk failed: retriable for the client
            self._log.error("topic_grow_failed", topic=info.name, error=repr(exc))
            return GrowOutcome(info.name, ErrorCode.LEADER_NOT_AVAILABLE, str(exc))
        await self._tell_caches(TopicCreated(bigger))
        self._log.info("topic_grown", topic=info.name, partitions=bigger.partitions)
        return GrowOutcome(info.name, ErrorCode.NONE)

    async def _delete_many(self, msg: DeleteTopics) -> list[DeleteOutcome]:
        """Remove each topic's record (durably) before answering, then drop its partitions on
        their cores; a failed drop leaves files behind but the topic is gone."""
        out: list[DeleteOutcome] = []
        for target in msg.targets:
            if target.name is not None and target.name in self._creating:
                await resolve(self._creating[target.name])
            found = decide(target, self.table, _INTERNAL)
            if isinstance(found, DeleteOutcome):
                out.append(found)
                continue
            info = found
            self.table.remove(info.name)
            self.kv.delete(topic_key(info.name))
            try:
                await self.durable()
                drops = [self.router.ref(core, MANAGER).ask(
                    Drop(info.name, p, info.topic_id), block=False)
                    for p, core in enumerate(info.cores)]
                for fut in drops:
                    await resolve(fut)
            except Exception as exc:  # a core died or the disk failed: the record is gone
                self._log.error("topic_delete_failed", topic=info.name, error=repr(exc))
            await self._tell_caches(TopicDeleted(info.name, info.topic_id))
            self._log.info("topic_deleted", topic=info.name, partitions=info.partitions)
            out.append(DeleteOutcome(info.name, info.topic_id, ErrorCode.NONE))
        return out

    async def _alter_many(self, msg: AlterTopicConfigs) -> dict[str, AlterOutcome]:
        """Write each changed record (durably), then hand the new configs to the partitions'
        owning cores and to every core's topic cache before answering, so a produce or describe
        after the answer sees them on any core."""
        out: dict[str, AlterOutcome] = {}
        for change in msg.changes:
            if change.topic in self._creating:
                await resolve(self._creating[change.topic])
            info = self.table.get(change.topic)
            after = decide_alter(change, info, _INTERNAL)
            if isinstance(after, AlterOutcome) or info is None:
                out[change.topic] = after if isinstance(after, AlterOutcome) else AlterOutcome(
                    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
                continue
            if msg.validate_only or after == info.configs:
                out[change.topic] = AlterOutcome(ErrorCode.NONE)
                continue
            changed = dataclasses.replace(info, configs=after)
            self.table.add(changed)
            self.kv.put(topic_key(changed.name), encode_topic(changed))
            try:
                await self.durable()
                await self._publish(changed)
            except Exception as exc:  # a core died or the disk failed: retriable for the client
                self._log.error("topic_alter_failed", topic=info.name, error=repr(exc))
                out[change.topic] = AlterOutcome(ErrorCode.LEADER_NOT_AVAILABLE, str(exc))
                continue
            self._log.info("topic_configs_altered", topic=info.name, configs=dict(after))
            out[change.topic] = AlterOutcome(ErrorCode.NONE)
        return out

    async def _publish(self, info: TopicInfo) -> None:
        """The owning cores reconfigure the open logs; every core's cache takes the record."""
        asks = [self.router.ref(core, MANAGER).ask(
            Reconfigure(info.name, p, info.configs), block=False)
            for p, core in enumerate(info.cores)]
        asks += [self.router.ref(core, TOPIC_CACHE).ask(TopicChanged(info), block=False)
                 for core in range(self.router.ncores)]
        for fut in asks:
            await resolve(fut)

    async def _tell_caches(self, msg: TopicCreated | TopicDeleted) -> None:
        """Every live core's topic cache has `msg` when this returns; a core that is down
        starts with an empty cache and looks topics up again."""
        asks = []
        for core in range(self.router.ncores):
            with contextlib.suppress(pykka.ActorDeadError):
                asks.append(self.router.ref(core, TOPIC_CACHE).ask(msg, block=False))
        for fut in asks:
            with contextlib.suppress(pykka.ActorDeadError):
                await resolve(fut)

    async def _allocate_pids(self, count: int) -> range:
        """The limit is durable before any id below it is handed out: a restart starts at the
        limit (skipping the rest of the block, never reusing an id)."""
        first = self._pid_next
        self._pid_next += count
        if self._pid_next > self._pid_limit:
            self._pid_limit = self._pid_next + _PID_BLOCK
            self.kv.put(_PID_LIMIT, str(self._pid_limit).encode())
        # Also when another call raised the limit and still waits for it to be durable.
        while self._pid_durable < self._pid_next:
            limit = self._pid_limit
            await self.durable()
            self._pid_durable = max(self._pid_durable, limit)
        return range(first, first + count)
