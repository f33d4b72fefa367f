"""confluent-kafka (librdkafka 2.16) against a real two-core broker: produce with acks 0, 1 and
all (and idempotent), consume by assign, every record checked; metadata and watermarks."""

from __future__ import annotations

import time

import pytest
from broker_proc import BrokerProcess, check_consumed, create_topic, expected_records
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

PARTITIONS = 2
PER_PARTITION = 150


def _produce(bootstrap: str, topic: str, expected: dict[int, list[tuple[bytes, bytes]]],
             config: dict[str, object]) -> list[KafkaError]:
    errors: list[KafkaError] = []
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 2, **config})

    def report(err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            errors.append(err)

    for p, records in expected.items():
        for key, value in records:
            producer.produce(topic, value=value, key=key, partition=p, on_delivery=report)
            producer.poll(0)
    left = producer.flush(20)
    assert left == 0, f"{left} records not delivered within 20 s"
    return errors


def consume_assigned(bootstrap: str, topic: str, partitions: int, total: int,
                     timeout: float = 20.0) -> dict[int, list[tuple[int, bytes | None,
                                                                     bytes | None]]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{topic}",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 100})
    got: dict[int, list[tuple[int, bytes | None, bytes | None]]] = {}
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        deadline = time.monotonic() + timeout
        count = 0
        while count < total and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            assert msg.error() is None, f"consumer error: {msg.error()}"
            got.setdefault(msg.partition(), []).append((msg.offset(), msg.key(), msg.value()))
            count += 1
    finally:
        consumer.close()
    return got


@pytest.mark.timeout(90)
@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_produce_and_consume_by_assign(broker: BrokerProcess, acks: str) -> None:
    topic = f"ck-acks-{acks}"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    expected = expected_records(topic, PARTITIONS, PER_PARTITION)
    errors = _produce(broker.bootstrap, topic, expected,
                      {"acks": acks, "enable.idempotence": False})
    assert errors == []
    got = consume_assigned(broker.bootstrap, topic, PARTITIONS, PARTITIONS * PER_PARTITION)
    check_consumed(expected, got)


@pytest.mark.timeout(90)
def test_idempotent_producer_and_auto_create(broker: BrokerProcess) -> None:
    topic = "ck-idempotent-auto"  # not created beforehand: produce auto-creates (1 partition)
    expected = expected_records(topic, 1, PER_PARTITION)
    errors = _produce(broker.bootstrap, topic, expected, {"enable.idempotence": True})
    assert errors == []
    got = consume_assigned(broker.bootstrap, topic, 1, PER_PARTITION)
    check_consumed(expected, got)


@pytest.mark.timeout(60)
def test_metadata_and_watermarks(broker: BrokerProcess) -> None:
    topic = "ck-watermarks"
    create_topic(broker.bootstrap, topic, 3)
    expected = expected_records(topic, 3, 10)
    assert _produce(broker.bootstrap, topic, expected, {"acks": "all"}) == []
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "g-wm"})
    try:
        md = consumer.list_topics(timeout=10)  # topics = null: every topic
        assert topic in md.topics
        assert sorted(md.topics[topic].partitions) == [0, 1, 2]
        assert md.topics[topic].error is None
        for p in range(3):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            assert (low, high) == (0, 10)
        # offsets_for_times: a timestamp before everything -> the first offset.
        found = consumer.offsets_for_times([TopicPartition(topic, 0, 0)], timeout=10)
        assert found[0].offset == 0
    finally:
        consumer.close()


@pytest.mark.timeout(60)
def test_long_poll_wakes_when_data_arrives(broker: BrokerProcess) -> None:
    """A consumer parked in a 10 s fetch gets a new record long before the wait ends."""
    topic = "ck-long-poll"
    create_topic(broker.bootstrap, topic, 1)
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "g-lp",
                         "fetch.wait.max.ms": 10000, "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        assert consumer.poll(1.5) is None  # now parked on the empty partition
        producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
        producer.produce(topic, value=b"wake", partition=0)
        assert producer.flush(10) == 0
        sent = time.monotonic()
        msg = None
        while msg is None and time.monotonic() - sent < 20:
            msg = consumer.poll(0.1)
        waited = time.monotonic() - sent
        assert msg is not None and msg.error() is None and msg.value() == b"wake"
        assert waited < 5.0, f"record arrived after {waited:.1f} s: fetch not woken"
    finally:
        consumer.close()
