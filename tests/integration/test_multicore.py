"""A two-core node serves partitions owned by both cores: the shard table spreads a topic's
partitions over the cores, each core's stats list the partition leaders it hosts, and produce
and fetch work whichever core accepted the connection (cross-core two-phase produce)."""

from __future__ import annotations

import time

import pytest
from broker_proc import BrokerProcess, check_consumed, create_topic, expected_records
from confluent_kafka import Producer
from test_confluent_kafka import consume_assigned

from redshank.actors.runtime.node_stats import read_node_stats

PARTITIONS = 4


def _leaders_by_core(data_dir: str, topic: str) -> dict[int, set[str]]:
    stats = read_node_stats(data_dir)
    return {
        c["core"]: {a["name"] for a in c.get("actors", [])
                    if a["name"].startswith(f"partition/{topic}/")}
        for c in stats["cores"]
    }


@pytest.mark.timeout(90)
def test_partitions_on_both_cores(broker: BrokerProcess) -> None:
    assert broker.cores == 2
    topic = "multicore"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    expected = expected_records(topic, PARTITIONS, 100)
    # Several producers: their connections land on either core (SO_REUSEPORT), so some
    # produce requests cross cores to reach their partition's owner.
    for round_ in range(4):
        producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
        for p, records in expected.items():
            for key, value in records[round_ * 25:(round_ + 1) * 25]:
                producer.produce(topic, key=key, value=value, partition=p)
        assert producer.flush(20) == 0
    check_consumed(expected, consume_assigned(broker.bootstrap, topic, PARTITIONS,
                                              PARTITIONS * 100))
    deadline = time.monotonic() + 10
    by_core = _leaders_by_core(str(broker.data_dir), topic)
    while sum(len(v) for v in by_core.values()) < PARTITIONS and time.monotonic() < deadline:
        time.sleep(0.2)  # stats blocks are republished every 0.5 s
        by_core = _leaders_by_core(str(broker.data_dir), topic)
    assert set(by_core) == {0, 1}
    assert all(by_core[c] for c in (0, 1)), f"partition leaders per core: {by_core}"
    assert set().union(*by_core.values()) == {f"partition/{topic}/{p}"
                                              for p in range(PARTITIONS)}


@pytest.mark.timeout(90)
def test_large_batches_cross_cores(broker: BrokerProcess) -> None:
    """~1 MB batches produced and fetched through whichever core a connection landed on: the
    cross-core frames (a batch of max.message.bytes, a 1 MiB read) fit the rings."""
    topic = "multicore-large"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    per = 1500
    expected = {p: [(b"%d-%d" % (p, i), bytes([65 + p]) * 1000 + b"%06d" % i)
                    for i in range(per)] for p in range(PARTITIONS)}
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all",
                         "linger.ms": 200, "batch.size": 1_000_000})
    for p, records in expected.items():
        for key, value in records:
            producer.produce(topic, key=key, value=value, partition=p)
    assert producer.flush(30) == 0
    check_consumed(expected, consume_assigned(broker.bootstrap, topic, PARTITIONS,
                                              PARTITIONS * per, timeout=30))
