"""Metadata (3): which topics the client asked about, and the answer from the topic table.

Concern: the request's topic selection (`topics = null` means all on v1+, `[]` means none; on v0
`[]` means all, notes G13), whether it may auto-create, and building the response (one broker,
topic ids, INT32_MIN authorized operations, notes G14). Must not know: how topics are stored or
created, sockets, actors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from redshank.cluster.kafka.topic_table import TopicInfo, validate_topic_name
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages.metadata import (
    MetadataRequest,
    MetadataResponse,
    MetadataResponseBroker,
    MetadataResponsePartition,
    MetadataResponseTopic,
)

__all__ = ["BrokerAddress", "MetadataQuery", "build", "query"]

_NO_OPS = -2147483648  # INT32_MIN: authorized operations not computed (notes G14)


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    node_id: int
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class MetadataQuery:
    """`names` None: every topic. `create`: names the table should auto-create if missing."""

    names: tuple[str, ...] | None
    create: tuple[str, ...]


def query(request: MetadataRequest, version: int, auto_create: bool) -> MetadataQuery:
    topics = request.topics
    if topics is None or (version == 0 and not topics):
        return MetadataQuery(None, ())
    names = tuple(t.name for t in topics if t.name is not None)
    allowed = auto_create and (version < 4 or request.allow_auto_topic_creation)
    create = tuple(n for n in names if allowed and validate_topic_name(n) is None)
    return MetadataQuery(names, create)


def build(
    request: MetadataRequest,
    version: int,
    broker: BrokerAddress,
    cluster_id: str,
    q: MetadataQuery,
    topics: Mapping[str, TopicInfo],
    not_ready: frozenset[str] = frozenset(),
) -> MetadataResponse:
    """`topics`: what the table holds for the query; `not_ready`: topics without a leader yet."""
    names = q.names if q.names is not None else tuple(sorted(topics))
    out = [_topic(name, topics.get(name), broker.node_id, name in not_ready) for name in names]
    return MetadataResponse(
        brokers=(MetadataResponseBroker(broker.node_id, broker.host, broker.port, None),),
        cluster_id=cluster_id,
        controller_id=broker.node_id,
        topics=tuple(out),
        cluster_authorized_operations=_NO_OPS,
    )


def _topic(name: str, info: TopicInfo | None, node_id: int, not_ready: bool
           ) -> MetadataResponseTopic:
    if info is None:
        code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        if validate_topic_name(name) is not None:
            code = ErrorCode.INVALID_TOPIC_EXCEPTION
        return MetadataResponseTopic(
            error_code=code, name=name, topic_authorized_operations=_NO_OPS
        )
    if not_ready:
        return MetadataResponseTopic(
            error_code=ErrorCode.LEADER_NOT_AVAILABLE,
            name=name,
            topic_id=info.topic_id,
            topic_authorized_operations=_NO_OPS,
        )
    partitions = tuple(
        MetadataResponsePartition(
            error_code=0,
            partition_index=p,
            leader_id=node_id,
            leader_epoch=0,
            replica_nodes=(node_id,),
            isr_nodes=(node_id,),
            offline_replicas=(),
        )
        for p in range(info.partitions)
    )
    return MetadataResponseTopic(
        error_code=0,
        name=name,
        topic_id=info.topic_id,
        is_internal=name == "__consumer_offsets",
        partitions=partitions,
        topic_authorized_operations=_NO_OPS,
    )
