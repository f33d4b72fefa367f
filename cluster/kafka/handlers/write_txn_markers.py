"""WriteTxnMarkers (27): split the markers per partition, build their control batches, answer.

Concern: what a WriteTxnMarkers request asks of each partition (KIP-98): one COMMIT/ABORT
control batch (Kafka's end-transaction marker: key = version 0 + type, value = version 0 +
coordinator epoch; control and transactional bits, the transaction's producer id and epoch),
appended with acks=all; which partitions cannot take it here (an unknown topic or partition);
and the response, per marker (by producer id), per topic, per partition. Which partitions are
`__consumer_offsets` partitions (handed to their group host) is the frontend's business. Must
not know: logs, actors, sockets.
"""

from __future__ import annotations

from collections.abc import Mapping

from redshank.cluster.kafka.topic_table import TopicInfo, TopicPartition
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.fast_dataclass import dataclass
from redshank.protocol.messages.write_txn_markers import (
    WritableTxnMarker,
    WritableTxnMarkerPartitionResult,
    WritableTxnMarkerResult,
    WritableTxnMarkerTopicResult,
    WriteTxnMarkersRequest,
    WriteTxnMarkersResponse,
)
from redshank.protocol.records import ControlType, build_control_batch

__all__ = ["MarkerWrite", "build", "control_batch", "plan"]

# (marker index in the request, topic, partition) -> error code
Results = dict[tuple[int, str, int], int]


@dataclass(frozen=True, slots=True)
class MarkerWrite:
    """One marker to append to one partition."""

    index: int  # the marker's index in the request
    tp: TopicPartition
    core: int
    producer_id: int
    producer_epoch: int
    commit: bool
    coordinator_epoch: int


def control_batch(w: MarkerWrite, timestamp: int) -> bytes:
    """The end-transaction marker batch `w` appends (one record, one offset)."""
    return build_control_batch(ControlType.COMMIT if w.commit else ControlType.ABORT,
                               producer_id=w.producer_id, producer_epoch=w.producer_epoch,
                               coordinator_epoch=w.coordinator_epoch, timestamp=timestamp)


def plan(request: WriteTxnMarkersRequest, topics: Mapping[str, TopicInfo | None]
         ) -> tuple[list[MarkerWrite], Results]:
    """(appends to route, results known already: unknown topics or partitions)."""
    writes: list[MarkerWrite] = []
    done: Results = {}
    for i, m in enumerate(request.markers):
        for t in m.topics:
            info = topics.get(t.name)
            for p in t.partition_indexes:
                core = info.core_of(p) if info is not None else None
                if info is None or core is None:
                    done[(i, t.name, p)] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                    continue
                writes.append(MarkerWrite(i, TopicPartition(t.name, p), core, m.producer_id,
                                          m.producer_epoch, m.transaction_result,
                                          m.coordinator_epoch))
    return writes, done


def build(request: WriteTxnMarkersRequest, results: Results) -> WriteTxnMarkersResponse:
    return WriteTxnMarkersResponse(markers=tuple(
        _marker(i, m, results) for i, m in enumerate(request.markers)))


def _marker(i: int, m: WritableTxnMarker, results: Results) -> WritableTxnMarkerResult:
    return WritableTxnMarkerResult(producer_id=m.producer_id, topics=tuple(
        WritableTxnMarkerTopicResult(name=t.name, partitions=tuple(
            WritableTxnMarkerPartitionResult(
                p, results.get((i, t.name, p), ErrorCode.UNKNOWN_SERVER_ERROR))
            for p in t.partition_indexes))
        for t in m.topics))
