"""The baseline of `redshank bench transform`: an identity transform written the way it is written
without Redshank, as a separate consume-transform-produce process with confluent-kafka.

    python -m redshank.tools.bench._transform_worker --bootstrap B --input T --output T2 --group G

A consumer in group G on the input (no auto-commit), an idempotent producer (acks=all) to the
output, each record written to the output partition of the same number as its input partition,
and the input offsets committed (asynchronously, every COMMIT_EVERY_S) only up to the first record
whose output is not yet acknowledged: at-least-once, as the in-broker transform. Settings, chosen
to give the baseline its best figures on this machine rather than librdkafka's defaults:

- loop: block in `poll(0.1)` for the first record, then take what is already queued with
  `consume(BATCH, 0)` (a blocking `consume(n, t)` waits the whole `t` for `n` records: latency);
- producer: `linger.ms` LINGER_MS (librdkafka's and Kafka 4.0's default: tried 0, 1 and 5 with
  `--only process`, 5 took the least CPU per record at no measurable cost in p50 on this
  machine), idempotence on (so acks=all and order kept with 5 requests in flight), a large local
  queue (BufferError only backs off 10 ms);
- consumer: `fetch.wait.max.ms` FETCH_WAIT_MS (the broker answers a fetch as soon as data
  arrives; this only bounds an idle one), prefetch of up to 200,000 records.

Prints `ready CPU_SECONDS` on stdout once the group assigned it partitions; on SIGTERM it stops,
flushes, commits what is acknowledged and prints one JSON line of counts. Knows nothing of the
broker: a Kafka client only."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections import deque
from functools import partial
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from confluent_kafka import KafkaError, Message, TopicPartition

__all__ = ["CONSUMER_SETTINGS", "PRODUCER_SETTINGS", "main"]

BATCH = 1000
COMMIT_EVERY_S = 0.1
LINGER_MS = 5
FETCH_WAIT_MS = 100
PRODUCER_SETTINGS: dict[str, object] = {
    "acks": "all", "enable.idempotence": True, "linger.ms": LINGER_MS,
    "queue.buffering.max.messages": 500_000, "queue.buffering.max.kbytes": 1_048_576}
CONSUMER_SETTINGS: dict[str, object] = {
    "enable.auto.commit": False, "auto.offset.reset": "earliest",
    "fetch.wait.max.ms": FETCH_WAIT_MS, "queued.min.messages": 200_000}


class _Acked:
    """Per input partition, the offsets sent on and whether their output is acknowledged: the
    commit point is the offset after the longest acknowledged prefix (acks of different output
    batches may come back in any order across partitions)."""

    def __init__(self) -> None:
        self.sent: dict[int, deque[int]] = {}
        self.acked: dict[int, set[int]] = {}
        self.ready: dict[int, int] = {}  # partition -> next offset to commit, not yet committed
        self.failed = 0

    def on_sent(self, partition: int, offset: int) -> None:
        self.sent.setdefault(partition, deque()).append(offset)

    def on_ack(self, partition: int, offset: int, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self.failed += 1  # never acknowledged: the commit point stays before it
            return
        acked = self.acked.setdefault(partition, set())
        acked.add(offset)
        sent = self.sent[partition]
        while sent and sent[0] in acked:
            acked.discard(head := sent.popleft())
            self.ready[partition] = head + 1

    def take(self, topic: str) -> list[TopicPartition]:
        from confluent_kafka import TopicPartition

        out = [TopicPartition(topic, p, off) for p, off in self.ready.items()]
        self.ready.clear()
        return out


def run(bootstrap: str, source: str, sink: str, group: str) -> dict[str, object]:
    from confluent_kafka import Consumer, Producer

    stopping = False

    def stop(_sig: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    acked = _Acked()
    assigned = False

    def on_assign(_consumer: object, partitions: list[TopicPartition]) -> None:
        nonlocal assigned
        if partitions and not assigned:
            assigned = True
            # With its CPU seconds so far (start-up and group join), which the bench leaves out.
            print(f"ready {sum(os.times()[:4]):.3f}", flush=True)

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, **CONSUMER_SETTINGS})
    producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER_SETTINGS})
    consumer.subscribe([source], on_assign=on_assign)
    processed = commits = 0
    next_commit = time.monotonic() + COMMIT_EVERY_S
    try:
        while not stopping:
            first = consumer.poll(0.1)
            batch = [first, *consumer.consume(BATCH, 0)] if first is not None else []
            for msg in batch:
                if msg.error() is not None:
                    continue
                part, off = msg.partition(), msg.offset()
                assert part is not None and off is not None
                acked.on_sent(part, off)
                while True:
                    try:
                        producer.produce(sink, msg.value(), msg.key(), partition=part,
                                         headers=msg.headers(),
                                         on_delivery=partial(acked.on_ack, part, off))
                        break
                    except BufferError:
                        producer.poll(0.01)  # local queue full: let acknowledgements drain it
                processed += 1
            producer.poll(0)
            if (now := time.monotonic()) >= next_commit:
                next_commit = now + COMMIT_EVERY_S
                if offsets := acked.take(source):
                    consumer.commit(offsets=offsets, asynchronous=True)
                    commits += 1
        left = producer.flush(20)
        if offsets := acked.take(source):
            consumer.commit(offsets=offsets, asynchronous=False)
            commits += 1
    finally:
        consumer.close()
    return {"processed": processed, "failed": acked.failed, "undelivered": left,
            "commits": commits}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m redshank.tools.bench._transform_worker")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--group", required=True)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.bootstrap, args.input, args.output, args.group)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
