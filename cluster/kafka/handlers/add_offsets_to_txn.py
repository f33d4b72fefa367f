"""AddOffsetsToTxn (25): wire <-> the transaction coordinator's `AddOffsetsRequest`.

The group's `__consumer_offsets` partition joins the transaction (Kafka's rule:
`partition_for(group_id)`), so the marker that ends the transaction settles the offsets that
TxnOffsetCommit sent to the group coordinator. Must not know: actors, sockets.
"""

from __future__ import annotations

from redshank.cluster.group import partition_for
from redshank.cluster.kafka.handlers._txn import for_version
from redshank.cluster.kafka.topic_table import TopicPartition
from redshank.cluster.txn.api import AddOffsetsRequest, AddOffsetsResult
from redshank.protocol.messages import add_offsets_to_txn as wire

__all__ = ["build", "to_api"]

_FENCED_FROM = 2  # v2 added PRODUCER_FENCED


def to_api(request: wire.AddOffsetsToTxnRequest, version: int, groups_topic: str,
           groups_partitions: int) -> AddOffsetsRequest:
    """`groups_partitions`: the partition count of `groups_topic` (`__consumer_offsets`)."""
    del version
    tp = TopicPartition(groups_topic, partition_for(request.group_id, groups_partitions))
    return AddOffsetsRequest(request.transactional_id, request.producer_id,
                             request.producer_epoch, request.group_id, tp)


def build(result: AddOffsetsResult, version: int) -> wire.AddOffsetsToTxnResponse:
    return wire.AddOffsetsToTxnResponse(
        error_code=for_version(result.error, version, _FENCED_FROM))
