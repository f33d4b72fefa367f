"""One core of a broker node: its actors, its Kafka listener, and the request paths of a session.

Concern: `setup_core` (the runtime's per-core setup: disk writer, partition manager, the topic
controller on core 0, a `SO_REUSEPORT` listener on the Kafka port) and `BrokerCore`, which runs the
sans-IO handlers of `cluster/kafka/handlers` for a session: routes per-partition work to the
owning core's partition leader (`shard_table`), two-phase for produce, and assembles responses.
Must not know: the bytes of a connection (kafka_session), storage internals.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka
import structlog

from redshank.actors._async import resolve
from redshank.actors.disk_writer import DiskWriter, OpenKv
from redshank.actors.group_host import GROUPS_TOPIC, GroupCall, group_host_name
from redshank.actors.kafka_session import KafkaSession
from redshank.actors.partition_leader import TERM, partition_name
from redshank.actors.partition_manager import (
    MANAGER,
    RETENTION_CHECK_S,
    Ensure,
    EnsureGroupHost,
    PartitionManager,
    TopicDeletedError,
)
from redshank.actors.runtime import CoreContext, CoreDiedError, LoopFuture
from redshank.actors.topic_cache import TOPIC_CACHE, TopicCache
from redshank.actors.topic_controller import (
    CONTROLLER,
    AllocateProducerId,
    AlterTopicConfigs,
    CreatePartitions,
    CreateTopics,
    DeleteTopics,
    Lookup,
    LookupResult,
    TopicController,
)
from redshank.actors.watermarks import WATERMARKS, Watermarks, WatermarkWatch
from redshank.cluster.group import (
    DescribedGroup,
    GroupConfig,
    GroupDeletion,
    HeartbeatResult,
    JoinGroupResult,
    LeaveGroupResult,
    ListGroupsResult,
    OffsetCommitResult,
    OffsetFetchGroupResult,
    PartitionError,
    SyncGroupResult,
    partition_for,
)
from redshank.cluster.kafka import TopicInfo
from redshank.cluster.kafka.fetch_session import FetchSessionCache, SessionError
from redshank.cluster.kafka.handlers import (
    alter_configs,
    api_versions,
    create_partitions,
    create_topics,
    delete_groups,
    delete_records,
    delete_topics,
    describe_cluster,
    describe_configs,
    describe_groups,
    find_coordinator,
    heartbeat,
    incremental_alter_configs,
    init_producer_id,
    join_group,
    leave_group,
    list_groups,
    list_offsets,
    metadata,
    offset_commit,
    offset_fetch,
    offset_for_leader_epoch,
    produce,
    sync_group,
)
from redshank.cluster.kafka.handlers import (
    fetch as fetch_h,
)
from redshank.cluster.kafka.handlers._unsure import not_leader_if_unsure
from redshank.cluster.partition import api as papi
from redshank.cluster.partition.api import Append, QueryOffset, Read, TrimPrefix
from redshank.protocol.api_versions import ApiKey
from redshank.protocol.error_codes import ErrorCode
from redshank.storage import BatchCache, FlushCoordinator

__all__ = ["MAX_REMOTE_READ", "REQUEST_MEMORY_BYTES", "RING_BYTES", "SMALL_REQUEST",
           "BrokerConfig", "BrokerCore", "ByteSemaphore", "RequestMemory", "setup_core"]

_log = structlog.get_logger("redshank.broker")
# Shared-memory ring per core pair: a frame holds at most half of it, so a record batch of
# max.message.bytes (1 MiB by default) and a cross-core read both fit with room to spare.
RING_BYTES = 8 * 1024 * 1024
MAX_REMOTE_READ = 1024 * 1024
REQUEST_MEMORY_BYTES = 256 * 1024 * 1024
# A request this small is always read, whatever the core's request memory: small requests of
# well-behaved clients keep flowing while large frames wait.
SMALL_REQUEST = 64 * 1024
# A group request whose coordinator cannot be reached: NOT_COORDINATOR makes clients look again.
_UNAVAILABLE = (pykka.ActorDeadError, CoreDiedError)
# The topic controller cannot answer a lookup: its core is dead or restarting (no actor yet), or
# it does not answer in time (a stopped or stuck core 0).
_UNREACHABLE = (pykka.ActorDeadError, TimeoutError)
_NOT_LEADER = ErrorCode.NOT_LEADER_OR_FOLLOWER


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    host: str
    port: int
    advertised_host: str
    advertised_port: int
    data_dir: str
    node_id: int = 0
    auto_create_topics: bool = True
    default_partitions: int = 1
    batch_cache_bytes: int = 64 * 1024 * 1024
    # A lone consumer should get its first records within a second or two (issue 5), so the
    # first rebalance of an empty group waits less than Kafka's 3 s.
    initial_rebalance_delay_ms: int = 500
    # Produce bytes in flight per core before sessions stop reading (replicate-batcher memory).
    produce_memory_bytes: int = 64 * 1024 * 1024
    # Bytes of not-yet-decoded requests the connections of a core may hold (a flood of large
    # or slow frames stays within it).
    request_memory_bytes: int = REQUEST_MEMORY_BYTES
    # How often each core applies retention.ms / retention.bytes to its logs.
    retention_check_s: float = RETENTION_CHECK_S
    # The most one fetch returns of one partition, whatever max.partition.fetch.bytes allows:
    # a consumer asking 10 MiB per partition got 44 MB responses and ~240k msg/s over 8
    # partitions, against 510-700k with responses of 1 MiB per partition (confluent-kafka,
    # this 2-core machine); the client pipelines the smaller ones.
    fetch_partition_max_bytes: int = MAX_REMOTE_READ
    # Incremental fetch sessions (KIP-227) each core keeps (Kafka's
    # max.incremental.fetch.session.cache.slots, per core).
    fetch_session_slots: int = 1000
    # How long a topic lookup waits for the controller (core 0) before this core answers from
    # its topic cache: far below clients' request timeouts (30-60 s), far above a lookup's
    # usual time (well under a millisecond; an auto-create waits for one fdatasync).
    controller_timeout_s: float = 5.0
    # Topics one Metadata request may auto-create; the request's other new names are
    # UNKNOWN_TOPIC_OR_PARTITION this time and created by a later request (clients ask again).
    auto_create_topics_per_request: int = 100
    # Kafka's connections.max.idle.ms: a connection with nothing in flight and no traffic for
    # this long is closed (0: never).
    connections_max_idle_ms: int = 600_000


class ByteSemaphore:
    """Bytes of produce requests in flight on a core (routed, not yet acknowledged): above
    `limit`, new produce requests wait, their session stops reading its connection, and the
    backpressure reaches the producer. One request larger than the limit still passes alone."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._waiters: list[asyncio.Future[None]] = []

    async def acquire(self, n: int) -> None:
        while self.used and self.used + n > self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter
        self.used += n

    def release(self, n: int) -> None:
        self.used -= n
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


