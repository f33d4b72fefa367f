"""aiokafka 0.14 against a real two-core broker: produce with acks 0, 1 and all (and idempotent),
consume by assign, every record checked."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer
from broker_proc import (
    BrokerProcess,
    check_consumed,
    consume_aiokafka,
    create_topic,
    expected_records,
)

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


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("acks", "idempotent"), [(0, False), (1, False), ("all", False),
                                                  ("all", True)])
def test_produce_and_consume_by_assign(broker: BrokerProcess, acks: int | str,
                                       idempotent: bool) -> None:
    topic = f"ak-acks-{acks}-{'idem' if idempotent else 'plain'}"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    expected = expected_records(topic, PARTITIONS, PER_PARTITION)

    asyncio.run(asyncio.wait_for(
        _produce(broker.bootstrap, topic, expected, acks, idempotent), 60))
    polled = consume_aiokafka(broker.bootstrap, [(topic, p) for p in range(PARTITIONS)],
                              PARTITIONS * PER_PARTITION)
    check_consumed(expected, {p: records for (_t, p), records in polled.items()})
