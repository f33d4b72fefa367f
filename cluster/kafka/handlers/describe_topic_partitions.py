"""DescribeTopicPartitions (75, KIP-966): the partitions of some topics (or all), paged by a
cursor and a partition limit.

Concern: turning the request into the Metadata question whose answer holds the same facts
(`metadata_request`: never auto-creating), and that answer into the paged response as Kafka's
DescribeTopicPartitionsRequestHandler builds it: topics sorted by name (all of them when the
request names none), starting at the cursor's topic and, in that topic only, its partition; at
most `min(response_partition_limit, 2000)` partitions in all, `next_cursor` naming the first
one left out; a named topic that does not exist answers UNKNOWN_TOPIC_OR_PARTITION; a cursor
whose topic the request does not name is INVALID_REQUEST. No eligible leader replicas (ELR,
KIP-966's other half) here: null. Must not know: actors, sockets, where topics live.
"""

from __future__ import annotations

from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages import describe_topic_partitions as wire
from redshank.protocol.messages import metadata as md

__all__ = ["MAX_PARTITIONS", "METADATA_VERSION", "build", "invalid", "metadata_request",
           "refused"]

# Kafka's max.request.partition.size.limit default: the most partitions one response holds.
MAX_PARTITIONS = 2000
METADATA_VERSION = 12  # topic ids, and no topic_authorized_operations asked


def metadata_request(request: wire.DescribeTopicPartitionsRequest) -> md.MetadataRequest:
    names = None if not request.topics else tuple(
        md.MetadataRequestTopic(name=t.name) for t in request.topics)
    return md.MetadataRequest(topics=names, allow_auto_topic_creation=False)


def refused(request: wire.DescribeTopicPartitionsRequest) -> str | None:
    """Why the request is INVALID_REQUEST as a whole, None if it is not."""
    cursor = request.cursor
    if cursor is not None and request.topics and \
            cursor.topic_name not in {t.name for t in request.topics}:
        return f"the cursor's topic {cursor.topic_name!r} is not among the requested topics"
    if cursor is not None and cursor.partition_index < 0:
        return f"the cursor's partition index {cursor.partition_index} is negative"
    return None


def invalid(request: wire.DescribeTopicPartitionsRequest) -> wire.DescribeTopicPartitionsResponse:
    """Kafka's error response: every requested topic with INVALID_REQUEST."""
    return wire.DescribeTopicPartitionsResponse(topics=tuple(
        wire.DescribeTopicPartitionsResponseTopic(error_code=ErrorCode.INVALID_REQUEST,
                                                  name=t.name) for t in request.topics))


def build(request: wire.DescribeTopicPartitionsRequest, answer: md.MetadataResponse
          ) -> wire.DescribeTopicPartitionsResponse:
    budget = max(0, min(request.response_partition_limit, MAX_PARTITIONS))
    cursor = request.cursor
    named = {t.name for t in request.topics}
    topics = sorted((t for t in answer.topics if t.name is not None
                     and (not named or t.name in named)), key=lambda t: t.name or "")
    out: list[wire.DescribeTopicPartitionsResponseTopic] = []
    next_cursor: wire.DescribeTopicPartitionsResponseCursor | None = None
    for t in topics:
        name = t.name or ""
        if cursor is not None and name < cursor.topic_name:
            continue
        first = cursor.partition_index if cursor is not None and name == cursor.topic_name else 0
        if t.error_code != ErrorCode.NONE:
            out.append(wire.DescribeTopicPartitionsResponseTopic(
                error_code=t.error_code, name=name, topic_id=t.topic_id,
                is_internal=t.is_internal))
            continue
        wanted = [p for p in sorted(t.partitions, key=lambda p: p.partition_index)
                  if p.partition_index >= first]
        if budget == 0 and wanted:
            next_cursor = wire.DescribeTopicPartitionsResponseCursor(
                name, wanted[0].partition_index)
            break
        taken, rest = wanted[:budget], wanted[budget:]
        budget -= len(taken)
        out.append(wire.DescribeTopicPartitionsResponseTopic(
            error_code=ErrorCode.NONE, name=name, topic_id=t.topic_id,
            is_internal=t.is_internal, partitions=tuple(_partition(p) for p in taken)))
        if rest:
            next_cursor = wire.DescribeTopicPartitionsResponseCursor(
                name, rest[0].partition_index)
            break
    return wire.DescribeTopicPartitionsResponse(topics=tuple(out), next_cursor=next_cursor)


def _partition(p: md.MetadataResponsePartition) -> wire.DescribeTopicPartitionsResponsePartition:
    return wire.DescribeTopicPartitionsResponsePartition(
        error_code=p.error_code, partition_index=p.partition_index, leader_id=p.leader_id,
        leader_epoch=p.leader_epoch, replica_nodes=p.replica_nodes, isr_nodes=p.isr_nodes,
        offline_replicas=p.offline_replicas)
