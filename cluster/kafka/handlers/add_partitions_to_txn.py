"""AddPartitionsToTxn (24): wire <-> the transaction coordinator's `AddPartitionsRequest`s.

v0-3 carry one transactional id (the `v3_and_below_*` fields, answered by topic); v4+ batch
several (KIP-890: brokers verifying a produce send them; answered by transaction, with a
top-level error). Each transactional id is one `AddPartitionsRequest` to its coordinator. A
request naming a topic or partition that does not exist adds nothing (Kafka 3.9): those answer
UNKNOWN_TOPIC_OR_PARTITION, the others OPERATION_NOT_ATTEMPTED. Must not know: actors, sockets.
"""

from __future__ import annotations

from collections.abc import Mapping

from redshank.cluster.kafka.handlers._txn import for_version
from redshank.cluster.kafka.topic_table import TopicPartition
from redshank.cluster.txn.api import AddPartitionsRequest, AddPartitionsResult
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages import add_partitions_to_txn as wire

__all__ = ["build", "not_coordinator", "refuse_unknown", "to_api", "topics"]

_FENCED_FROM = 2  # v2 added PRODUCER_FENCED
_BATCHED_FROM = 4


def to_api(request: wire.AddPartitionsToTxnRequest, version: int
           ) -> tuple[AddPartitionsRequest, ...]:
    """One request per transactional id, in request order."""
    if version < _BATCHED_FROM:
        return (AddPartitionsRequest(
            request.v3_and_below_transactional_id, request.v3_and_below_producer_id,
            request.v3_and_below_producer_epoch, _partitions(request.v3_and_below_topics)),)
    return tuple(AddPartitionsRequest(t.transactional_id, t.producer_id, t.producer_epoch,
                                      _partitions(t.topics), t.verify_only)
                 for t in request.transactions)


def _partitions(topics: tuple[wire.AddPartitionsToTxnTopic, ...]
                ) -> tuple[TopicPartition, ...]:
    seen: dict[TopicPartition, None] = {}
    for t in topics:
        for p in t.partitions:
            seen.setdefault(TopicPartition(t.name, p))
    return tuple(seen)


def topics(requests: tuple[AddPartitionsRequest, ...]) -> list[str]:
    """The topics named (whose partition counts `refuse_unknown` needs)."""
    return sorted({tp.topic for r in requests for tp in r.partitions})


def refuse_unknown(request: AddPartitionsRequest, counts: Mapping[str, int | None]
                   ) -> AddPartitionsResult | None:
    """The answer when `request` names a partition that does not exist (`counts`: each topic's
    partition count, 0 when it does not exist, None when that is not known now: treated as
    existing, the coordinator adds it); None when every partition exists."""

    def exists(tp: TopicPartition) -> bool:
        count = counts.get(tp.topic)
        return count is None or 0 <= tp.partition < count

    if all(exists(tp) for tp in request.partitions):
        return None
    return AddPartitionsResult(tuple(
        (tp, ErrorCode.OPERATION_NOT_ATTEMPTED if exists(tp)
         else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION) for tp in request.partitions))


def not_coordinator(request: AddPartitionsRequest) -> AddPartitionsResult:
    """Every partition NOT_COORDINATOR: the coordinator cannot be reached."""
    return AddPartitionsResult(tuple((tp, ErrorCode.NOT_COORDINATOR) for tp in request.partitions))


def _by_topic(result: AddPartitionsResult, version: int
              ) -> tuple[wire.AddPartitionsToTxnTopicResult, ...]:
    grouped: dict[str, list[wire.AddPartitionsToTxnPartitionResult]] = {}
    for tp, error in result.errors:
        grouped.setdefault(tp.topic, []).append(wire.AddPartitionsToTxnPartitionResult(
            tp.partition, for_version(error, version, _FENCED_FROM)))
    return tuple(wire.AddPartitionsToTxnTopicResult(name, tuple(parts))
                 for name, parts in grouped.items())


def build(requests: tuple[AddPartitionsRequest, ...],
          results: list[AddPartitionsResult], version: int
          ) -> wire.AddPartitionsToTxnResponse:
    """`results`: one per request of `to_api`, in its order."""
    if version < _BATCHED_FROM:
        return wire.AddPartitionsToTxnResponse(
            results_by_topic_v3_and_below=_by_topic(results[0], version) if results else ())
    return wire.AddPartitionsToTxnResponse(results_by_transaction=tuple(
        wire.AddPartitionsToTxnResult(r.transactional_id, _by_topic(res, version))
        for r, res in zip(requests, results, strict=True)))
