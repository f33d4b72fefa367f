"""Topic APIs: metadata, create and delete topics, grow partitions, configs, producer ids.

Concern: the request paths answered by the node's topic controller (core 0) and this core's
topic cache: what is asked of the controller, what the cache forgets once the controller has
answered (a deleted or grown topic is looked up again), and what is answered while the
controller cannot be reached. In cluster mode the controller's topics (Raft group 0, through
the node's `ControllerService` on core 0) are created, auto-created, grown, reconfigured and
described there, producer ids come from its blocks, and the node's own topic controller answers
only for the names group 0 does not hold (it never auto-creates one). Must not know: topic
records and how they are stored (`actors/topic_controller`, `cluster/controller`), the wire
shapes (`cluster/kafka/handlers`).
"""

from __future__ import annotations

import asyncio

from redshank.actors._async import resolve
from redshank.actors.controller_service import (
    CONTROLLER_SERVICE,
    AllocateClusterProducerId,
    DescribeTopics,
    ProposeConfigs,
    ProposeDeletes,
    ProposeGrows,
    ProposeTopics,
    TopicConfigs,
)
from redshank.actors.frontend._registry import serves
from redshank.actors.frontend._txn_coordinators import call as txn_call
from redshank.actors.frontend.services import UNREACHABLE, CoreServices
from redshank.actors.partition_leader import partition_name
from redshank.actors.topic_controller import (
    AllocateProducerId,
    AlterTopicConfigs,
    CreatePartitions,
    CreateTopics,
    DeleteTopics,
)
from redshank.cluster.controller.placement import DEFAULT_REPLICATION_FACTOR
from redshank.cluster.kafka import TopicInfo
from redshank.cluster.kafka import handlers as h
from redshank.cluster.kafka.broker_configs import BrokerSettings
from redshank.cluster.kafka.topic_configs import ConfigChange
from redshank.cluster.txn.api import InitProducerIdResult
from redshank.protocol import messages as m
from redshank.protocol.api_versions import ApiKey
from redshank.protocol.error_codes import ErrorCode

__all__ = ["allocate_producer_id", "allocate_producer_ids"]


async def _service(core: CoreServices, msg: object, timeout: float | None = None) -> object:
    """Ask the node's controller service (core 0); `timeout`: raise TimeoutError past it."""
    ask = resolve(core.router.ref(0, CONTROLLER_SERVICE).ask(msg, block=False))
    answer: object = await (ask if timeout is None else asyncio.wait_for(ask, timeout))
    return answer


async def _describe(core: CoreServices, names: tuple[str, ...] | None
                    ) -> h.metadata.ClusterView | None:
    try:
        view = await _service(core, DescribeTopics(names), core.config.controller_timeout_s)
    except UNREACHABLE:
        return None
    assert isinstance(view, h.metadata.ClusterView)
    return view


@serves(ApiKey.METADATA)
async def metadata(core: CoreServices, request: m.metadata.MetadataRequest, version: int
                   ) -> m.metadata.MetadataResponse:
    q = h.metadata.query(request, version, core.config.auto_create_topics)
    cluster: h.metadata.ClusterView | None = None
    if core.cluster_mode:
        # The controller's topics and brokers; the node's own topic table answers the rest.
        cluster = await _describe(core, q.names)
        if cluster is not None and await _auto_create(core, q, cluster):
            cluster = await _describe(core, q.names)
    local = q if cluster is None else h.metadata.local_query(q, cluster)
    if core.cluster_mode:  # auto-created by the controller only, never in the node's table
        local = h.metadata.MetadataQuery(local.names, ())
    result = await core.lookup(local.names, local.create)
    # Partitions whose core is down (dead, or restarting) have no leader right now.
    offline = frozenset(c for c in range(core.router.ncores) if not core.ctx.core_up(c))
    response = h.metadata.build(request, version, core.broker, result.cluster_id or None, local,
                                result.topics, result.not_ready, offline, core.leaders)
    return response if cluster is None else h.metadata.with_cluster(response, q, cluster)


@serves(ApiKey.DESCRIBE_TOPIC_PARTITIONS)
async def describe_topic_partitions(
        core: CoreServices,
        request: m.describe_topic_partitions.DescribeTopicPartitionsRequest, version: int
        ) -> m.describe_topic_partitions.DescribeTopicPartitionsResponse:
    """KIP-966, answered from what Metadata answers (never auto-creating), paged."""
    dtp = h.describe_topic_partitions
    if dtp.refused(request) is not None:
        return dtp.invalid(request)
    answer = await metadata(core, dtp.metadata_request(request), dtp.METADATA_VERSION)
    return dtp.build(request, answer)


