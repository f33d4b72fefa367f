"""Classic consumer groups with real clients: subscribe, commit, and a new consumer of the same
group resumes from the committed offset (confluent-kafka, kafka-python, aiokafka); committed
offsets survive a broker restart."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from broker_proc import BrokerProcess, create_topic
from confluent_kafka import Consumer, Producer, TopicPartition
from kafka import KafkaConsumer

TOTAL = 40
HALF = 20


def _fill(bootstrap: str, topic: str) -> list[bytes]:
    create_topic(bootstrap, topic, 1)
    values = [f"{topic}-{i}".encode() for i in range(TOTAL)]
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for v in values:
        producer.produce(topic, value=v, partition=0)
    assert producer.flush(20) == 0
    return values


def _ck_take(bootstrap: str, topic: str, group: str, n: int) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    got: list[bytes] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 20
        while len(got) < n and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            assert msg.error() is None, f"consumer error: {msg.error()}"
            got.append(msg.value())
            if len(got) == n:
                consumer.commit(message=msg, asynchronous=False)
    finally:
        consumer.close()
    return got


@pytest.mark.timeout(90)
def test_confluent_kafka_group_commit_and_resume(broker: BrokerProcess) -> None:
    values = _fill(broker.bootstrap, "grp-ck")
    assert _ck_take(broker.bootstrap, "grp-ck", "ck-group", HALF) == values[:HALF]
    assert _ck_take(broker.bootstrap, "grp-ck", "ck-group", HALF) == values[HALF:]


def _kp_take(bootstrap: str, topic: str, group: str, n: int) -> list[bytes]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             max_poll_records=n)
    got: list[bytes] = []
    try:
        deadline = time.monotonic() + 20
        while len(got) < n and time.monotonic() < deadline:
            for msgs in consumer.poll(timeout_ms=200, max_records=n - len(got)).values():
                got += [m.value for m in msgs]
        consumer.commit()
    finally:
        consumer.close()
    return got


@pytest.mark.timeout(90)
def test_kafka_python_group_commit_and_resume(broker: BrokerProcess) -> None:
    values = _fill(broker.bootstrap, "grp-kp")
    assert _kp_take(broker.bootstrap, "grp-kp", "kp-group", HALF) == values[:HALF]
    assert _kp_take(broker.bootstrap, "grp-kp", "kp-group", HALF) == values[HALF:]


async def _ak_take(bootstrap: str, topic: str, group: str, n: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    got: list[bytes] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while len(got) < n and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=200, max_records=n - len(got))
            for msgs in batch.values():
                got += [m.value for m in msgs if m.value is not None]
        await consumer.commit()
    finally:
        await consumer.stop()
    return got


@pytest.mark.timeout(90)
def test_aiokafka_group_commit_and_resume(broker: BrokerProcess) -> None:
    values = _fill(broker.bootstrap, "grp-ak")

    async def run() -> tuple[list[bytes], list[bytes]]:
        first = await _ak_take(broker.bootstrap, "grp-ak", "ak-group", HALF)
        second = await _ak_take(broker.bootstrap, "grp-ak", "ak-group", HALF)
        return first, second

    first, second = asyncio.run(asyncio.wait_for(run(), 60))
    assert first == values[:HALF]
    assert second == values[HALF:]


@pytest.mark.timeout(120)
def test_committed_offsets_survive_restart(tmp_path: Path) -> None:
    node = BrokerProcess(tmp_path / "data", cores=2)
    node.start()
    try:
        values = _fill(node.bootstrap, "grp-restart")
        assert _ck_take(node.bootstrap, "grp-restart", "r-group", HALF) == values[:HALF]
    finally:
        assert node.stop() == 0
    again = BrokerProcess(tmp_path / "data", cores=2)
    again.start()
    try:
        consumer = Consumer({"bootstrap.servers": again.bootstrap, "group.id": "r-group"})
        try:
            committed = consumer.committed([TopicPartition("grp-restart", 0)], timeout=15)
        finally:
            consumer.close()
        assert committed[0].offset == HALF
        assert _ck_take(again.bootstrap, "grp-restart", "r-group", HALF) == values[HALF:]
    finally:
        assert again.stop() == 0


@pytest.mark.timeout(90)
def test_two_members_rebalance_on_join_and_leave(broker: BrokerProcess) -> None:
    topic = "grp-rebalance"
    create_topic(broker.bootstrap, topic, 2)
    conf = {"bootstrap.servers": broker.bootstrap, "group.id": "rb-group",
            "session.timeout.ms": 6000, "heartbeat.interval.ms": 300,
            "enable.auto.commit": False}

    def assigned(c: Consumer) -> set[int]:
        return {tp.partition for tp in c.assignment()}

    def poll_until(consumers: list[Consumer], want: list[set[int]], what: str) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for c in consumers:
                c.poll(0.1)
            if [assigned(c) for c in consumers] == want:
                return
        raise AssertionError(f"{what}: assignments {[assigned(c) for c in consumers]}")

    a = Consumer(conf)
    a.subscribe([topic])
    try:
        poll_until([a], [{0, 1}], "lone member")
        b = Consumer(conf)
        b.subscribe([topic])
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                a.poll(0.1)
                b.poll(0.1)
                got = (assigned(a), assigned(b))
                if len(got[0]) == 1 and len(got[1]) == 1 and got[0] | got[1] == {0, 1}:
                    break
            else:
                raise AssertionError(f"after join: {assigned(a)} / {assigned(b)}")
        finally:
            b.close()  # LeaveGroup: the survivor takes both partitions back
        poll_until([a], [{0, 1}], "after leave")
    finally:
        a.close()
