"""The internal coordinator topics (`__consumer_offsets`, `__transaction_state`), created on
first use.

Concern: `local_topic`, single node: the topic, created through this node's controller with a
partition per core, a request arriving while another core's creates it waiting for it; and
`cluster_view`, cluster mode: the controller's view of the topic with its partitions' leaders,
proposing it (a fixed partition count, replicated on min(max, active brokers) nodes) on first
use. A support module of the frontends (`groups`, `_txn_coordinators`). Must not know: what the
topics hold (groups, transactions), the wire shapes, Raft.
"""

from __future__ import annotations

import asyncio

import pykka
from structlog.typing import FilteringBoundLogger

from redshank.actors._async import resolve
from redshank.actors.controller_service import CONTROLLER_SERVICE, DescribeTopics, ProposeTopics
from redshank.actors.frontend.services import UNREACHABLE, CoreServices
from redshank.actors.topic_controller import CreateTopics
from redshank.cluster.kafka import TopicInfo
from redshank.cluster.kafka import handlers as h
from redshank.protocol.error_codes import ErrorCode

__all__ = ["cluster_view", "local_topic"]


async def local_topic(core: CoreServices, topic: str) -> TopicInfo:
    """Single node: `topic`, created on first use. A request that arrives while another core's
    request is creating it waits (up to the controller timeout) for the topic instead of
    answering NOT_COORDINATOR: a client told that backs off before it asks again (librdkafka:
    ~3 s, so a second consumer started with the first missed its generation)."""
    info = core.topics.get(topic)
    if info is not None:
        return info
    spec = h.create_topics.TopicSpec(topic, core.router.ncores, ())
    await core.ask_controller(CreateTopics((spec,), False))
    deadline = asyncio.get_running_loop().time() + core.config.controller_timeout_s
    delay = 0.005
    while True:
        infos, unsure = await core.topic_infos([topic])
        found = infos[topic]
        if found is not None:
            return found
        if topic not in unsure or asyncio.get_running_loop().time() + delay > deadline:
            raise pykka.ActorDeadError(f"{topic} does not exist")
        await asyncio.sleep(delay)  # being created by another core's request: ready in ms
        delay = min(delay * 2, 0.1)


async def cluster_view(core: CoreServices, topic: str, partitions: int, max_replication: int,
                       log: FilteringBoundLogger, created_event: str
                       ) -> h.metadata.ClusterView | None:
    """Cluster mode: the controller's view of `topic` with its partitions' leaders; None while
    it cannot say, or the topic is still being created (through the controller, here, on first
    use: `partitions` of them, replicated on min(`max_replication`, active brokers) nodes,
    `created_event` logged when this call created it)."""
    timeout = core.config.controller_timeout_s
    service = core.router.ref(0, CONTROLLER_SERVICE)
    try:
        view = await asyncio.wait_for(resolve(service.ask(
            DescribeTopics((topic,)), block=False)), timeout)
    except UNREACHABLE:
        return None
    assert isinstance(view, h.metadata.ClusterView)
    if topic in view.topics:
        return view
    if not view.brokers:  # no controller state here (yet): nothing to create it with
        return None
    rf = min(max_replication, len(view.brokers))
    spec = h.create_topics.TopicSpec(topic, partitions, ())
    try:
        answer = await asyncio.wait_for(resolve(service.ask(
            ProposeTopics((spec,), (rf,)), block=False)), timeout)
    except UNREACHABLE:
        return None
    assert isinstance(answer, dict)
    outcome = answer.get(topic)
    if outcome is not None and outcome.error_code == ErrorCode.NONE:
        log.info(created_event, partitions=partitions, replication_factor=rf)
    return None  # no leader yet: clients ask again (COORDINATOR_NOT_AVAILABLE)
