"""Recompressing a batch to a topic's compression.type: the records survive, the header says
the new codec, the CRC holds; and the produce plan applies it and the timestamp window."""

from __future__ import annotations

import uuid

import pytest

from redshank.cluster.kafka.handlers import produce
from redshank.cluster.kafka.topic_table import TopicInfo
from redshank.protocol.batch_recompress import recompress
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages import produce as wire
from redshank.protocol.record_batch import Compression, validate_batch
from redshank.protocol.records import Record, build_batch, iter_records

NOW = 1_700_000_000_000


def _batch(codec: Compression, stamps: tuple[int, ...] = (NOW, NOW + 1)) -> bytes:
    return build_batch([Record(i, ts, b"k%d" % i, b"v" * 500) for i, ts in enumerate(stamps)],
                       compression=codec, producer_id=7, producer_epoch=0, base_sequence=0)


@pytest.mark.parametrize("source", list(Compression))
@pytest.mark.parametrize("target", list(Compression))
def test_recompress_keeps_records_and_fields(source: Compression, target: Compression) -> None:
    batch = _batch(source)
    out = recompress(batch, validate_batch(batch), target)
    h = validate_batch(out)  # the CRC holds
    assert h.compression == target and h.size == len(out)
    before, after = validate_batch(batch), h
    assert (after.producer_id, after.base_sequence, after.last_offset_delta,
            after.base_timestamp, after.max_timestamp) == (
        before.producer_id, before.base_sequence, before.last_offset_delta,
        before.base_timestamp, before.max_timestamp)
    assert list(iter_records(out)) == list(iter_records(batch))


def _request(batch: bytes) -> wire.ProduceRequest:
    return wire.ProduceRequest(acks=1, timeout_ms=1000, topic_data=(wire.TopicProduceData(
        name="t", partition_data=(wire.PartitionProduceData(index=0, records=batch),)),))


def _topic(*configs: tuple[str, str]) -> dict[str, TopicInfo | None]:
    return {"t": TopicInfo("t", uuid.uuid4(), (0,), configs)}


def test_plan_stores_the_topics_codec() -> None:
    batch = _batch(Compression.SNAPPY)
    writes, _ = produce.plan(_request(batch), _topic(("compression.type", "zstd")), NOW)
    assert validate_batch(writes[0].records).compression == Compression.ZSTD
    writes, _ = produce.plan(_request(batch), _topic(("compression.type", "producer")), NOW)
    assert writes[0].records == batch
    writes, _ = produce.plan(_request(batch), _topic(("compression.type", "uncompressed")), NOW)
    assert validate_batch(writes[0].records).compression == Compression.NONE


def test_plan_refuses_timestamps_outside_the_window() -> None:
    late = _batch(Compression.LZ4, (NOW, NOW - 10_000))  # the second record too old
    topic = _topic(("message.timestamp.before.max.ms", "5000"))
    writes, done = produce.plan(_request(late), topic, NOW)
    assert not writes and next(iter(done.values())).error_code == ErrorCode.INVALID_TIMESTAMP
    ahead = _batch(Compression.NONE, (NOW + 10_000,))
    topic = _topic(("message.timestamp.difference.max.ms", "5000"))  # deprecated: both ways
    _, done = produce.plan(_request(ahead), topic, NOW)
    assert next(iter(done.values())).error_code == ErrorCode.INVALID_TIMESTAMP
    appended = _topic(("message.timestamp.after.max.ms", "0"),
                      ("message.timestamp.type", "LogAppendTime"))
    writes, _ = produce.plan(_request(ahead), appended, NOW)  # the broker stamps: no check
    assert len(writes) == 1
    writes, _ = produce.plan(_request(_batch(Compression.NONE)), topic, NOW)
    assert len(writes) == 1
