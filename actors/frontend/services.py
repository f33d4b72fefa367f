"""What every request path of a core shares: its topic cache, the way to a partition's owner,
the flow-control bounds, the fetch sessions; and the core's side of a kafka-session.

Concern: `CoreServices`, one per core (created by `setup_core`, lives as long as the core's
listener): topic lookups (the controller's answer refreshes the core's cache; while the
controller cannot answer, the cache answers), opening a partition on its owning core before
asking it (`ensure`), asking a partition with the one "owner gone" fallback
(NOT_LEADER_OR_FOLLOWER), and dispatching a session's requests through the registry
(`SessionHost`). Must not know: what any one API does (its frontend module), the bytes of a
connection, storage.
"""

from __future__ import annotations

import asyncio
import random
from typing import Protocol, overload

import pykka

from redshank.actors._async import resolve
from redshank.actors.flow_control import ByteSemaphore, RequestMemory
from redshank.actors.frontend._registry import REGISTRY
from redshank.actors.partition_leader import partition_name
from redshank.actors.partition_manager import MANAGER, Ensure, TopicDeletedError
from redshank.actors.runtime import CoreContext, CoreDiedError, LoopFuture
from redshank.actors.topic_controller import CONTROLLER, Lookup, LookupResult
from redshank.actors.watermarks import Watermarks
from redshank.cluster.kafka import LeadersTable, TopicInfo, TopicPartition
from redshank.cluster.kafka.fetch_session import FetchSessionCache
from redshank.cluster.kafka.handlers.metadata import BrokerAddress
from redshank.cluster.kafka.handlers.produce import PartitionWrite
from redshank.cluster.partition.api import (
    Append,
    EpochEnd,
    OffsetAnswer,
    PartitionResult,
    QueryOffset,
    Read,
    ReadResult,
    TrimPrefix,
    TrimResult,
)
from redshank.protocol.error_codes import ErrorCode

__all__ = ["OWNER_GONE", "READ_OWNER_GONE", "UNREACHABLE", "CoreServices", "FrontendConfig"]

# A partition's owner cannot answer: its core died (with the request in its ring, perhaps) or
# its leader stopped. The partition answers NOT_LEADER_OR_FOLLOWER: clients refresh metadata
# and retry, as for a partition this broker does not lead.
OWNER_GONE = (pykka.ActorDeadError, CoreDiedError)
_NOT_LEADER = ErrorCode.NOT_LEADER_OR_FOLLOWER
READ_OWNER_GONE = ReadResult(_NOT_LEADER)
_GONE: dict[type, ReadResult | OffsetAnswer | TrimResult] = {
    Read: READ_OWNER_GONE,
    QueryOffset: OffsetAnswer(_NOT_LEADER),
    EpochEnd: OffsetAnswer(_NOT_LEADER),
    TrimPrefix: TrimResult(_NOT_LEADER),
}
_ANSWERS = (ReadResult, OffsetAnswer, TrimResult)
# The topic controller cannot answer a lookup: its core is dead or restarting (no actor yet), or
# it does not answer in time (a stopped or stuck core 0).
UNREACHABLE = (pykka.ActorDeadError, TimeoutError)


class FrontendConfig(Protocol):
    """What the request paths read of the broker's configuration (`BrokerConfig` is one)."""

    @property
    def node_id(self) -> int: ...
    @property
    def advertised_host(self) -> str: ...
    @property
    def advertised_port(self) -> int: ...
    @property
    def auto_create_topics(self) -> bool: ...
    @property
    def default_partitions(self) -> int: ...
    @property
    def produce_memory_bytes(self) -> int: ...
    @property
    def request_memory_bytes(self) -> int: ...
    @property
    def fetch_partition_max_bytes(self) -> int: ...
    @property
    def fetch_session_slots(self) -> int: ...
    @property
    def controller_timeout_s(self) -> float: ...
    @property
    def auto_create_topics_per_request(self) -> int: ...
    # The rest: what DescribeConfigs of a broker lists (`broker_configs.BrokerSettings`).
    @property
    def default_replication_factor(self) -> int | None: ...
    @property
    def explicit_configs(self) -> frozenset[str]: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def data_dir(self) -> str: ...
    @property
    def connections_max_idle_ms(self) -> int: ...
    @property
    def retention_check_s(self) -> float: ...
    @property
    def initial_rebalance_delay_ms(self) -> int: ...


