"""The sans-IO Kafka handlers' side of transactions (KIP-98): Produce takes transactional
batches of a producer id (and refuses one without), WriteTxnMarkers splits markers per
partition and builds Kafka's end-transaction control batch, Fetch under read_committed carries
the last stable offset and the aborted transactions, DescribeProducers answers per partition."""

from __future__ import annotations

import uuid

from redshank.cluster.kafka import TopicInfo
from redshank.cluster.kafka.handlers import describe_producers, fetch, produce, write_txn_markers
from redshank.cluster.kafka.producer_state import marker_of
from redshank.cluster.kafka.topic_table import TopicPartition
from redshank.cluster.partition.api import (
    AppendMarker,
    ProducerBatch,
    ProducerInfo,
    ProducersAnswer,
    ReadResult,
)
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages import describe_producers as dp
from redshank.protocol.messages import write_txn_markers as wtm
from redshank.protocol.messages.produce import (
    PartitionProduceData,
    ProduceRequest,
    TopicProduceData,
)
from redshank.protocol.record_batch import parse_header
from redshank.protocol.records import BatchBuilder

T = TopicInfo("t", uuid.UUID(int=1), (0, 1), ())
TOPICS: dict[str, TopicInfo | None] = {"t": T, "gone": None}


def _produce(batch: bytes) -> ProduceRequest:
    return ProduceRequest(transactional_id="tx", acks=-1, timeout_ms=1000, topic_data=(
        TopicProduceData("t", (PartitionProduceData(0, batch),)),))


def _batch(pid: int, epoch: int = 0, seq: int = 0) -> bytes:
    b = BatchBuilder(producer_id=pid, producer_epoch=epoch, base_sequence=seq,
                     is_transactional=True)
    b.append(b"v", timestamp=1)
    b.append(b"w", timestamp=2)
    return b.build()


def test_produce_takes_transactional_batches_of_a_producer() -> None:
    writes, done = produce.plan(_produce(_batch(7, 2, 5)), TOPICS)
    assert done == {} and writes[0].producer == ProducerBatch(7, 2, 5, 6, True)
    writes, done = produce.plan(_produce(_batch(-1, -1, -1)), TOPICS)
    (r,) = done.values()
    assert writes == [] and r.error_code == ErrorCode.INVALID_RECORD
    assert "producer id" in (r.error_message or "")


def test_write_txn_markers_plan_batch_and_build() -> None:
    req = wtm.WriteTxnMarkersRequest(markers=(
        wtm.WritableTxnMarker(7, 3, True, (wtm.WritableTxnMarkerTopic("t", (0, 1, 9)),
                                           wtm.WritableTxnMarkerTopic("gone", (0,))), 4),
        wtm.WritableTxnMarker(8, 0, False, (wtm.WritableTxnMarkerTopic("t", (1,)),), 4),
    ))
    writes, done = write_txn_markers.plan(req, TOPICS)
    assert [(w.index, w.tp, w.core, w.producer_id, w.commit) for w in writes] == [
        (0, ("t", 0), 0, 7, True), (0, ("t", 1), 1, 7, True), (1, ("t", 1), 1, 8, False)]
    assert done == {(0, "t", 9): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                    (0, "gone", 0): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}
    batch = write_txn_markers.control_batch(writes[0], 1234)
    h = parse_header(batch)
    assert h.is_control and h.is_transactional and (h.producer_id, h.producer_epoch) == (7, 3)
    assert h.last_offset_delta == 0  # one record: the marker takes one offset
    assert marker_of(batch, 0, h) == AppendMarker(7, 3, 4, True)
    results = dict(done)
    results.update({(w.index, w.tp[0], w.tp[1]): ErrorCode.NONE for w in writes})
    resp = write_txn_markers.build(req, results)
    assert [(m.producer_id, [(t.name, [(p.partition_index, p.error_code) for p in t.partitions])
                             for t in m.topics]) for m in resp.markers] == [
        (7, [("t", [(0, 0), (1, 0), (9, 3)]), ("gone", [(0, 3)])]), (8, [("t", [(1, 0)])])]


def test_fetch_read_committed_carries_lso_and_aborted_transactions() -> None:
    tp = TopicPartition("t", 0)
    results = {tp: ReadResult(0, 10, 0, b"", 6, ((7, 2),))}
    committed = fetch.build(results, [tp], 0, isolation=1).responses[0].partitions[0]
    assert committed.last_stable_offset == 6 and committed.high_watermark == 10
    assert [(a.producer_id, a.first_offset) for a in committed.aborted_transactions or ()] == [
        (7, 2)]
    plain = fetch.build(results, [tp], 0).responses[0].partitions[0]
    assert plain.last_stable_offset == 6 and plain.aborted_transactions == ()
    unknown = fetch.build({tp: ReadResult(0, 10, 0, b"")}, [tp]).responses[0].partitions[0]
    assert unknown.last_stable_offset == 10  # no LSO known (the board's answer): the HW


def test_describe_producers_plan_and_build() -> None:
    req = dp.DescribeProducersRequest(topics=(dp.TopicRequest("t", (1, 5)),
                                              dp.TopicRequest("gone", (0,))))
    asks, done = describe_producers.plan(req, TOPICS)
    assert asks == [(("t", 1), 1)]
    done[TopicPartition("t", 1)] = ProducersAnswer(0, (ProducerInfo(7, 1, 4, 99, 2, 10),))
    resp = describe_producers.build(req, done)
    parts = {(t.name, p.partition_index): p for t in resp.topics for p in t.partitions}
    assert parts[("t", 5)].error_code == parts[("gone", 0)].error_code == 3
    (s,) = parts[("t", 1)].active_producers
    assert (s.producer_id, s.producer_epoch, s.last_sequence, s.last_timestamp,
            s.coordinator_epoch, s.current_txn_start_offset) == (7, 1, 4, 99, 2, 10)
