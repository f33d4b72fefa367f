"""How much a CPU-heavy transform delays the other requests of its core.

    python3 -m redshank.tools.bench.transform_slice [--records 2000] [--samples 300]
                                                    [--busy-ms 1.0]

One broker of ONE core (so the transform and the other partition share it): topics `slow-in`,
`slow-out` and `other`, one partition each. First an acks=all producer sends `--samples`
records to `other`, one at a time (each awaited), and its latencies are noted; then a
transform that busy-loops `--busy-ms` per record is deployed on `slow-in`, `--records` records
are produced there (seconds of work for it), and the same producer is measured again while
the transform works through them. Prints p50/p99/max of both runs. Knows nothing of the
broker's internals: real processes and clients only.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from redshank.tools.bench._broker import BenchBroker, create_topic

SLOW_PY = """
import time
from redshank.actors.embed.transform import Output, Transform

BUSY_S = {busy_s}


class Slow(Transform):
    def process(self, record):
        end = time.perf_counter() + BUSY_S
        while time.perf_counter() < end:
            pass
        yield Output(value=record.value, key=record.key)
"""


def _latencies(bootstrap: str, samples: int) -> list[float]:
    """Each record's produce-to-acknowledgement time (ms), one record at a time."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0,
                         "socket.timeout.ms": 120000, "message.timeout.ms": 120000})
    out = []
    for i in range(samples):
        start = time.perf_counter()
        producer.produce("other", value=b"x%d" % i, partition=0)
        if producer.flush(120) != 0:
            raise SystemExit("a record to `other` not acknowledged within 120 s")
        out.append((time.perf_counter() - start) * 1000)
    return out


def _written(bootstrap: str, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-hw"})
    try:
        return int(consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)[1])
    finally:
        consumer.close()


def _summary(name: str, ms: list[float]) -> str:
    ms = sorted(ms)
    p50, p99 = ms[len(ms) // 2], ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    slow = sum(1 for m in ms if m > 100)
    return (f"{name}: p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {ms[-1]:.2f} ms, {slow} of "
            f"{len(ms)} over 100 ms")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="transform_slice")
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--busy-ms", type=float, default=1.0)
    args = parser.parse_args(argv)
    from confluent_kafka import Producer

    with BenchBroker("redshank", cores=1) as broker, \
            tempfile.TemporaryDirectory() as src:
        for topic in ("slow-in", "slow-out", "other"):
            create_topic(broker.bootstrap, topic, 1)
        _latencies(broker.bootstrap, 20)  # warm-up
        alone = _latencies(broker.bootstrap, args.samples)
        Path(src, "slowx.py").write_text(SLOW_PY.format(busy_s=args.busy_ms / 1000))
        deployed = subprocess.run(
            [sys.executable, "-m", "redshank.tools.cli", "transform", "deploy", "--name",
             "slow", "--input", "slow-in", "--output", "slow-out", "slowx:Slow",
             "--brokers", broker.bootstrap], cwd=src, capture_output=True, text=True,
            timeout=60)
        if deployed.returncode != 0:
            raise SystemExit(f"deploy failed: {deployed.stderr}")
        feed = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all",
                         "linger.ms": 5})
        for i in range(args.records):
            feed.produce("slow-in", value=b"%08d" % i, partition=0)
            feed.poll(0)
        assert feed.flush(60) == 0
        time.sleep(0.5)  # the transform picks the records up (its first chunk)
        busy = _latencies(broker.bootstrap, args.samples)
        out = _written(broker.bootstrap, "slow-out")  # the samples ran while it worked?
        print(_summary("other partition, no transform", alone))
        print(_summary(f"other partition, next to a {args.busy_ms:g} ms/record transform",
                       busy))
        print(f"the transform's output when the sampling ended: {out} of {args.records}")


if __name__ == "__main__":
    main()
