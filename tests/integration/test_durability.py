"""kill -9 durability: an idempotent acks=all producer keeps producing while the broker is
SIGKILLed and restarted (bounded rounds); afterwards every acknowledged record is in the log
exactly once and offsets are dense (no offset means two things)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from broker_proc import BrokerProcess, create_topic, free_port, start_on
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from test_confluent_kafka import consume_assigned

ROUNDS = int(os.environ.get("BROKER_KILL_ROUNDS", "3"))
PARTITIONS = 2



def _high_watermarks(bootstrap: str, topic: str) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "hw"})
    try:
        return [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(PARTITIONS)]
    finally:
        consumer.close()


@pytest.mark.timeout(150)
def test_acked_records_survive_sigkill_exactly_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    node = start_on(data_dir, port)
    try:
        topic = "durable"
        create_topic(node.bootstrap, topic, PARTITIONS)
        producer = Producer({
            "bootstrap.servers": node.bootstrap, "acks": "all", "enable.idempotence": True,
            "linger.ms": 5, "message.timeout.ms": 90000, "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 300, "retry.backoff.ms": 50,
        })
        acked: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
        failed: list[KafkaError] = []

        def report(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                failed.append(err)
            else:
                value = msg.value()
                assert value is not None
                acked[msg.partition()].append(value)

        seq = 0

        def produce_for(seconds: float) -> None:
            nonlocal seq
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                try:
                    producer.produce(topic, value=b"%08d" % seq, partition=seq % PARTITIONS,
                                     on_delivery=report)
                    seq += 1
                except BufferError:
                    producer.poll(0.05)
                producer.poll(0)
                if seq % 50 == 0:
                    time.sleep(0.01)  # ~5k records/s: keep the backlog bounded

        for _ in range(ROUNDS):
            produce_for(1.0)
            node.kill()
            produce_for(0.3)  # the producer keeps going (and retrying) while the node is down
            node = start_on(data_dir, port)
        produce_for(0.5)
        left = producer.flush(60)
        assert left == 0, f"{left} records never acknowledged"
        assert failed == [], f"delivery failures: {failed[:5]}"
        total = sum(len(v) for v in acked.values())
        assert total == seq, f"{seq} produced, {total} acknowledged"
        ends = _high_watermarks(node.bootstrap, topic)
        got = consume_assigned(node.bootstrap, topic, PARTITIONS, sum(ends), timeout=20)
        for p in range(PARTITIONS):
            records = got.get(p, [])
            offsets = [o for o, _k, _v in records]
            assert offsets == list(range(ends[p])), f"partition {p}: offsets not dense"
            values = [v for _o, _k, v in records]
            assert len(values) == len(set(values)), (
                f"partition {p}: {len(values) - len(set(values))} duplicated records")
            missing = set(acked[p]) - set(values)
            assert not missing, f"partition {p}: {len(missing)} acknowledged records lost"
    finally:
        node.stop()


@pytest.mark.timeout(90)
def test_core_killed_and_restarted_by_supervisor(tmp_path: Path) -> None:
    """SIGKILL one core: the supervisor restarts it, its partitions reopen (recovered from
    disk) on first use, and an idempotent producer's records all land exactly once."""
    node = BrokerProcess(tmp_path / "data", cores=2)
    node.start()
    try:
        topic = "core-restart"
        create_topic(node.bootstrap, topic, 4)
        producer = Producer({"bootstrap.servers": node.bootstrap, "acks": "all",
                             "enable.idempotence": True, "linger.ms": 5,
                             "message.timeout.ms": 60000})
        failed: list[KafkaError] = []

        def report(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                failed.append(err)

        def produce(lo: int, hi: int) -> None:
            for i in range(lo, hi):
                producer.produce(topic, value=b"%06d" % i, partition=i % 4, on_delivery=report)
                producer.poll(0)
            assert producer.flush(60) == 0

        produce(0, 2000)
        info = json.loads((node.data_dir / "node.json").read_text())
        os.kill(info["pids"][1], signal.SIGKILL)
        produce(2000, 4000)
        assert failed == [], f"delivery failures: {failed[:5]}"
        got = consume_assigned(node.bootstrap, topic, 4, 4000, timeout=20)
        values = sorted(v for records in got.values() for _o, _k, v in records if v)
        assert values == [b"%06d" % i for i in range(4000)]
    finally:
        assert node.stop() == 0