class RequestMemory:
    """Bytes the core's connections hold of requests not yet decoded (Kafka's
    queued.max.request.bytes, per core). Above `limit` a session holding more than a small
    request's worth stops reading until memory is freed; a session never waits on its own bytes
    alone, so one request larger than the limit still completes. Sessions that cannot progress
    meet the frame deadline, which frees their memory."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._waiting: dict[int, Callable[[], None]] = {}

    def adjust(self, delta: int) -> None:
        self.used += delta
        if delta < 0 and self._waiting and self.used < self.limit:
            waiting, self._waiting = self._waiting, {}
            for wake in waiting.values():
                wake()

    def must_wait(self, holds: int) -> bool:
        """Whether a session holding `holds` bytes (counted in `used`) should stop reading."""
        return holds > SMALL_REQUEST and self.used > self.limit and self.used > holds

    def wait(self, key: int, wake: Callable[[], None]) -> None:
        self._waiting[key] = wake

    def forget(self, key: int) -> None:
        self._waiting.pop(key, None)


class BrokerCore:
    """Per-core state shared by the sessions of that core: refs, the topic cache, memory
    bounds."""

    def __init__(self, config: BrokerConfig, ctx: CoreContext,
                 topics: dict[str, TopicInfo] | None = None,
                 watermarks: Watermarks | None = None) -> None:
        self.config = config
        self.ctx = ctx
        self.router = ctx.router
        self.loop = ctx.loop
        # Shared with the core's TopicCache actor, which the topic controller keeps current.
        self.topics: dict[str, TopicInfo] = {} if topics is None else topics
        # Shared with the core's WatermarkWatch, which the partition leaders tell.
        self.watermarks = Watermarks() if watermarks is None else watermarks
        self.ensured: set[str] = set()
        self.cluster_id: str | None = None  # the controller's, from the last lookup it answered
        self.broker = metadata.BrokerAddress(
            config.node_id, config.advertised_host, config.advertised_port)
        self.sessions = 0
        self.produce_memory = ByteSemaphore(config.produce_memory_bytes)
        self.request_memory = RequestMemory(config.request_memory_bytes)
        self.fetch_sessions = FetchSessionCache(
            config.fetch_session_slots, ctx.core, ctx.router.ncores, random.Random())
        self.seeding: asyncio.Task[LookupResult] | None = None
        # Every served API but Produce (two-phase: `produce_sequenced`) and JoinGroup (it also
        # takes the client id), by API key: `handle` dispatches through it.
        self._handlers: dict[int, Callable[[Any, int], Any]] = {
            ApiKey.API_VERSIONS: self.api_versions,
            ApiKey.FIND_COORDINATOR: self.find_coordinator,
            ApiKey.METADATA: self.metadata,
            ApiKey.FETCH: self.fetch,
            ApiKey.LIST_OFFSETS: self.list_offsets,
            ApiKey.CREATE_TOPICS: self.create_topics,
            ApiKey.INIT_PRODUCER_ID: self.init_producer_id,
            ApiKey.SYNC_GROUP: self.sync_group,
            ApiKey.HEARTBEAT: self.heartbeat,
            ApiKey.LEAVE_GROUP: self.leave_group,
            ApiKey.OFFSET_COMMIT: self.offset_commit,
            ApiKey.OFFSET_FETCH: self.offset_fetch,
            ApiKey.DESCRIBE_GROUPS: self.describe_groups,
            ApiKey.LIST_GROUPS: self.list_groups,
            ApiKey.DELETE_GROUPS: self.delete_groups,
            ApiKey.DESCRIBE_CLUSTER: self.describe_cluster,
            ApiKey.DELETE_TOPICS: self.delete_topics,
            ApiKey.DESCRIBE_CONFIGS: self.describe_configs,
            ApiKey.CREATE_PARTITIONS: self.create_partitions,
            ApiKey.DELETE_RECORDS: self.delete_records,
            ApiKey.OFFSET_FOR_LEADER_EPOCH: self.offset_for_leader_epoch,
            ApiKey.ALTER_CONFIGS: self.alter_configs,
            ApiKey.INCREMENTAL_ALTER_CONFIGS: self.incremental_alter_configs,
        }

    def handle(self, api_key: int, version: int, request: Any, client_id: str) -> Any:
        """A served request other than Produce: its response, or an awaitable of it (the
        kafka-session's `SessionHost.handle`)."""
        if api_key == ApiKey.JOIN_GROUP:
            return self.join_group(request, version, client_id)
        return self._handlers[api_key](request, version)

    # -- topics --------------------------------------------------------------------------------
    async def lookup(self, names: tuple[str, ...] | None, create: tuple[str, ...] = ()
                     ) -> LookupResult:
        """The controller's answer, which refreshes this core's cache; while the controller
        cannot answer (core 0 restarting or stopped), the cache's: the topics it holds, and
        every other asked name `not_ready` (not known to exist or not)."""
        msg = Lookup(names, create, self.config.default_partitions,
                     self.config.auto_create_topics_per_request)
        try:
            result: LookupResult = await asyncio.wait_for(
                resolve(self.router.ref(0, CONTROLLER).ask(msg, block=False)),
                self.config.controller_timeout_s)
        except _UNREACHABLE:
            return self._cached(names)
        self.cluster_id = result.cluster_id
        for name, info in result.topics.items():
            if name not in result.not_ready:
                self.topics[name] = info
        # What the controller says does not exist is forgotten (deleted through another core).
        gone = self.topics.keys() - result.topics.keys() if names is None else (
            n for n in names if n not in result.topics)
        for name in list(gone):
            self.topics.pop(name, None)
        return result

    def _cached(self, names: tuple[str, ...] | None) -> LookupResult:
        cluster_id = self.cluster_id or ""
        if names is None:
            return LookupResult(cluster_id, dict(self.topics), frozenset())
        topics = {n: info for n in names if (info := self.topics.get(n)) is not None}
        return LookupResult(cluster_id, topics, frozenset(n for n in names if n not in topics))

    async def topic_infos(self, names: list[str]
                          ) -> tuple[dict[str, TopicInfo | None], frozenset[str]]:
        """Each name's record (None: no such topic), and the names not known to exist or not
        (not in the cache, and the controller could not say, or still creating them): their
        partitions answer NOT_LEADER_OR_FOLLOWER (`not_leader_if_unsure`)."""
        missing = tuple(n for n in set(names) if n not in self.topics)
        unsure: frozenset[str] = frozenset()
        if missing:
            unsure = (await self.lookup(missing)).not_ready
        return {n: self.topics.get(n) for n in names}, unsure

    # -- partitions ----------------------------------------------------------------------------
    async def _ensure(self, topic: str, partition: int, core: int) -> str:
        name = partition_name(topic, partition)
        if name not in self.ensured:
            info = self.topics.get(topic)
            configs = info.configs if info is not None else ()
            try:
                await resolve(self.router.ref(core, MANAGER).ask(
                    Ensure(topic, partition, configs, None if info is None else info.topic_id),
                    block=False))
            except TopicDeletedError:
                # Deleted through another core: forget it, the next request looks it up again.
                if self.topics.get(topic) is info:
                    self.topics.pop(topic, None)
                raise
            self.ensured.add(name)
        return name

    async def ask_partition(self, topic: str, partition: int, core: int, msg: Any) -> Any:
        name = await self._ensure(topic, partition, core)
        try:
            return await resolve(self.router.ref(core, name).ask(msg, block=False))
        except pykka.ActorDeadError:
            # The owner restarted (its leaders are gone): open the partition again, once.
            self.ensured.discard(name)
            name = await self._ensure(topic, partition, core)
            return await resolve(self.router.ref(core, name).ask(msg, block=False))

    async def append_two_phase(self, w: produce.PartitionWrite, acks: int
                               ) -> tuple[LoopFuture[Any], LoopFuture[Any]]:
        name = await self._ensure(w.topic, w.partition, w.core)
        msg = Append(w.records, acks, w.producer)  # a view: the ring copies it (partition_codecs)
        return self.router.ref(w.core, name).ask_two_phase(msg)

    # -- requests ------------------------------------------------------------------------------
    def api_versions(self, request: Any, version: int) -> Any:
        return api_versions.handle(request, version)

    async def metadata(self, request: Any, version: int) -> Any:
        q = metadata.query(request, version, self.config.auto_create_topics)
        result = await self.lookup(q.names, q.create)
        # Partitions whose core is down (dead, or restarting) have no leader right now.
        offline = frozenset(c for c in range(self.router.ncores) if not self.ctx.core_up(c))
        return metadata.build(request, version, self.broker, result.cluster_id or None, q,
                              result.topics, result.not_ready, offline)

    async def create_partitions(self, request: Any, version: int) -> Any:
        grows, refused = create_partitions.plan(request)
        outcomes: list[create_partitions.GrowOutcome] = await resolve(
            self.router.ref(0, CONTROLLER).ask(
                CreatePartitions(tuple(grows), request.validate_only, self.broker.node_id),
                block=False)) if grows else []
        for o in outcomes:
            self.topics.pop(o.name, None)  # looked up again with its new partitions
        return create_partitions.build(refused + outcomes, version)

    async def delete_topics(self, request: Any, version: int) -> Any:
        targets = delete_topics.plan(request, version)
        outcomes: list[delete_topics.DeleteOutcome] = await resolve(
            self.router.ref(0, CONTROLLER).ask(DeleteTopics(tuple(targets)), block=False))
        for o in outcomes:
            if o.error_code == ErrorCode.NONE and o.name is not None:
                self.topics.pop(o.name, None)
                prefix = partition_name(o.name, 0)[:-1]  # "partition/<topic>/"
                self.ensured = {n for n in self.ensured if not n.startswith(prefix)}
        return delete_topics.build(outcomes, version)

    async def describe_configs(self, request: Any, version: int) -> Any:
        names = describe_configs.topic_names(request)
        # Asked of the controller, not this core's cache: configs change under it.
        found = (await self.lookup(names)).topics if names else {}
        return describe_configs.build(request, version, {n: found.get(n) for n in names})

    async def alter_configs(self, request: Any, version: int) -> Any:
        changes, decided = alter_configs.plan(request)
        by_topic = await self._alter(changes, request.validate_only)
        return alter_configs.build(request, decided, by_topic)

    async def incremental_alter_configs(self, request: Any, version: int) -> Any:
        changes, decided = incremental_alter_configs.plan(request)
        by_topic = await self._alter(changes, request.validate_only)
        return incremental_alter_configs.build(request, decided, by_topic)

    async def _alter(self, changes: list[Any], validate_only: bool) -> dict[str, Any]:
        if not changes:
            return {}
        out: dict[str, Any] = await resolve(self.router.ref(0, CONTROLLER).ask(
            AlterTopicConfigs(tuple(changes), validate_only), block=False))
        return out

    async def describe_cluster(self, request: Any, version: int) -> Any:
        result = await self.lookup(())
        return describe_cluster.handle(request, version, self.broker, result.cluster_id)

    async def create_topics(self, request: Any, version: int) -> Any:
        specs, errors = create_topics.plan(request, self.config.default_partitions)
        outcomes: dict[str, create_topics.CreateOutcome] = {}
        if specs:
            outcomes = await resolve(self.router.ref(0, CONTROLLER).ask(
                CreateTopics(tuple(specs), request.validate_only), block=False))
        return create_topics.build(request, errors, outcomes)

    async def init_producer_id(self, request: Any, version: int) -> Any:
        if not init_producer_id.wants_id(request):
            return init_producer_id.build(request, None)
        try:
            pid = await asyncio.wait_for(resolve(self.router.ref(0, CONTROLLER).ask(
                AllocateProducerId(), block=False)), self.config.controller_timeout_s)
        except _UNREACHABLE:  # core 0 restarting: COORDINATOR_NOT_AVAILABLE, clients retry
            return init_producer_id.build(request, None)
        return init_producer_id.build(request, int(pid))

    async def produce_sequenced(self, request: Any) -> asyncio.Future[Any]:
        """Phase 1: every partition's append is in its owner's FIFO (order fixed); returns the
        future of the response (phase 2, when the requested acks level is reached)."""
        names = [t.name for t in request.topic_data]
        infos, unsure = await self.topic_infos(names)
        writes, results = produce.plan(request, infos)
        not_leader_if_unsure(results, unsure, lambda _tp: papi.PartitionResult(_NOT_LEADER))
        size = sum(len(w.records) for w in writes)
        await self.produce_memory.acquire(size)
        try:
            acked = await self._route_writes(request, writes, results)
        except BaseException:
            self.produce_memory.release(size)
            raise
        return asyncio.ensure_future(self._produce_acked(request, results, acked, size))

    async def _route_writes(self, request: Any, writes: list[produce.PartitionWrite],
                            results: dict[tuple[str, int], Any]
                            ) -> list[tuple[tuple[str, int], LoopFuture[Any]]]:
        # Sequenced at enqueue (ARCHITECTURE.md section 3): once an append is in its owner's
        # FIFO (the ring to that core, its overflow queue, or a local leader's inbox), its
        # order is fixed, so the connection may read its next request without waiting for the
        # owner's SEQUENCED reply (a cross-core round trip per request made a connection that
        # fell behind on a busy CPU stay behind). Whatever fails after that (the owner dies
        # with the frame in its ring, the leader is gone) fails the acked future as well, and
        # phase 2 answers it.
        acked: list[tuple[tuple[str, int], LoopFuture[Any]]] = []
        for w in writes:
            try:
                _sequenced, ack = await self.append_two_phase(w, request.acks)
            except (pykka.ActorDeadError, CoreDiedError) as exc:
                self._not_leader(w, results, exc)
                continue
            acked.append(((w.topic, w.partition), ack))
        return acked

    def _not_leader(self, w: produce.PartitionWrite, results: dict[tuple[str, int], Any],
                    exc: BaseException) -> None:
        self.ensured.discard(partition_name(w.topic, w.partition))
        results[(w.topic, w.partition)] = papi.PartitionResult(
            ErrorCode.NOT_LEADER_OR_FOLLOWER, error_message=str(exc))

    async def _produce_acked(self, request: Any, results: dict[tuple[str, int], Any],
                             acked: list[tuple[tuple[str, int], LoopFuture[Any]]],
                             size: int) -> Any:
        try:
            for tp, ack in acked:
                try:
                    results[tp] = await ack
                except (pykka.ActorDeadError, CoreDiedError) as exc:
                    self.ensured.discard(partition_name(*tp))  # reopened on the next request
                    results[tp] = papi.PartitionResult(
                        ErrorCode.NOT_LEADER_OR_FOLLOWER, error_message=str(exc))
        finally:
            self.produce_memory.release(size)
        return produce.build(request, results)

    async def fetch(self, request: Any, version: int) -> Any:
        ctx = self.fetch_sessions.context(request, self.loop.time())
        if isinstance(ctx, SessionError):
            return fetch_h.session_error(ctx.error_code)
        infos, unsure = await self.topic_infos(list({p.topic for p in ctx.partitions}))
        reads, results = fetch_h.plan(ctx.partitions, infos,
                                      self.config.fetch_partition_max_bytes)
        not_leader_if_unsure(results, unsure, lambda _tp: papi.ReadResult(_NOT_LEADER))
        deadline = self.loop.time() + max(request.max_wait_ms, 0) / 1000
        todo = reads  # the partitions (re)read this round; the others keep their last result
        while True:
            budget = fetch_h.FetchBudget(request)
            if todo is not reads:
                now_read = {id(r) for r in todo}
                for r in reads:
                    if id(r) not in now_read:
                        budget.take(len(results[(r.topic, r.partition)].records or b""))
            if budget.fits_all(todo):
                # No partition's read can shrink another's: read them all at once (a remote
                # one costs a round trip to its core, and these overlap).
                got = await asyncio.gather(*(self._read(r, budget) for r in todo))
                for r, res in zip(todo, got, strict=True):
                    results[(r.topic, r.partition)] = res
            else:
                for r in todo:
                    results[(r.topic, r.partition)] = await self._read(r, budget)
            left = deadline - self.loop.time()
            if budget.satisfied or left <= 0 or not reads or any(
                    results[(r.topic, r.partition)].error_code for r in reads):
                session_id, include = ctx.respond(results, self.loop.time())
                return fetch_h.build(results, include, session_id)
            todo = await self._wait_any(reads, results, left)

    async def _read(self, r: fetch_h.PartitionRead, budget: fetch_h.FetchBudget
                    ) -> papi.ReadResult:
        limit = budget.limit(r)
        res = self._from_board(r, limit) if r.core != self.router.core else None
        if res is None:
            res = await self._read_partition(r, limit)
        if res.records:
            budget.take(len(res.records))
        return res

    def _from_board(self, r: fetch_h.PartitionRead, limit: int) -> papi.ReadResult | None:
        """A remote partition's answer without a round trip to its core, when the watermark
        board has it: the batches its leader pushed after our last read armed it, or, while it
        stays armed at this offset, nothing new (see watermarks.py)."""
        if r.topic_id is None or limit <= 0 or r.leader_epoch > TERM:
            return None
        tp = (r.topic, r.partition)
        pushed = self.watermarks.take(tp, r.offset, r.topic_id)
        if pushed is not None:
            return papi.ReadResult(0, pushed.high_watermark, pushed.log_start_offset,
                                      fetch_h.clip(pushed.records, limit))
        start = self.watermarks.armed(tp, r.offset, r.topic_id,
                                      self.router.transport.generation(r.core), self.loop.time())
        if start is None:
            return None
        return papi.ReadResult(0, self.watermarks.known.get(tp, r.offset), start, b"")

    async def _read_partition(self, r: fetch_h.PartitionRead, limit: int
                              ) -> papi.ReadResult:
        remote = r.core != self.router.core
        # The reply crosses a shared-memory ring: keep it well inside one frame.
        limit = min(limit, MAX_REMOTE_READ) if remote else limit
        generation = self.router.transport.generation(r.core) if remote else 0
        try:
            res: papi.ReadResult = await self.ask_partition(
                r.topic, r.partition, r.core,
                Read(r.offset, limit, r.leader_epoch, remote, self.router.core))
        except (pykka.ActorDeadError, CoreDiedError):
            return papi.ReadResult(ErrorCode.NOT_LEADER_OR_FOLLOWER)
        tp = (r.topic, r.partition)
        self.watermarks.read(tp, res.high_watermark)
        if (remote and r.topic_id is not None and not res.error_code and not res.records
                and limit > 0 and r.offset >= res.high_watermark):
            # The leader armed for this core (partition_leader._read): the same condition.
            self.watermarks.arm(tp, r.offset, r.topic_id, generation, res.log_start_offset,
                                self.loop.time())
        return res

    async def _wait_any(self, reads: list[fetch_h.PartitionRead],
                        results: dict[tuple[str, int], papi.ReadResult], left: float
                        ) -> list[fetch_h.PartitionRead]:
        """Park on this core's watermark watch (the reads subscribed it to every partition)
        until one has data past what was read, or time is up; return the partitions that have
        (none after a timeout): only they need reading again."""
        wanted = [((r.topic, r.partition),
                   max(r.offset, results[(r.topic, r.partition)].high_watermark))
                  for r in reads]
        await self.watermarks.wait_any(wanted, left)
        known = self.watermarks.known
        return [r for r, (tp, offset) in zip(reads, wanted, strict=True)
                if known.get(tp, -1) > offset]

    # -- groups --------------------------------------------------------------------------------
    async def _groups_topic(self) -> TopicInfo:
        info = self.topics.get(GROUPS_TOPIC)
        if info is None:
            spec = create_topics.TopicSpec(GROUPS_TOPIC, self.router.ncores, ())
            await resolve(self.router.ref(0, CONTROLLER).ask(
                CreateTopics((spec,), False), block=False))
            info = (await self.topic_infos([GROUPS_TOPIC]))[0][GROUPS_TOPIC]
        if info is None:
            raise pykka.ActorDeadError(f"{GROUPS_TOPIC} does not exist")
        return info

    async def group_call(self, group_id: str, method: str, request: Any) -> Any:
        """Ask the coordinator of `group_id` (its `__consumer_offsets` partition's host)."""
        info = await self._groups_topic()
        return await self._host_call(info, partition_for(group_id, info.partitions), method,
                                     request)

    async def _host_call(self, info: TopicInfo, p: int, method: str, request: Any) -> Any:
        core = info.cores[p]
        name = group_host_name(p)
        if name not in self.ensured:
            await resolve(self.router.ref(core, MANAGER).ask(
                EnsureGroupHost(p, info.partitions), block=False))
            self.ensured.add(name)
        try:
            return await resolve(self.router.ref(core, name).ask(GroupCall(method, request),
                                                                block=False))
        except pykka.ActorDeadError:
            self.ensured.discard(name)
            raise

    def find_coordinator(self, request: Any, version: int) -> Any:
        return find_coordinator.handle(request, version, self.broker)

    async def join_group(self, request: Any, version: int, client_id: str = "") -> Any:
        try:
            result = await self.group_call(request.group_id, "join_group",
                                           join_group.to_api(request, version, client_id))
        except _UNAVAILABLE:
            result = JoinGroupResult(ErrorCode.NOT_COORDINATOR)
        return join_group.build(result, version)

    async def sync_group(self, request: Any, version: int) -> Any:
        try:
            result = await self.group_call(request.group_id, "sync_group",
                                           sync_group.to_api(request, version))
        except _UNAVAILABLE:
            result = SyncGroupResult(ErrorCode.NOT_COORDINATOR)
        return sync_group.build(result, version)

    async def heartbeat(self, request: Any, version: int) -> Any:
        try:
            result = await self.group_call(request.group_id, "heartbeat",
                                           heartbeat.to_api(request, version))
        except _UNAVAILABLE:
            result = HeartbeatResult(ErrorCode.NOT_COORDINATOR)
        return heartbeat.build(result, version)

    async def leave_group(self, request: Any, version: int) -> Any:
        try:
            result = await self.group_call(request.group_id, "leave_group",
                                           leave_group.to_api(request, version))
        except _UNAVAILABLE:
            result = LeaveGroupResult(ErrorCode.NOT_COORDINATOR)
        return leave_group.build(result, version)

    async def offset_commit(self, request: Any, version: int) -> Any:
        api = offset_commit.to_api(request, version)
        try:
            result = await self.group_call(request.group_id, "offset_commit", api)
        except _UNAVAILABLE:
            result = OffsetCommitResult(tuple(
                PartitionError(p.topic, p.partition, ErrorCode.NOT_COORDINATOR)
                for p in api.partitions))
        return offset_commit.build(request, result)

    async def offset_fetch(self, request: Any, version: int) -> Any:
        groups = []
        for api in offset_fetch.to_api(request, version):
            group_id = api.groups[0].group_id
            try:
                result = await self.group_call(group_id, "offset_fetch", api)
                groups.append(result.groups[0])
            except _UNAVAILABLE:
                groups.append(OffsetFetchGroupResult(group_id, ErrorCode.NOT_COORDINATOR))
        return offset_fetch.build(groups, version)

    async def describe_groups(self, request: Any, version: int) -> Any:
        groups = []
        for api in describe_groups.to_api(request, version):
            try:
                result = await self.group_call(api.group_ids[0], "describe_groups", api)
                groups.append(result.groups[0])
            except _UNAVAILABLE:
                groups.append(DescribedGroup(api.group_ids[0], ErrorCode.NOT_COORDINATOR))
        return describe_groups.build(groups, version)

    async def list_groups(self, request: Any, version: int) -> Any:
        """Every `__consumer_offsets` partition's coordinator lists its own groups."""
        api = list_groups.to_api(request, version)
        try:
            info = await self._groups_topic()
        except _UNAVAILABLE:
            return list_groups.build([ListGroupsResult(ErrorCode.COORDINATOR_NOT_AVAILABLE)],
                                     version)
        results = []
        for p in range(info.partitions):
            try:
                results.append(await self._host_call(info, p, "list_groups", api))
            except _UNAVAILABLE:
                results.append(ListGroupsResult(ErrorCode.COORDINATOR_NOT_AVAILABLE))
        return list_groups.build(results, version)

    async def delete_groups(self, request: Any, version: int) -> Any:
        results = []
        for api in delete_groups.to_api(request, version):
            try:
                result = await self.group_call(api.group_ids[0], "delete_groups", api)
                results.append(result.results[0])
            except _UNAVAILABLE:
                results.append(GroupDeletion(api.group_ids[0], ErrorCode.NOT_COORDINATOR))
        return delete_groups.build(results, version)

    async def delete_records(self, request: Any, version: int) -> Any:
        infos, unsure = await self.topic_infos([t.name for t in request.topics])
        trims, results = delete_records.plan(request, infos)
        not_leader_if_unsure(results, unsure, lambda _tp: papi.TrimResult(_NOT_LEADER))
        for t in trims:
            try:
                results[(t.topic, t.partition)] = await self.ask_partition(
                    t.topic, t.partition, t.core, TrimPrefix(t.offset))
            except (pykka.ActorDeadError, CoreDiedError):
                results[(t.topic, t.partition)] = papi.TrimResult(
                    ErrorCode.NOT_LEADER_OR_FOLLOWER)
        return delete_records.build(request, results)

    async def offset_for_leader_epoch(self, request: Any, version: int) -> Any:
        infos, unsure = await self.topic_infos([t.topic for t in request.topics])
        queries, results = offset_for_leader_epoch.plan(request, infos)
        not_leader_if_unsure(results, unsure,
                             lambda tp: offset_for_leader_epoch.answer(tp[1], _NOT_LEADER, -1))
        for q in queries:
            try:
                hw = await self.ask_partition(q.topic, q.partition, q.core,
                                              QueryOffset(papi.LATEST))
                results[(q.topic, q.partition)] = offset_for_leader_epoch.answer(
                    q.partition, hw.error_code, hw.offset)
            except (pykka.ActorDeadError, CoreDiedError):
                results[(q.topic, q.partition)] = offset_for_leader_epoch.answer(
                    q.partition, ErrorCode.NOT_LEADER_OR_FOLLOWER, -1)
        return offset_for_leader_epoch.build(request, results)

    async def list_offsets(self, request: Any, version: int) -> Any:
        infos, unsure = await self.topic_infos([t.name for t in request.topics])
        queries, results = list_offsets.plan(request, version, infos)
        not_leader_if_unsure(results, unsure, lambda _tp: papi.OffsetAnswer(_NOT_LEADER))
        for q in queries:
            try:
                results[(q.topic, q.partition)] = await self.ask_partition(
                    q.topic, q.partition, q.core, QueryOffset(q.timestamp))
            except (pykka.ActorDeadError, CoreDiedError):
                results[(q.topic, q.partition)] = papi.OffsetAnswer(
                    ErrorCode.NOT_LEADER_OR_FOLLOWER)
        return list_offsets.build(request, version, results)


def _listen_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


async def setup_core(config: BrokerConfig, ctx: CoreContext) -> None:
    """The runtime's per-core setup (`functools.partial(setup_core, config)`)."""
    loop = ctx.loop
    coordinator = FlushCoordinator()
    writer = DiskWriter.start(coordinator, BatchCache(config.batch_cache_bytes))
    ctx.router.register("disk-writer", writer)
    groups = GroupConfig(initial_rebalance_delay_ms=config.initial_rebalance_delay_ms)
    manager = PartitionManager.start(ctx.router, config.data_dir, coordinator, writer, loop,
                                     groups, config.retention_check_s)
    ctx.router.register(MANAGER, manager)
    topics: dict[str, TopicInfo] = {}
    ctx.router.register(TOPIC_CACHE, TopicCache.start(topics))
    watermarks = Watermarks()
    ctx.router.register(WATERMARKS, WatermarkWatch.start(watermarks))
    if ctx.core == 0:
        kv = await writer.ask(OpenKv(os.path.join(config.data_dir, "meta")), block=False)
        controller = TopicController.start(ctx.router, kv, coordinator, writer, loop)
        ctx.router.register(CONTROLLER, controller)
    core = BrokerCore(config, ctx, topics, watermarks)
    sock = _listen_socket(config.host, config.port)
    idle_s = config.connections_max_idle_ms / 1000 or None
    await loop.create_server(lambda: KafkaSession(core, idle_s=idle_s), sock=sock)
    _log.info("kafka_listening", host=config.host, port=config.port)
    # Fill the topic cache now (a restarted core has none), so that it can answer for the
    # node's topics should core 0 restart later; at a node's start core 0 may not be up yet,
    # and then the cache fills as requests look topics up.
    core.seeding = loop.create_task(core.lookup(None))
