"""kafka-python 3.0 against a real two-core broker: produce with acks 0, 1 and all (acks=all
with its default idempotent producer: InitProducerId + sequences), consume by assign, every
record checked; offsets lookups."""

from __future__ import annotations

import time

import pytest
from broker_proc import BrokerProcess, check_consumed, create_topic, expected_records
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

PARTITIONS = 2
PER_PARTITION = 150


Polled = dict[int, list[tuple[int, bytes | None, bytes | None]]]


def assigned_consumer(bootstrap: str, topic: str, partitions: int) -> KafkaConsumer:
    """A kafka-python consumer assigned every partition of `topic` from offset 0."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             fetch_max_wait_ms=100)
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, 0)
    return consumer


def poll_until(consumer: KafkaConsumer, got: Polled, total: int, timeout: float = 20.0) -> None:
    """Poll into `got` (partition -> (offset, key, value)) until it holds `total` records."""
    deadline = time.monotonic() + timeout
    while sum(map(len, got.values())) < total and time.monotonic() < deadline:
        for tp, msgs in consumer.poll(timeout_ms=200).items():
            got.setdefault(tp.partition, []).extend((m.offset, m.key, m.value) for m in msgs)


def _consume(bootstrap: str, topic: str, partitions: int, total: int) -> Polled:
    consumer = assigned_consumer(bootstrap, topic, partitions)
    got: Polled = {}
    try:
        poll_until(consumer, got, total)
    finally:
        consumer.close()
    return got


@pytest.mark.timeout(90)
@pytest.mark.parametrize("acks", [0, 1, "all"])
def test_produce_and_consume_by_assign(broker: BrokerProcess, acks: int | str) -> None:
    topic = f"kp-acks-{acks}"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    expected = expected_records(topic, PARTITIONS, PER_PARTITION)
    # kafka-python is idempotent by default, which requires acks=all.
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks=acks,
                             enable_idempotence=acks == "all", linger_ms=2)
    try:
        futures = [producer.send(topic, key=k, value=v, partition=p)
                   for p, records in expected.items() for k, v in records]
        producer.flush(20)
        if acks != 0:
            for f in futures:
                f.get(timeout=10)  # raises the broker's error, if any
    finally:
        producer.close(10)
    got = _consume(broker.bootstrap, topic, PARTITIONS, PARTITIONS * PER_PARTITION)
    check_consumed(expected, got)


@pytest.mark.timeout(60)
def test_offset_lookups(broker: BrokerProcess) -> None:
    topic = "kp-offsets"
    create_topic(broker.bootstrap, topic, 1)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    try:
        for i in range(5):
            producer.send(topic, value=b"%d" % i, partition=0, timestamp_ms=1000 + i).get(10)
    finally:
        producer.close(10)
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
    try:
        tp = TopicPartition(topic, 0)
        assert consumer.beginning_offsets([tp]) == {tp: 0}
        assert consumer.end_offsets([tp]) == {tp: 5}
        found = consumer.offsets_for_times({tp: 1003})[tp]
        # The first record whose timestamp is >= 1003, with its own timestamp.
        assert found is not None and (found.offset, found.timestamp) == (3, 1003)
        assert consumer.offsets_for_times({tp: 10**12})[tp] is None
    finally:
        consumer.close()