async def _auto_create(core: CoreServices, q: h.metadata.MetadataQuery,
                       cluster: h.metadata.ClusterView) -> bool:
    """Cluster mode: propose the missing topics Metadata may auto-create (at most
    `auto_create_topics_per_request`), with the default partitions and replication factor.
    True if any was created (the view is then asked again)."""
    missing = [n for n in q.create if n not in cluster.topics]
    missing = missing[:core.config.auto_create_topics_per_request]
    if not missing:
        return False
    specs = tuple(h.create_topics.TopicSpec(n, core.config.default_partitions, ())
                  for n in missing)
    try:
        rf = (_replication(core, -1),) * len(specs)
        answer = await _service(core, ProposeTopics(specs, rf))
    except UNREACHABLE:
        return False
    assert isinstance(answer, dict)
    return any(o.error_code == ErrorCode.NONE for o in answer.values())


def _replication(core: CoreServices, asked: int) -> int:
    """The replication factor of a new controller topic: `asked`, or (-1) the node's
    default.replication.factor when set (else -1: the controller's rule)."""
    configured = core.config.default_replication_factor
    return configured if asked == -1 and configured is not None else asked


@serves(ApiKey.CREATE_TOPICS)
async def create_topics(core: CoreServices, request: m.create_topics.CreateTopicsRequest,
                        version: int) -> m.create_topics.CreateTopicsResponse:
    specs, errors = h.create_topics.plan(request, core.config.default_partitions,
                                         replicated=core.cluster_mode)
    outcomes: dict[str, h.create_topics.CreateOutcome] = {}
    if specs and core.cluster_mode:
        # Cluster mode: the controller (group 0) places and creates; the node's own topic
        # controller is not asked (the controller backend opens the replicas).
        rf = {t.name: _replication(core, t.replication_factor) for t in request.topics}
        msg = ProposeTopics(tuple(specs), tuple(rf[s.name] for s in specs), request.validate_only)
        answer = await _service(core, msg)
        assert isinstance(answer, dict)
        return h.create_topics.build(request, errors, answer)
    if specs:
        answer = await core.ask_controller(CreateTopics(tuple(specs), request.validate_only))
        assert isinstance(answer, dict)
        outcomes = answer
    return h.create_topics.build(request, errors, outcomes)


@serves(ApiKey.DELETE_TOPICS)
async def delete_topics(core: CoreServices, request: m.delete_topics.DeleteTopicsRequest,
                        version: int) -> m.delete_topics.DeleteTopicsResponse:
    targets = h.delete_topics.plan(request, version)
    ours: list[h.delete_topics.DeleteOutcome | None] = [None] * len(targets)
    if core.cluster_mode:  # the controller deletes its topics; the node's table the others
        ours = await resolve(core.router.ref(0, CONTROLLER_SERVICE).ask(
            ProposeDeletes(tuple(targets)), block=False))
    rest = [t for t, o in zip(targets, ours, strict=True) if o is None]
    answered: list[h.delete_topics.DeleteOutcome] = []
    if rest:
        answer = await core.ask_controller(DeleteTopics(tuple(rest)))
        assert isinstance(answer, list)
        answered = answer
    local = iter(answered)
    outcomes = [o if o is not None else next(local) for o in ours]
    for o in outcomes:
        if o.error_code == ErrorCode.NONE and o.name is not None:
            core.topics.pop(o.name, None)
            prefix = partition_name(o.name, 0)[:-1]  # "partition/<topic>/"
            core.ensured = {n for n in core.ensured if not n.startswith(prefix)}
    return h.delete_topics.build(outcomes, version)


@serves(ApiKey.CREATE_PARTITIONS)
async def create_partitions(core: CoreServices,
                            request: m.create_partitions.CreatePartitionsRequest, version: int
                            ) -> m.create_partitions.CreatePartitionsResponse:
    grows, refused = h.create_partitions.plan(request)
    ours: list[h.create_partitions.GrowOutcome | None] = [None] * len(grows)
    if grows and core.cluster_mode:  # the controller grows its topics; the node's table the rest
        answer = await _service(core, ProposeGrows(tuple(grows), request.validate_only))
        assert isinstance(answer, list)
        ours = answer
    rest = [g for g, o in zip(grows, ours, strict=True) if o is None]
    outcomes: list[h.create_partitions.GrowOutcome] = []
    if rest:
        answer = await core.ask_controller(
            CreatePartitions(tuple(rest), request.validate_only, core.broker.node_id))
        assert isinstance(answer, list)
        outcomes = answer
        for o in outcomes:
            core.topics.pop(o.name, None)  # looked up again with its new partitions
    # The controller's grown topics reach every core's cache from the controller backend.
    outcomes += [o for o in ours if o is not None]
    return h.create_partitions.build(refused + outcomes, version)


@serves(ApiKey.DESCRIBE_CONFIGS)
async def describe_configs(core: CoreServices,
                           request: m.describe_configs.DescribeConfigsRequest, version: int
                           ) -> m.describe_configs.DescribeConfigsResponse:
    names = h.describe_configs.topic_names(request)
    found: dict[str, TopicInfo] = {}
    if names and core.cluster_mode:  # the controller's topics: as its state machine has them
        try:
            answer = await _service(core, TopicConfigs(names), core.config.controller_timeout_s)
        except UNREACHABLE:
            answer = {}
        assert isinstance(answer, dict)
        found.update(answer)
    rest = tuple(n for n in names if n not in found)
    # Asked of the controller, not this core's cache: configs change under it.
    if rest:
        found.update((await core.lookup(rest)).topics)
    return h.describe_configs.build(request, version, {n: found.get(n) for n in names},
                                    _settings(core))


