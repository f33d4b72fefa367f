"""Transactions (KIP-98, issue 18) from the other Python clients, and the last stable offset, on
the session's broker: aiokafka's and kafka-python's transactional producers commit and abort,
and a confluent-kafka read_committed consumer sees exactly the committed records, in order
(read_uncommitted sees the aborted ones too). While a transaction is open, a read_committed
consumer is held back at the last stable offset (its end of the partition, and what ListOffsets
answers it) even for records written after it by a plain producer; read_uncommitted is not;
the commit releases them."""

from __future__ import annotations

import asyncio
import time

import pytest
from broker_proc import BrokerProcess, create_topic
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

COMMITTED = [f"c{i}".encode() for i in range(6)]
ABORTED = [f"a{i}".encode() for i in range(4)]


def _consume_all(bootstrap: str, topic: str, partitions: int, isolation: str) -> list[bytes]:
    """Every value up to each partition's end for `isolation` (the last stable offset under
    read_committed), in partition then offset order."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-{isolation}",
                         "isolation.level": isolation, "enable.partition.eof": True,
                         "enable.auto.commit": False, "log_level": 0})
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        got: dict[int, list[bytes]] = {p: [] for p in range(partitions)}
        at_end: set[int] = set()
        deadline = time.monotonic() + 30
        while len(at_end) < partitions:
            assert time.monotonic() < deadline, f"{topic} {isolation}: not at the end: {got}"
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                assert err.code() == KafkaError._PARTITION_EOF, err
                at_end.add(msg.partition())
            else:
                got[msg.partition()].append(msg.value())
        return [v for p in range(partitions) for v in got[p]]
    finally:
        consumer.close()


def _settled(bootstrap: str, topic: str, partitions: int) -> None:
    """Wait (bounded) until no transaction is open on `topic`: EndTxn is answered once the
    commit is decided, its markers follow; until then read_committed stops short."""
    deadline = time.monotonic() + 20
    while True:
        ends = [(_end(bootstrap, topic, p, "read_committed"),
                 _end(bootstrap, topic, p, "read_uncommitted")) for p in range(partitions)]
        if all(lso == hw for lso, hw in ends):
            return
        assert time.monotonic() < deadline, f"{topic}: (LSO, HW) {ends}"
        time.sleep(0.05)


def _check(bootstrap: str, topic: str) -> None:
    """Two partitions, records sent round-robin: committed ones only (in order) under
    read_committed, every one under read_uncommitted."""
    _settled(bootstrap, topic, 2)
    committed = _consume_all(bootstrap, topic, 2, "read_committed")
    assert committed == COMMITTED[0::2] + COMMITTED[1::2]
    uncommitted = _consume_all(bootstrap, topic, 2, "read_uncommitted")
    assert sorted(uncommitted) == sorted(COMMITTED + ABORTED)


@pytest.mark.timeout(60)
def test_aiokafka_transactional_producer(broker: BrokerProcess) -> None:
    from aiokafka import AIOKafkaProducer

    topic = "txn-aiokafka"
    create_topic(broker.bootstrap, topic, 2)

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap,
                                    transactional_id="txn-clients-aiokafka-id")
        await producer.start()  # InitProducerId with the transactional id
        try:
            async def send(values: list[bytes], first: int) -> None:
                for i, v in enumerate(values, first):
                    await producer.send_and_wait(topic, v, partition=i % 2)

            await producer.begin_transaction()
            await send(COMMITTED[:4], 0)
            await producer.commit_transaction()
            await producer.begin_transaction()
            await send(ABORTED, 0)
            await producer.abort_transaction()
            async with producer.transaction():  # commits on leaving the block
                await send(COMMITTED[4:], 4)
        finally:
            await producer.stop()

    asyncio.run(asyncio.wait_for(run(), 40))
    _check(broker.bootstrap, topic)


@pytest.mark.timeout(60)
def test_kafka_python_transactional_producer(broker: BrokerProcess) -> None:
    from kafka import KafkaProducer

    topic = "txn-kafka-python"
    create_topic(broker.bootstrap, topic, 2)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap,
                             transactional_id="txn-clients-kafka-python-id")
    try:
        def send(values: list[bytes], first: int) -> None:
            for i, v in enumerate(values, first):
                producer.send(topic, v, partition=i % 2).get(timeout=20)

        producer.init_transactions()
        producer.begin_transaction()
        send(COMMITTED[:4], 0)
        producer.commit_transaction()
        producer.begin_transaction()
        send(ABORTED, 0)
        producer.abort_transaction()
        producer.begin_transaction()
        send(COMMITTED[4:], 4)
        producer.commit_transaction()
    finally:
        producer.close(timeout=10)
    _check(broker.bootstrap, topic)


def _end(bootstrap: str, topic: str, partition: int, isolation: str) -> int:
    """A partition's end as ListOffsets answers a consumer of `isolation`: the last stable
    offset for read_committed, the high watermark for read_uncommitted."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-ends",
                         "isolation.level": isolation, "log_level": 0})
    try:
        return int(consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                  timeout=10)[1])
    finally:
        consumer.close()


@pytest.mark.timeout(60)
def test_open_transaction_holds_back_read_committed_only(broker: BrokerProcess) -> None:
    topic = "txn-lso"
    create_topic(broker.bootstrap, topic, 1)
    b = broker.bootstrap
    txn = Producer({"bootstrap.servers": b, "transactional.id": "txn-lso-id", "log_level": 0})
    plain = Producer({"bootstrap.servers": b, "enable.idempotence": True, "log_level": 0})
    txn.init_transactions(30)
    txn.begin_transaction()
    for v in (b"c0", b"c1", b"c2"):
        txn.produce(topic, v, partition=0)
    txn.commit_transaction(30)  # offsets 0-2, the marker 3
    txn.begin_transaction()
    for v in (b"o0", b"o1"):
        txn.produce(topic, v, partition=0)
    assert txn.flush(30) == 0  # offsets 4-5: the open transaction starts at 4
    plain.produce(topic, b"p0", partition=0)
    assert plain.flush(30) == 0  # offset 6, past the open transaction

    assert _consume_all(b, topic, 1, "read_committed") == [b"c0", b"c1", b"c2"]
    assert _end(b, topic, 0, "read_committed") == 4  # the last stable offset
    assert _consume_all(b, topic, 1, "read_uncommitted") == [
        b"c0", b"c1", b"c2", b"o0", b"o1", b"p0"]
    assert _end(b, topic, 0, "read_uncommitted") == 7  # the high watermark

    txn.commit_transaction(30)
    # The commit marker (offset 7) settles the transaction: the LSO is the high watermark.
    _settled(b, topic, 1)
    assert _consume_all(b, topic, 1, "read_committed") == [
        b"c0", b"c1", b"c2", b"o0", b"o1", b"p0"]
    assert _end(b, topic, 0, "read_committed") == _end(b, topic, 0, "read_uncommitted") == 8
