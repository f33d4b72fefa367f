"""`redshank bench produce`: confluent-kafka producing 1 KiB records with acks=all to 1 and 8
partitions of a broker this command starts (redshank fsyncs before acking), next to the Tansu
broker (memory storage, no fsync) when it is found (`--tansu PATH`, $REDSHANK_TANSU or PATH).

Prints one JSON object as the last line: msg/s, MB/s and the broker's CPU microseconds per
produced message (its whole process tree, from /proc). Each run is bounded by `--messages` and
`--seconds`. Knows nothing of the broker's internals: it is a Kafka client."""

from __future__ import annotations

import argparse
import os
import time

from redshank.tools.bench._broker import run_bench

__all__ = ["main", "produce"]

VALUE = os.urandom(1024)
TARGETS = {"produce_msg_per_s_acks_all": 100_000}


def produce(topic: str, bootstrap: str, messages: int, seconds: float, acks: str = "all"
            ) -> dict[str, object]:
    """Produce up to `messages` 1 KiB records (at most `seconds` of producing, plus a bounded
    flush); delivered and failed counts and the rate over the whole run."""
    from confluent_kafka import KafkaError, Message, Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": acks, "linger.ms": 5,
                         "batch.size": 1_000_000, "queue.buffering.max.messages": 500_000,
                         "queue.buffering.max.kbytes": 1_048_576, "enable.idempotence": False})
    delivered = 0
    failed = 0

    def report(err: KafkaError | None, _msg: Message) -> None:
        nonlocal delivered, failed
        if err is None:
            delivered += 1
        else:
            failed += 1

    start = time.perf_counter()
    deadline = start + seconds
    sent = 0
    while sent < messages and time.perf_counter() < deadline:
        try:
            producer.produce(topic, VALUE, on_delivery=report)
            sent += 1
        except BufferError:
            producer.poll(0.01)  # queue full: let deliveries drain it
            continue
        if sent % 1000 == 0:
            producer.poll(0)
    left = producer.flush(30)
    elapsed = time.perf_counter() - start
    return {"sent": sent, "produced": delivered, "failed": failed, "undelivered": left,
            "seconds": round(elapsed, 3), "msg_per_s": round(delivered / elapsed),
            "mb_per_s": round(delivered * len(VALUE) / elapsed / 1e6, 1)}


def _measure(topic: str, bootstrap: str, partitions: int, args: argparse.Namespace
             ) -> dict[str, object]:
    result = produce(topic, bootstrap, args.messages, args.seconds)
    rate = result["msg_per_s"]
    assert isinstance(rate, int)
    result["vs_target"] = round(rate / TARGETS["produce_msg_per_s_acks_all"], 3)
    return result


def main(argv: list[str]) -> int:
    return run_bench("produce", argv, _measure, TARGETS, {"messages": 200_000, "seconds": 20.0})
