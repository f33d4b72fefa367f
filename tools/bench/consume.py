"""`redshank bench consume`: confluent-kafka consuming 1 KiB records (written with acks=all, so
fsynced on redshank) from 1 and 8 partitions of a broker this command starts, by assign from
offset 0, next to the Tansu broker (memory storage) when it is found (see `bench produce`).

Prints one JSON object as the last line: msg/s and MB/s of the consume phase alone, and the
broker's CPU over load plus consume. Bounded by `--messages` and `--seconds`. A Kafka client
only: knows nothing of the broker's internals."""

from __future__ import annotations

import argparse
import time

from redshank.tools.bench._broker import run_bench
from redshank.tools.bench._progress import step
from redshank.tools.bench.produce import produce

__all__ = ["main"]

TARGETS = {"consume_msg_per_s": 300_000}


def _measure(topic: str, bootstrap: str, partitions: int, args: argparse.Namespace
             ) -> dict[str, object]:
    from confluent_kafka import Consumer, TopicPartition

    step("loading the topic")
    loaded = produce(topic, bootstrap, args.messages, args.seconds)
    total = loaded["produced"]
    assert isinstance(total, int)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{topic}",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 100,
                         "queued.min.messages": 200_000, "fetch.max.bytes": 52_428_800,
                         "max.partition.fetch.bytes": 10_485_760})
    count = 0
    size = 0
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        step("measuring consume")
        start = time.perf_counter()
        deadline = start + args.seconds
        while count < total and time.perf_counter() < deadline:
            for msg in consumer.consume(10_000, 0.2):
                if msg.error() is None:
                    count += 1
                    size += len(msg.value() or b"")
        elapsed = time.perf_counter() - start
    finally:
        consumer.close()
    return {"produced": total, "consumed": count, "seconds": round(elapsed, 3),
            "msg_per_s": round(count / elapsed), "mb_per_s": round(size / elapsed / 1e6, 1),
            "vs_target": round(count / elapsed / TARGETS["consume_msg_per_s"], 3),
            "note": "broker CPU covers loading the topic and consuming it"}


def main(argv: list[str]) -> int:
    return run_bench("consume", argv, _measure, TARGETS, {"messages": 200_000, "seconds": 20.0})
