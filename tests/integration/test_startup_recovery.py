"""A broker restarted after kill -9 tells its partitions' recovery in its log (issue 15):
`recovery_started` with the partitions each core found on disk, `recovery_done` with the
megabytes opened and how long it took, once they are open again."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from broker_proc import BrokerProcess, create_topic
from confluent_kafka import Consumer, Producer, TopicPartition

pytestmark = pytest.mark.timeout(120)

TOPIC = "recover-me"
PARTITIONS = 3


def _events(log: Path, name: str) -> list[dict[str, object]]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{") and f'"{name}"' in line:
            event = json.loads(line)
            if event.get("event") == name:
                out.append(event)
    return out


def test_restart_after_sigkill_logs_the_recovery_summary(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "data", cores=2,
                           extra_args=("--log-format", "json", "--log-level", "info"))
    try:
        broker.start()
        create_topic(broker.bootstrap, TOPIC, PARTITIONS)
        producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
        for i in range(300):
            producer.produce(TOPIC, b"x" * 1000, partition=i % PARTITIONS)
        assert producer.flush(30) == 0
        broker.kill()
        assert _events(broker.log_path, "recovery_done") == []  # a new data dir: nothing found

        broker.start()
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "recovery"})
        try:  # a single node opens a partition at its first request
            ends = [consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=15)[1]
                    for p in range(PARTITIONS)]
        finally:
            consumer.close()
        assert ends == [100] * PARTITIONS
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            done = _events(broker.log_path, "recovery_done")
            if sum(int(str(e["partitions"])) for e in done) >= PARTITIONS:
                break
            time.sleep(0.1)  # polling the broker's log file, bounded above
        started = _events(broker.log_path, "recovery_started")
        assert sum(int(str(e["partitions"])) for e in started) == PARTITIONS, broker.log_tail()
        assert sum(int(str(e["partitions"])) for e in done) == PARTITIONS, broker.log_tail()
        assert {e["core"] for e in done} == {e["core"] for e in started}
        assert sum(float(str(e["mb"])) for e in done) >= 0.2  # 300 KB of values, and headers
        assert all(float(str(e["seconds"])) >= 0 and float(str(e["open_s"])) >= 0 for e in done)
        assert broker.stop() == 0
    finally:
        broker.kill()