class CoreServices:
    """Per-core state shared by the sessions of that core and the request paths they run."""

    def __init__(self, config: FrontendConfig, ctx: CoreContext,
                 topics: dict[str, TopicInfo] | None = None,
                 watermarks: Watermarks | None = None,
                 leaders: LeadersTable | None = None) -> None:
        self.config = config
        self.ctx = ctx
        self.router = ctx.router
        self.loop = ctx.loop
        # Shared with the core's TopicCache actor, which the topic controller keeps current.
        self.topics: dict[str, TopicInfo] = {} if topics is None else topics
        # Shared with the core's WatermarkWatch, which the partition leaders tell.
        self.watermarks = Watermarks() if watermarks is None else watermarks
        # Shared with the core's TopicCache, which applies the leaders' epoch announcements.
        self.leaders = LeadersTable() if leaders is None else leaders
        self.ensured: set[str] = set()
        self.cluster_id: str | None = None  # the controller's, from the last lookup it answered
        # The node has seeds: topics are created through the controller (group 0).
        self.cluster_mode = False
        self.broker = BrokerAddress(config.node_id, config.advertised_host,
                                    config.advertised_port)
        self.sessions = 0
        self.produce_memory = ByteSemaphore(config.produce_memory_bytes)
        self.request_memory = RequestMemory(config.request_memory_bytes)
        self.fetch_sessions = FetchSessionCache(
            config.fetch_session_slots, ctx.core, ctx.router.ncores, random.Random())
        self.seeding: asyncio.Task[LookupResult] | None = None
        # What ApiVersions advertises and a session accepts: exactly the registry's keys.
        self.served: frozenset[int] = frozenset(REGISTRY)
        self.two_phase: frozenset[int] = frozenset(
            key for key, h in REGISTRY.items() if h.two_phase)

    # -- the session's side (kafka_session.SessionHost) ----------------------------------------
    def handle(self, api_key: int, version: int, request: object, client_id: str) -> object:
        """The response, or an awaitable of it (two-phase: of the response's future)."""
        h = REGISTRY[api_key]
        if h.client_id:
            return h.serve(self, request, version, client_id)
        return h.serve(self, request, version)

    # -- topics --------------------------------------------------------------------------------
    async def ask_controller(self, msg: object) -> object:
        """Ask the node's topic controller (core 0)."""
        answer: object = await resolve(self.router.ref(0, CONTROLLER).ask(msg, block=False))
        return answer

    async def lookup(self, names: tuple[str, ...] | None, create: tuple[str, ...] = ()
                     ) -> LookupResult:
        """The controller's answer, which refreshes this core's cache; while the controller
        cannot answer (core 0 restarting or stopped), the cache's: the topics it holds, and
        every other asked name `not_ready` (not known to exist or not)."""
        msg = Lookup(names, create, self.config.default_partitions,
                     self.config.auto_create_topics_per_request)
        try:
            result = await asyncio.wait_for(self.ask_controller(msg),
                                            self.config.controller_timeout_s)
        except UNREACHABLE:
            return self._cached(names)
        assert isinstance(result, LookupResult)
        self.cluster_id = result.cluster_id
        for name, info in result.topics.items():
            if name not in result.not_ready:
                self.topics[name] = info
        # What the controller says does not exist is forgotten (deleted through another core).
        gone = self.topics.keys() - result.topics.keys() if names is None else (
            n for n in names if n not in result.topics)
        for name in list(gone):
            known = self.topics.get(name)
            if known is not None and not known.replicated:  # group 0's: not this table's
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
    async def ensure(self, topic: str, partition: int, core: int) -> str:
        """The partition's actor name, once its owning core has opened it."""
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

    @overload
    async def ask_partition(self, tp: TopicPartition, core: int, msg: Read) -> ReadResult: ...
    @overload
    async def ask_partition(self, tp: TopicPartition, core: int, msg: QueryOffset | EpochEnd
                            ) -> OffsetAnswer: ...
    @overload
    async def ask_partition(self, tp: TopicPartition, core: int, msg: TrimPrefix
                            ) -> TrimResult: ...

    async def ask_partition(self, tp: TopicPartition, core: int,
                            msg: Read | QueryOffset | EpochEnd | TrimPrefix
                            ) -> ReadResult | OffsetAnswer | TrimResult:
        """The partition's answer; NOT_LEADER_OR_FOLLOWER when its owner is gone (for a Read:
        `READ_OWNER_GONE` itself)."""
        try:
            name = await self.ensure(tp.topic, tp.partition, core)
            try:
                answer: object = await resolve(self.router.ref(core, name).ask(msg, block=False))
            except pykka.ActorDeadError:
                # The owner restarted (its leaders are gone): open the partition again, once.
                self.ensured.discard(name)
                name = await self.ensure(tp.topic, tp.partition, core)
                answer = await resolve(self.router.ref(core, name).ask(msg, block=False))
        except OWNER_GONE:
            return _GONE[type(msg)]
        assert isinstance(answer, _ANSWERS)
        return answer

    async def append_two_phase(self, w: PartitionWrite, acks: int) -> tuple[
            LoopFuture[PartitionResult], LoopFuture[PartitionResult]]:
        """(sequenced, acked) futures of an append handed to the partition's owner."""
        name = await self.ensure(w.tp.topic, w.tp.partition, w.core)
        records = w.records  # a view: the ring copies it (partition_codecs)
        return self.router.ref(w.core, name).ask_two_phase(Append(records, acks, w.producer))

    def owner_gone(self, tp: TopicPartition, exc: BaseException) -> PartitionResult:
        """A produce whose partition's owner went away: reopened by the next request."""
        self.ensured.discard(partition_name(tp.topic, tp.partition))
        return PartitionResult(_NOT_LEADER, error_message=str(exc))

