"""DescribeProducers (61): the active producers of partitions this node leads (KIP-664).

Concern: asking each addressed partition's owner for its producer table and answering per
partition (NOT_LEADER_OR_FOLLOWER when its owner is gone or the topic could not be looked up).
Must not know: the producer table (`cluster/kafka/producer_state`), the wire shapes
(`cluster/kafka/handlers/describe_producers`).
"""

from __future__ import annotations

import pykka

from redshank.actors._async import resolve
from redshank.actors.frontend._registry import serves
from redshank.actors.frontend.services import OWNER_GONE, CoreServices
from redshank.cluster.kafka import TopicPartition
from redshank.cluster.kafka.handlers import describe_producers as describe_h
from redshank.cluster.partition.api import DescribeProducers, ProducersAnswer
from redshank.protocol import messages as m
from redshank.protocol.api_versions import ApiKey
from redshank.protocol.error_codes import ErrorCode

__all__ = ["describe_producers"]


@serves(ApiKey.DESCRIBE_PRODUCERS)
async def describe_producers(core: CoreServices,
                             request: m.describe_producers.DescribeProducersRequest,
                             version: int) -> m.describe_producers.DescribeProducersResponse:
    del version
    infos, unsure = await core.topic_infos([t.name for t in request.topics])
    asks, results = describe_h.plan(request, infos)
    for tp, r in list(results.items()):
        if tp.topic in unsure and r.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
            results[tp] = ProducersAnswer(ErrorCode.NOT_LEADER_OR_FOLLOWER)
    for tp, owner in asks:
        results[tp] = await _ask(core, tp, owner)
    return describe_h.build(request, results)


async def _ask(core: CoreServices, tp: TopicPartition, owner: int) -> ProducersAnswer:
    try:
        name = await core.ensure(tp.topic, tp.partition, owner)
        answer = await resolve(core.router.ref(owner, name).ask(DescribeProducers(),
                                                                 block=False))
    except (*OWNER_GONE, pykka.ActorDeadError):
        return ProducersAnswer(ErrorCode.NOT_LEADER_OR_FOLLOWER)
    assert isinstance(answer, ProducersAnswer)
    return answer
