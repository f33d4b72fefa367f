"""DescribeProducers (61): a partition's active producers (KIP-664).

Concern: splitting the request per partition (unknown topics and partitions answered here) and
the response from each partition's `ProducersAnswer`. Must not know: logs, actors, sockets.
"""

from __future__ import annotations

from collections.abc import Mapping

from redshank.cluster.kafka.topic_table import TopicInfo, TopicPartition
from redshank.cluster.partition.api import ProducersAnswer
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages.describe_producers import (
    DescribeProducersRequest,
    DescribeProducersResponse,
    PartitionResponse,
    ProducerState,
    TopicResponse,
)

__all__ = ["build", "plan"]


def plan(request: DescribeProducersRequest, topics: Mapping[str, TopicInfo | None]
         ) -> tuple[list[tuple[TopicPartition, int]], dict[TopicPartition, ProducersAnswer]]:
    """((partition, owning core) to ask, answers known already)."""
    asks: list[tuple[TopicPartition, int]] = []
    done: dict[TopicPartition, ProducersAnswer] = {}
    for t in request.topics:
        info = topics.get(t.name)
        for p in t.partition_indexes:
            tp = TopicPartition(t.name, p)
            core = info.core_of(p) if info is not None else None
            if info is None or core is None:
                done[tp] = ProducersAnswer(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
            else:
                asks.append((tp, core))
    return asks, done


def build(request: DescribeProducersRequest, results: Mapping[TopicPartition, ProducersAnswer]
          ) -> DescribeProducersResponse:
    topics = []
    for t in request.topics:
        parts = []
        for p in t.partition_indexes:
            r = results[TopicPartition(t.name, p)]
            parts.append(PartitionResponse(
                partition_index=p, error_code=r.error_code, active_producers=tuple(
                    ProducerState(s.producer_id, s.producer_epoch, s.last_sequence,
                                  s.last_timestamp, s.coordinator_epoch,
                                  s.current_txn_start_offset) for s in r.producers)))
        topics.append(TopicResponse(name=t.name, partitions=tuple(parts)))
    return DescribeProducersResponse(topics=tuple(topics))
