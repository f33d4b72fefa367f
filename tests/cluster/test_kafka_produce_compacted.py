"""Produce to a compacted topic: a batch with a record without a key is refused whole with
INVALID_RECORD and one record error per keyless record (Kafka's LogValidator and its messages,
ProduceResponse v8+ record_errors), compressed or not; keyed batches and other topics pass."""

from __future__ import annotations

import uuid

import pytest

from redshank.cluster.kafka import TopicInfo
from redshank.cluster.kafka.handlers import produce
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages.produce import (
    PartitionProduceData,
    ProduceRequest,
    ProduceResponse,
    TopicProduceData,
)
from redshank.protocol.record_batch import Compression
from redshank.protocol.records import Record, build_batch

COMPACTED = TopicInfo("table", uuid.UUID(int=1), (0,), (("cleanup.policy", "compact,delete"),))
PLAIN = TopicInfo("plain", uuid.UUID(int=2), (0,), ())
TOPICS = {"table": COMPACTED, "plain": PLAIN}
TEXT = "Compacted topic cannot accept message without key in topic partition table-0."


def _request(topic: str, keys: list[bytes | None], codec: Compression) -> ProduceRequest:
    batch = build_batch([Record(i, 1000 + i, k, b"v") for i, k in enumerate(keys)],
                        compression=codec)
    return ProduceRequest(acks=-1, timeout_ms=1000, topic_data=(
        TopicProduceData(topic, (PartitionProduceData(0, batch),)),))


@pytest.mark.parametrize("codec", [Compression.NONE, Compression.ZSTD])
def test_keyless_records_refused_with_record_errors(codec: Compression) -> None:
    keys: list[bytes | None] = [b"a", None, b"b", None, None, None]
    req = _request("table", keys, codec)
    writes, done = produce.plan(req, TOPICS)
    assert writes == []
    (result,) = done.values()
    assert result.error_code == ErrorCode.INVALID_RECORD
    assert result.record_errors == tuple((i, TEXT) for i in (1, 3, 4, 5))
    assert result.error_message is not None
    assert result.error_message.startswith(
        "One or more records have been rejected due to 4 record errors in total")
    assert result.error_message.count("RecordError(batchIndex=") == 3
    wire = ProduceResponse.decode(produce.build(req, done).encode(8), 8)
    part = wire.responses[0].partition_responses[0]
    assert [(e.batch_index, e.batch_index_error_message) for e in part.record_errors] == \
        [(i, TEXT) for i in (1, 3, 4, 5)]


def test_keyed_batches_and_other_topics_pass() -> None:
    assert produce.plan(_request("table", [b"a", b"b"], Compression.LZ4), TOPICS)[1] == {}
    assert produce.plan(_request("plain", [None, None], Compression.NONE), TOPICS)[1] == {}
