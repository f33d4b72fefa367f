"""`redshank bench produce`: confluent-kafka producing 1 KiB records with acks=all to 1 and 8
partitions of a broker this command starts (redshank fsyncs before acking), next to the Tansu
broker (memory storage, no fsync) when it is found (`--tansu PATH`, $REDSHANK_TANSU or PATH).

Prints one JSON object as the last line: msg/s, MB/s and the broker's CPU microseconds per
produced message (its whole process tree, from /proc). Each run is bounded by `--messages` and
`--seconds`. `--compression gzip|snappy|lz4|zstd` makes the producer compress its batches
(`compression.type`), with values of 1 KiB hex text (about 2:1) instead of random bytes, so the
broker decompresses real work. Knows nothing of the broker's internals: it is a Kafka client."""

from __future__ import annotations

import argparse
import os
import time

from redshank.tools.bench._broker import run_bench

__all__ = ["main", "produce"]

VALUE = os.urandom(1024)
# For compressed runs: 1 KiB of hex digits, which every codec shrinks to about half.
TEXT_VALUE = os.urandom(512).hex().encode()
CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
TARGETS = {"produce_msg_per_s_acks_all": 100_000}
# `--nodes N`: RF=min(3, N) acks=all on a local cluster, against one broker in the same run.
CLUSTER_TARGETS = {"cluster_vs_single_msg_per_s_min": 0.35}


def produce(topic: str, bootstrap: str, messages: int, seconds: float, acks: str = "all",
            compression: str = "none") -> dict[str, object]:
    """Produce up to `messages` 1 KiB records (at most `seconds` of producing, plus a bounded
    flush); delivered and failed counts and the rate over the whole run."""
    from confluent_kafka import KafkaError, Message, Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": acks, "linger.ms": 5,
                         "batch.size": 1_000_000, "queue.buffering.max.messages": 500_000,
                         "queue.buffering.max.kbytes": 1_048_576, "enable.idempotence": False,
                         "compression.type": compression})
    value = VALUE if compression == "none" else TEXT_VALUE
    delivered = 0
    failed = 0
    errors: dict[str, int] = {}

    def report(err: KafkaError | None, _msg: Message) -> None:
        nonlocal delivered, failed
        if err is None:
            delivered += 1
        else:
            failed += 1
            errors[err.name()] = errors.get(err.name(), 0) + 1

    start = time.perf_counter()
    deadline = start + seconds
    sent = 0
    while sent < messages and time.perf_counter() < deadline:
        try:
            producer.produce(topic, value, on_delivery=report)
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
            "mb_per_s": round(delivered * len(value) / elapsed / 1e6, 1),
            "compression": compression, **({"errors": errors} if errors else {})}


def _measure(topic: str, bootstrap: str, partitions: int, args: argparse.Namespace
             ) -> dict[str, object]:
    result = produce(topic, bootstrap, args.messages, args.seconds,
                     compression=args.compression)
    rate = result["msg_per_s"]
    assert isinstance(rate, int)
    result["vs_target"] = round(rate / TARGETS["produce_msg_per_s_acks_all"], 3)
    return result


def main(argv: list[str]) -> int:
    return run_bench("produce", argv, _measure, TARGETS, {"messages": 200_000, "seconds": 20.0},
                     _options,
                     cluster_targets=CLUSTER_TARGETS)


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--compression", choices=CODECS, default="none",
                        help="the producer's compression.type (values become hex text)")
