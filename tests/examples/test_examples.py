"""Each example in examples/ and the program in docs/embedding.md, run as written, checked."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)


def run(args: list[str], cwd: Path) -> str:
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env={**os.environ},
                          capture_output=True, text=True, timeout=100)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_wordcount_counts_like_a_single_process() -> None:
    out = run(["examples/wordcount.py", "--cores", "2", "--lines", "5000"], ROOT)
    summary = out.strip().splitlines()[-1]
    assert re.fullmatch(r"words \d+ distinct 20 matches_single_process True", summary), out
    assert len(out.strip().splitlines()) == 6  # the top five, then the summary


def test_work_queue_resumes_at_the_committed_offset(tmp_path: Path) -> None:
    out = run(["examples/work_queue.py", "--dir", str(tmp_path / "q"), "--jobs", "10"], ROOT)
    assert out.splitlines() == [
        "first run did offsets [0, 1, 2, 3, 4]",
        "after restart did offsets [5, 6, 7, 8, 9]",
        "jobs 10 done 10 each_once True",
    ]


def test_the_documented_example_runs_as_written(tmp_path: Path) -> None:
    doc = (ROOT / "docs" / "embedding.md").read_text()
    blocks = re.findall(r"```(\w+)\n(.*?)```", doc, re.S)
    program = next(body for lang, body in blocks if lang == "python")
    expected = next(body for lang, body in blocks if lang == "text")
    assert 15 <= len(program.strip().splitlines()) <= 25  # "a ~20-line complete example"
    (tmp_path / "example.py").write_text(program)
    assert run(["example.py"], tmp_path) == expected


ORDERS = [  # (partition, value): kept above 100, dropped at or below, malformed counted
    (0, b'{"id": "o-1", "customer": "ada", "amount": 120.5}'),
    (1, b'{"id": "o-2", "customer": "bob", "amount": 99.99}'),
    (0, b'not json at all'),
    (1, b'{"id": "o-3", "customer": "cy", "amount": 100.005}'),
    (0, b'{"id": "o-4", "customer": "dee", "amount": 100}'),
    (1, b'["an", "array"]'),
    (0, b'{"id": "o-5", "customer": "eve", "amount": 2500}'),
    (1, b'{"id": "o-6", "customer": "fay", "amount": "lots"}'),
    (1, b'{"id": "o-7", "customer": "gus", "amount": 101}'),
]
KEPT = {0: [(b"o-1", b'{"id":"o-1","customer":"ada","amount_cents":12050}'),
            (b"o-5", b'{"id":"o-5","customer":"eve","amount_cents":250000}')],
        1: [(b"o-3", b'{"id":"o-3","customer":"cy","amount_cents":10001}'),
            (b"o-7", b'{"id":"o-7","customer":"gus","amount_cents":10100}')]}
BAD = {0: [(b"not json at all", b"not JSON")],
       1: [(b'["an", "array"]', b"not a JSON object"),
           (b'{"id": "o-6", "customer": "fay", "amount": "lots"}', b"amount must be a number")]}


def test_json_transform_keeps_and_reshapes_big_orders() -> None:
    """Deployed with the CLI on a real broker: exactly the reshaped big orders on the first
    output, the malformed records (with their reason) on the second, none of them twice."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    from redshank.tools.bench._broker import BenchBroker, create_topic

    with BenchBroker("redshank", cores=2, pin=False) as broker:
        for topic in ("orders", "big-orders", "bad-orders"):
            create_topic(broker.bootstrap, topic, 2)
        cli = [sys.executable, "-m", "redshank.tools.cli", "transform"]
        deploy = subprocess.run(
            [*cli, "deploy", "--brokers", broker.bootstrap, "--name", "big-orders", "--input",
             "orders", "--output", "big-orders,bad-orders", "json_transform:BigOrders"],
            cwd=ROOT / "examples", capture_output=True, text=True, timeout=60)
        assert deploy.returncode == 0, deploy.stderr
        producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
        for partition, value in ORDERS:
            producer.produce("orders", value, partition=partition)
        assert producer.flush(20) == 0
        want = {("big-orders", p): rows for p, rows in KEPT.items()} | {
            ("bad-orders", p): rows for p, rows in BAD.items()}
        got = _read(broker.bootstrap, want)
        assert got == want
        # Exactly: the transform has committed the whole input, and nothing more was written.
        ends = {p: sum(1 for q, _ in ORDERS if q == p) for p in (0, 1)}
        deadline = time.monotonic() + 30
        while True:
            listed = subprocess.run([*cli, "list", "--json", "--brokers", broker.bootstrap],
                                    capture_output=True, text=True, timeout=60)
            assert listed.returncode == 0, listed.stderr
            (dep,) = json.loads(listed.stdout)
            committed = {i["partition"]: i["offset"] for i in dep["instances"]}
            if committed == ends or time.monotonic() > deadline:
                break
            time.sleep(0.2)  # the instances commit once their output is acknowledged
        assert committed == ends
        assert all(i["failed"] == 0 and i["lag"] == 0 for i in dep["instances"]), dep
        watch = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "example-watch"})
        try:
            for (topic, p), rows in want.items():
                lo, hi = watch.get_watermark_offsets(TopicPartition(topic, p), timeout=10,
                                                     cached=False)
                assert hi - lo == len(rows), (topic, p)
        finally:
            watch.close()
        subprocess.run([*cli, "delete", "--brokers", broker.bootstrap, "--name", "big-orders"],
                       check=True, capture_output=True, timeout=60)


def _read(bootstrap: str, want: dict[tuple[str, int], list[tuple[bytes, bytes]]]
          ) -> dict[tuple[str, int], list[tuple[bytes, bytes]]]:
    """(key, value) of big-orders and (value, reason header) of bad-orders, per partition, until
    as many as `want` holds arrived (or 60 s)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "example-reader",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(t, p, 0) for t, p in want])
    got: dict[tuple[str, int], list[tuple[bytes, bytes]]] = {tp: [] for tp in want}
    deadline = time.monotonic() + 60
    try:
        while sum(map(len, got.values())) < sum(map(len, want.values())) \
                and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None or msg.error() is not None:
                continue
            tp = (msg.topic() or "", msg.partition() or 0)
            if tp[0] == "big-orders":
                got[tp].append((msg.key() or b"", msg.value() or b""))
            else:
                reason = dict(msg.headers() or []).get("reason") or b""
                got[tp].append((msg.value() or b"", reason))
    finally:
        consumer.close()
    return got
