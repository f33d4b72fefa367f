"""Issue 12 against a real broker: CRC-valid produce requests whose batch headers lie (negative,
huge or positive lastOffsetDelta, a wrong count) and poison batches (codec 7, an 11-byte varint,
a 2^40 record length, gzip and zstd bombs), sent as raw Produce requests with acks=all and
acks=1, each get Kafka's error and store nothing: the records produced before stay readable by
confluent-kafka at their offsets, and later produces are answered and land at the next ones."""

from __future__ import annotations

import pytest
from broker_proc import BrokerProcess
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from poison import EXPECTED_CODE, LIES, POISON, RawClient, batch
from test_confluent_kafka import consume_assigned

TOPIC = "integrity"
PARTITIONS = 2
# The gzip bomb (1 GiB in ~1.06 MB) must reach the decompression cap, not the size limit.
MAX_MESSAGE_BYTES = 4 << 20


def _create_topic(bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(TOPIC, PARTITIONS, 1, config={"max.message.bytes": str(MAX_MESSAGE_BYTES)})],
        operation_timeout=10, request_timeout=15)
    futures[TOPIC].result(timeout=20)


def _produce(bootstrap: str, partition: int, values: list[bytes]) -> list[int]:
    """Produce with confluent-kafka (acks=all); the offsets the broker assigned, in order."""
    offsets: list[int] = []
    errors: list[KafkaError] = []

    def report(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            errors.append(err)
        else:
            offsets.append(msg.offset())

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 1,
                         "enable.idempotence": False})
    for value in values:
        producer.produce(TOPIC, value=value, partition=partition, on_delivery=report)
    assert producer.flush(20) == 0
    assert errors == []
    return offsets


def _high_watermark(bootstrap: str, partition: int) -> tuple[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "g-integrity"})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(TOPIC, partition), timeout=10)
        return low, high
    finally:
        consumer.close()


@pytest.mark.timeout(180)
def test_lies_and_poison_are_refused_and_nothing_moves(broker: BrokerProcess) -> None:
    _create_topic(broker.bootstrap)
    partition = 1
    before = [b"before-%d" % i for i in range(10)]
    assert _produce(broker.bootstrap, partition, before) == list(range(10))

    raw = RawClient(broker.bootstrap)
    try:
        for acks in (-1, 1):
            for name, records in {**LIES, **POISON}.items():
                # No hang: the raw client's socket timeout bounds every answer.
                answer = raw.produce(TOPIC, partition, records, acks=acks)
                assert answer is not None
                assert (name, answer.error_code) == (name, EXPECTED_CODE[name]), \
                    answer.error_message
                assert answer.error_message, name
                assert answer.base_offset == -1, name
        # A good raw batch still lands at the next offset, with both acks levels.
        for acks, offset in ((-1, 10), (1, 13)):
            answer = raw.produce(TOPIC, partition, batch(3), acks=acks)
            assert answer is not None
            assert (answer.error_code, answer.base_offset) == (0, offset)
    finally:
        raw.close()

    after = [b"after-%d" % i for i in range(10)]
    assert _produce(broker.bootstrap, partition, after) == list(range(16, 26))
    assert _high_watermark(broker.bootstrap, partition) == (0, 26)
    got = consume_assigned(broker.bootstrap, TOPIC, PARTITIONS, 26)
    assert list(got) == [partition]
    assert [offset for offset, _key, _value in got[partition]] == list(range(26))
    raw_values = [b"v" * 20 + str(i).encode() for i in range(3)]
    assert [value for _, _key, value in got[partition]] == before + raw_values * 2 + after
