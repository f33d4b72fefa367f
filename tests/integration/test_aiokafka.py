"""aiokafka 0.14 against a real two-core broker: produce with acks 0, 1 and all (and idempotent),
consume by assign, every record checked."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from broker_proc import BrokerProcess, check_consumed, create_topic, expected_records

PARTITIONS = 2
PER_PARTITION = 150


async def _produce(bootstrap: str, topic: str, expected: dict[int, list[tuple[bytes, bytes]]],
                   acks: int | str, idempotent: bool) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=acks,
                                enable_idempotence=idempotent, linger_ms=2)
    await producer.start()
    try:
        futures = [await producer.send(topic, value=v, key=k, partition=p)
                   for p, records in expected.items() for k, v in records]
        await asyncio.wait_for(producer.flush(), 20)
        if acks != 0:
            await asyncio.wait_for(asyncio.gather(*futures), 20)
    finally:
        await producer.stop()


async def _consume(bootstrap: str, topic: str, partitions: int, total: int
                   ) -> dict[int, list[tuple[int, bytes | None, bytes | None]]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                fetch_max_wait_ms=100)
    await consumer.start()
    got: dict[int, list[tuple[int, bytes | None, bytes | None]]] = {}
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        count = 0
        while count < total and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for tp, msgs in batch.items():
                for m in msgs:
                    got.setdefault(tp.partition, []).append((m.offset, m.key, m.value))
                    count += 1
    finally:
        await consumer.stop()
    return got


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("acks", "idempotent"), [(0, False), (1, False), ("all", False),
                                                  ("all", True)])
def test_produce_and_consume_by_assign(broker: BrokerProcess, acks: int | str,
                                       idempotent: bool) -> None:
    topic = f"ak-acks-{acks}-{'idem' if idempotent else 'plain'}"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    expected = expected_records(topic, PARTITIONS, PER_PARTITION)

    async def run() -> dict[int, list[tuple[int, bytes | None, bytes | None]]]:
        await _produce(broker.bootstrap, topic, expected, acks, idempotent)
        return await _consume(broker.bootstrap, topic, PARTITIONS, PARTITIONS * PER_PARTITION)

    check_consumed(expected, asyncio.run(asyncio.wait_for(run(), 60)))
