"""Compressed produce across clients: confluent-kafka, kafka-python and aiokafka each produce with
gzip, snappy, lz4 and zstd, and each of them consumes every client's batches back, record by record.

The broker keeps batches opaque (G21): these tests prove it stores and serves compressed batches
byte-exact and that each client can decompress what the others wrote."""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from broker_proc import (
    BrokerProcess,
    check_consumed,
    consume_aiokafka,
    create_topic,
    expected_records,
)
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KpTopicPartition

from redshank.protocol.record_batch import Compression, parse_header

RECORDS = 200
CODECS = ["gzip", "snappy", "lz4", "zstd"]
Records = list[tuple[bytes, bytes]]
Consumed = dict[int, list[tuple[int, bytes | None, bytes | None]]]


def _produce_confluent(bootstrap: str, topic: str, records: Records, codec: str) -> None:
    errors: list[KafkaError] = []
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all",
                         "compression.type": codec})

    def report(err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            errors.append(err)

    for key, value in records:
        producer.produce(topic, value=value, key=key, partition=0, on_delivery=report)
        producer.poll(0)
    assert producer.flush(20) == 0, "records not delivered within 20 s"
    assert errors == []


def _produce_kafka_python(bootstrap: str, topic: str, records: Records, codec: str) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                             compression_type=codec)
    try:
        futures = [producer.send(topic, key=k, value=v, partition=0) for k, v in records]
        producer.flush(20)
        for f in futures:
            f.get(timeout=10)
    finally:
        producer.close(10)


def _produce_aiokafka(bootstrap: str, topic: str, records: Records, codec: str) -> None:
    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                    compression_type=codec)
        await producer.start()
        try:
            futures = [await producer.send(topic, value=v, key=k, partition=0)
                       for k, v in records]
            await asyncio.wait_for(asyncio.gather(*futures), 20)
        finally:
            await producer.stop()

    asyncio.run(asyncio.wait_for(run(), 40))


def _consume_confluent(bootstrap: str, topics: list[str], total: int) -> dict[str, Consumed]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "cz-confluent",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 100})
    got: dict[str, Consumed] = {}
    try:
        consumer.assign([TopicPartition(t, 0, 0) for t in topics])
        deadline = time.monotonic() + 20
        count = 0
        while count < total and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            assert msg.error() is None, f"consumer error: {msg.error()}"
            topic = msg.topic()
            assert topic is not None
            got.setdefault(topic, {}).setdefault(msg.partition() or 0, []).append(
                (msg.offset() or 0, msg.key(), msg.value()))
            count += 1
    finally:
        consumer.close()
    return got


def _consume_kafka_python(bootstrap: str, topics: list[str], total: int
                          ) -> dict[str, Consumed]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             fetch_max_wait_ms=100)
    got: dict[str, Consumed] = {}
    try:
        tps = [KpTopicPartition(t, 0) for t in topics]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        deadline = time.monotonic() + 20
        count = 0
        while count < total and time.monotonic() < deadline:
            for tp, msgs in consumer.poll(timeout_ms=200).items():
                for m in msgs:
                    got.setdefault(tp.topic, {}).setdefault(tp.partition, []).append(
                        (m.offset, m.key, m.value))
                    count += 1
    finally:
        consumer.close()
    return got


def _consume_aiokafka(bootstrap: str, topics: list[str], total: int) -> dict[str, Consumed]:
    got: dict[str, Consumed] = {}
    for (topic, partition), records in consume_aiokafka(bootstrap, [(t, 0) for t in topics],
                                                        total).items():
        got.setdefault(topic, {})[partition] = records
    return got


def _stored_codecs(data_dir: Path, topic: str) -> set[int]:
    """The compression codec of every batch stored in the topic's partition-0 segment files
    (Kafka wire format; a segment's pre-allocated tail is zeros, where the batches end)."""
    codecs: set[int] = set()
    files = sorted((data_dir / "kafka" / f"{topic}-0").glob("*.log"))
    assert files, f"no segment files for {topic} under {data_dir}"
    for path in files:
        buf = path.read_bytes()
        pos = 0
        while pos + 61 <= len(buf) and struct.unpack_from(">i", buf, pos + 8)[0] > 0:
            header = parse_header(buf, pos)
            codecs.add(header.compression)
            pos += header.size
    return codecs


PRODUCERS: dict[str, Callable[[str, str, Records, str], None]] = {
    "confluent": _produce_confluent,
    "kafka-python": _produce_kafka_python,
    "aiokafka": _produce_aiokafka,
}
CONSUMERS: dict[str, Callable[[str, list[str], int], dict[str, Consumed]]] = {
    "confluent": _consume_confluent,
    "kafka-python": _consume_kafka_python,
    "aiokafka": _consume_aiokafka,
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("codec", CODECS)
def test_each_client_reads_every_clients_compressed_batches(broker: BrokerProcess,
                                                            codec: str) -> None:
    expected: dict[str, Records] = {}
    for name, produce in PRODUCERS.items():
        topic = f"cz-{codec}-{name}"
        create_topic(broker.bootstrap, topic, 1)
        records = expected_records(topic, 1, RECORDS)[0]
        produce(broker.bootstrap, topic, records, codec)
        expected[topic] = records
        # The batches really are compressed, and stored as the client sent them (G21).
        assert _stored_codecs(broker.data_dir, topic) == {Compression[codec.upper()]}, name
    topics = sorted(expected)
    for reader, consume in CONSUMERS.items():
        got = consume(broker.bootstrap, topics, RECORDS * len(topics))
        for topic in topics:
            try:
                check_consumed({0: expected[topic]}, got.get(topic, {}))
            except AssertionError as e:
                raise AssertionError(f"{reader} reading {topic}: {e}") from e