def _settings(core: CoreServices) -> BrokerSettings:
    """This node's settings under their Kafka names (DescribeConfigs of a broker)."""
    c = core.config
    rf = c.default_replication_factor
    if rf is None:
        rf = DEFAULT_REPLICATION_FACTOR if core.cluster_mode else 1
    return BrokerSettings(
        node_id=core.broker.node_id, listener=f"{c.host}:{c.port}",
        advertised=f"{c.advertised_host}:{c.advertised_port}", data_dir=c.data_dir,
        default_partitions=c.default_partitions, default_replication_factor=rf,
        auto_create_topics=c.auto_create_topics,
        connections_max_idle_ms=c.connections_max_idle_ms,
        queued_max_request_bytes=c.request_memory_bytes,
        retention_check_ms=round(c.retention_check_s * 1000),
        initial_rebalance_delay_ms=c.initial_rebalance_delay_ms,
        fetch_session_slots=c.fetch_session_slots, explicit=c.explicit_configs)


@serves(ApiKey.ALTER_CONFIGS)
async def alter_configs(core: CoreServices, request: m.alter_configs.AlterConfigsRequest,
                        version: int) -> m.alter_configs.AlterConfigsResponse:
    changes, decided = h.alter_configs.plan(request, core.broker.node_id)
    by_topic = await _alter(core, changes, request.validate_only)
    return h.alter_configs.build(request, decided, by_topic)


@serves(ApiKey.INCREMENTAL_ALTER_CONFIGS)
async def incremental_alter_configs(
        core: CoreServices,
        request: m.incremental_alter_configs.IncrementalAlterConfigsRequest, version: int
        ) -> m.incremental_alter_configs.IncrementalAlterConfigsResponse:
    changes, decided = h.incremental_alter_configs.plan(request, core.broker.node_id)
    by_topic = await _alter(core, changes, request.validate_only)
    return h.incremental_alter_configs.build(request, decided, by_topic)


async def _alter(core: CoreServices, changes: list[ConfigChange], validate_only: bool
                 ) -> dict[str, h.alter_configs.AlterOutcome]:
    out: dict[str, h.alter_configs.AlterOutcome] = {}
    if changes and core.cluster_mode:  # the controller's topics; the node's table the rest
        answer = await _service(core, ProposeConfigs(tuple(changes), validate_only))
        assert isinstance(answer, dict)
        out.update(answer)
    rest = tuple(c for c in changes if c.topic not in out)
    if rest:
        answer = await core.ask_controller(AlterTopicConfigs(rest, validate_only))
        assert isinstance(answer, dict)
        out.update(answer)
    return out


@serves(ApiKey.INIT_PRODUCER_ID)
async def init_producer_id(core: CoreServices,
                           request: m.init_producer_id.InitProducerIdRequest, version: int
                           ) -> m.init_producer_id.InitProducerIdResponse:
    """An idempotent producer's id from the controller; a transactional id's from its
    transaction coordinator (which fences the previous producer of that id)."""
    if not h.init_producer_id.wants_id(request):
        asked = h.init_producer_id.to_api(request, version)
        if isinstance(asked, InitProducerIdResult):  # malformed: answered at once
            return h.init_producer_id.build_txn(asked, version)
        assert request.transactional_id
        result = await txn_call(core, request.transactional_id, asked,
                                InitProducerIdResult(ErrorCode.NOT_COORDINATOR))
        return h.init_producer_id.build_txn(result, version)
    return h.init_producer_id.build(request, await allocate_producer_id(core))


async def allocate_producer_id(core: CoreServices) -> int | None:
    """A producer id unique in the cluster (single node: in the node), or None while the
    controller cannot give one (core 0 restarting: COORDINATOR_NOT_AVAILABLE, clients retry)."""
    pids = await allocate_producer_ids(core, 1)
    return None if not pids else pids.start


async def allocate_producer_ids(core: CoreServices, count: int) -> range | None:
    """Up to `count` contiguous producer ids unique in the cluster (fewer in cluster mode when
    the node's block runs out first), or None while the controller cannot give any."""
    try:
        if core.cluster_mode:  # from the node's block, cut by the controller: unique cluster-wide
            pids = await _service(core, AllocateClusterProducerId(count),
                                  core.config.controller_timeout_s)
        else:
            pids = await asyncio.wait_for(core.ask_controller(AllocateProducerId(count)),
                                          core.config.controller_timeout_s)
    except UNREACHABLE:
        return None
    assert pids is None or isinstance(pids, range)
    return pids
