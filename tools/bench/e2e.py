"""`redshank bench e2e`: end-to-end latency at a fixed rate (default 1k msg/s), producer with
acks=all (fsynced on redshank) and linger 0, consumer assigned at the end of every partition, in
one process; 1 KiB records carrying their send time. 1 and 8 partitions, on a broker this command
starts, next to the Tansu broker (memory storage, no fsync) when found (see `bench produce`).

Prints one JSON object as the last line: p50/p99/max latency in ms, the producer's share of it
(p50/p99 of the delivery reports: send to acknowledgement), and the broker's CPU per message.
Bounded by `--seconds` of sending (and `--messages`). A Kafka client only."""

from __future__ import annotations

import argparse
import os
import statistics
import struct
import threading
import time

from redshank.tools.bench._broker import run_bench
from redshank.tools.bench._progress import step
from redshank.tools.bench._timing import wait_until

__all__ = ["main"]

TARGETS = {"e2e_p50_ms_at_1k_msg_per_s": 5.0}
RATE = 1000.0
PAD = os.urandom(1024 - 8)
# `--nodes N`: RF=min(3, N) acks=all on a local cluster, against one broker in the same run.
CLUSTER_TARGETS = {"cluster_e2e_p50_ms_at_1k_msg_per_s_max": 10.0}


def _measure(topic: str, bootstrap: str, partitions: int, args: argparse.Namespace
             ) -> dict[str, object]:
    from confluent_kafka import Consumer, Producer, TopicPartition

    total = min(args.messages, int(args.seconds * RATE))
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{topic}",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 100,
                         "fetch.error.backoff.ms": 10})
    # Start at each partition's high watermark, resolved now, so no timed record is skipped.
    ends = [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            for p in range(partitions)]
    consumer.assign([TopicPartition(topic, p, hi) for p, (_lo, hi) in enumerate(ends)])
    latencies: list[float] = []
    delivered: list[float] = []
    stop = threading.Event()

    def consume() -> None:
        while not stop.is_set() and len(latencies) < total:
            msg = consumer.poll(0.05)
            if msg is not None and msg.error() is None:
                sent = struct.unpack_from(">q", msg.value() or b"\0" * 8)[0]
                latencies.append((time.perf_counter_ns() - sent) / 1e6)

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0,
                         "enable.idempotence": False})

    def acked(err: object, msg: object) -> None:  # on the producer's poll, this thread
        if err is None:
            value = msg.value()  # type: ignore[attr-defined]
            sent = struct.unpack_from(">q", value or b"\0" * 8)[0]
            delivered.append((time.perf_counter_ns() - sent) / 1e6)

    # Warm up: metadata and connections on both sides before timing (bounded).
    step("warm-up")
    producer.list_topics(topic, timeout=10)
    consumer.list_topics(topic, timeout=10)
    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    step(f"measuring ({total} records at {RATE:g}/s)")
    start = time.perf_counter()
    try:
        for i in range(total):
            due = start + i / RATE
            wait_until(due, producer)
            producer.produce(topic, struct.pack(">q", time.perf_counter_ns()) + PAD,
                             on_delivery=acked)
            producer.poll(0)
        producer.flush(20)
        reader.join(10)
    finally:
        stop.set()
        reader.join(5)
        consumer.close()
    got = sorted(latencies)
    acks = sorted(delivered)
    if not got:
        return {"produced": total, "received": 0}
    return {"produced": total, "received": len(got), "rate_msg_per_s": RATE,
            "p50_ms": round(statistics.median(got), 3),
            "p99_ms": round(_p99(got), 3),
            "max_ms": round(got[-1], 3),
            "produce_ack_p50_ms": round(statistics.median(acks), 3) if acks else None,
            "produce_ack_p99_ms": round(_p99(acks), 3) if acks else None,
            "vs_target": round(TARGETS["e2e_p50_ms_at_1k_msg_per_s"] / statistics.median(got), 3)}


def _p99(ordered: list[float]) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def main(argv: list[str]) -> int:
    return run_bench("e2e", argv, _measure, TARGETS, {"messages": 200_000, "seconds": 5.0},
                     cluster_targets=CLUSTER_TARGETS)
