"""What the transform integration tests share (single node and cluster): the transforms module
they deploy, the `redshank transform` CLI, and bounded produce / read-back / wait helpers on
confluent-kafka."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

__all__ = ["TRANSFORMS_PY", "cli", "consume_all", "listed", "produce", "wait_for", "written"]

TRANSFORMS_PY = '''
import os
from redshank.actors.embed.transform import Output, Transform

class Upper(Transform):
    def process(self, record):
        yield Output(value=record.value.upper(), key=record.key)

class Ident(Transform):
    def process(self, record):
        return [Output(value=record.value, key=record.key)]

class Forward(Transform):
    """Each record forwarded as it came (its timestamp kept): odd offsets returned, even ones
    yielded; every third one's value read first (written from its parsed fields)."""
    def process(self, record):
        if record.offset % 2:
            return record
        return self._one(record)

    def _one(self, record):
        if record.offset % 3 == 0:
            _ = record.value
        yield record

class TwiceFails(Transform):
    """Raises the first 2 times it sees b"boom", then passes."""
    def setup(self, ctx):
        self.calls = 0
    def process(self, record):
        if record.value == b"boom":
            self.calls += 1
            if self.calls <= 2:
                raise ValueError(f"boom {self.calls}")
        yield Output(value=record.value)

class Big(Transform):
    """Each value as it is, but b"big" becomes 1.2 MB: a batch above the output topic's
    default max.message.bytes, refused until that is raised."""
    def process(self, record):
        if record.value == b"big":
            return Output(value=b"B" * 1_200_000)
        return Output(value=record.value)

class UntilMarker(Transform):
    """Raises on b"wait" until the file named by the record's key exists."""
    def process(self, record):
        if record.value == b"wait" and not os.path.exists(record.key.decode()):
            raise RuntimeError("marker missing")
        yield Output(value=record.value)
'''


def cli(cwd: Path, bootstrap: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "redshank.tools.cli", "transform", *args, "--brokers",
         bootstrap, "--timeout", "10"],
        cwd=cwd, capture_output=True, text=True, timeout=60, env=dict(os.environ))


def listed(cwd: Path, bootstrap: str) -> dict[str, Any]:
    out = cli(cwd, bootstrap, "list", "--json")
    assert out.returncode == 0, out.stderr
    return {t["name"]: t for t in json.loads(out.stdout)}


def wait_for(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def consume_all(bootstrap: str, topic: str, partitions: int, timeout: float = 20.0
                ) -> list[tuple[int, bytes | None, bytes | None]]:
    """Every record of `topic` up to its high watermarks: (partition, key, value)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{topic}",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 100})
    got: list[tuple[int, bytes | None, bytes | None]] = []
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(partitions)}
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions) if ends[p]])
        pos = dict.fromkeys(range(partitions), 0)
        deadline = time.monotonic() + timeout
        while any(pos[p] < ends[p] for p in pos):
            assert time.monotonic() < deadline, f"{topic}: read {pos} of {ends}"
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            assert msg.error() is None, f"consumer error: {msg.error()}"
            p, offset = msg.partition(), msg.offset()
            assert p is not None and offset is not None
            if offset < ends[p]:
                got.append((p, msg.key(), msg.value()))
            pos[p] = offset + 1
    finally:
        consumer.close()
    return got


def written(bootstrap: str, topic: str, partitions: int) -> int:
    """The sum of `topic`'s high watermarks."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"hw-{topic}"})
    try:
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                   for p in range(partitions))
    finally:
        consumer.close()


def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]],
            partition: int | None = None) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 5})
    errors: list[KafkaError] = []

    def report(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            errors.append(err)

    for key, value in records:
        if partition is None:
            producer.produce(topic, value=value, key=key, on_delivery=report)
        else:
            producer.produce(topic, value=value, key=key, partition=partition,
                             on_delivery=report)
        producer.poll(0)
    assert producer.flush(30) == 0
    assert errors == []
