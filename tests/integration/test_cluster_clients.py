"""Every client through a 3-node cluster (issue 14): confluent-kafka, kafka-python, aiokafka,
kafkajs and kcat each produce to an RF=3 topic of two partitions and read it back without a
consumer group (assign / no group), content checked record by record: each partition holds what
was sent to it, in order, at offsets 0..n-1, exactly once. Some clients bootstrap on a single
node that leads none (or not all) of the topic's partitions, so they must route through
Metadata; the others get every node. Metadata from every node names the same leaders, the three
replicas, and the leader epochs the replicas' Raft terms."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition as AioPartition
from cluster_load import FixedNode, bootstrap, cluster, create_topic, leader_of
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KpPartition
from poison import RawClient
from test_cluster_controller import wait_for
from test_confluent_kafka import consume_assigned

from redshank.protocol.messages.metadata import (
    MetadataRequest,
    MetadataRequestTopic,
    MetadataResponse,
)

PARTITIONS = 2
COUNT = 60  # records per client run, alternating over the partitions
JS = Path(__file__).resolve().parent / "js" / "kafkajs_cluster.js"

Read = dict[int, list[tuple[int, str]]]


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[FixedNode]]:
    with cluster(tmp_path_factory.mktemp("clients")) as started:
        yield started


def _topic(nodes: list[FixedNode], name: str) -> list[FixedNode]:
    """Create `name` (RF=3) and wait for its leaders; -> the leader node of each partition."""
    create_topic(nodes, name, PARTITIONS)
    return [wait_for(f"a leader of {name}/{p}", lambda p=p: leader_of(nodes, name, p), 30)[0]
            for p in range(PARTITIONS)]


def _follower(nodes: list[FixedNode], leads: list[FixedNode]) -> FixedNode:
    """A node that leads none of the partitions if there is one, else one not leading 0."""
    idle = [n for n in nodes if n not in leads]
    return idle[0] if idle else next(n for n in nodes if n is not leads[0])


def _sent(prefix: str) -> list[tuple[int, str]]:
    return [(i % PARTITIONS, f"{prefix}-{i}") for i in range(COUNT)]


def _check(sent: list[tuple[int, str]], got: Read) -> None:
    for p in range(PARTITIONS):
        want = [v for q, v in sent if q == p]
        records = got.get(p, [])
        assert [o for o, _ in records] == list(range(len(want))), (p, records[:5])
        assert [v for _, v in records] == want, p


def _check_metadata(nodes: list[FixedNode], topic: str, leads: list[FixedNode]) -> None:
    terms = [wait_for(f"the term of {topic}/{p}", lambda p=p: (
        lead[1] if (lead := leader_of(nodes, topic, p)) is not None else None), 30)
        for p in range(PARTITIONS)]
    for node in nodes:
        # Metadata v12 as Java clients send it: the leader epoch is the leader's Raft term.
        client = RawClient(node.kafka)
        try:
            md12 = client.call(MetadataRequest(topics=(MetadataRequestTopic(name=topic),)),
                               12, MetadataResponse)
        finally:
            client.sock.close()
        (t,) = md12.topics
        assert t.error_code == 0
        by_index = {p.partition_index: p for p in t.partitions}
        for p in range(PARTITIONS):
            assert by_index[p].leader_id == leads[p].node_id
            assert by_index[p].leader_epoch == terms[p], (p, by_index[p])
            assert sorted(by_index[p].replica_nodes) == [1, 2, 3]
    for node in nodes:
        md = AdminClient({"bootstrap.servers": node.kafka}).list_topics(topic, timeout=10)
        assert sorted(md.brokers) == [1, 2, 3]
        parts = md.topics[topic].partitions
        for p in range(PARTITIONS):
            assert parts[p].error is None, parts[p].error
            assert parts[p].leader == leads[p].node_id
            assert sorted(parts[p].replicas) == [1, 2, 3]
            assert leads[p].node_id in parts[p].isrs


@pytest.mark.timeout(120)
def test_confluent_kafka_via_a_follower(nodes: list[FixedNode]) -> None:
    topic = "c-confluent"
    leads = _topic(nodes, topic)
    _check_metadata(nodes, topic, leads)
    via = _follower(nodes, leads).kafka
    sent = _sent("ck")
    errors: list[str] = []
    for idempotent in (False, True):
        producer = Producer({"bootstrap.servers": via, "acks": "all",
                             "enable.idempotence": idempotent, "linger.ms": 5})
        for p, v in sent[idempotent::2]:
            producer.produce(topic, value=v.encode(), partition=p,
                             on_delivery=lambda e, _m: errors.append(str(e)) if e else None)
        assert producer.flush(30) == 0
        assert errors == []
    # Sent in two halves (even, then odd indices): each partition's order is that.
    order = sent[0::2] + sent[1::2]
    raw = consume_assigned(via, topic, PARTITIONS, COUNT, timeout=30)
    _check(order, {p: [(o, (v or b"").decode()) for o, _k, v in rs] for p, rs in raw.items()})


@pytest.mark.timeout(120)
def test_kafka_python_via_all_nodes(nodes: list[FixedNode]) -> None:
    topic = "c-kafka-python"
    _topic(nodes, topic)
    servers = [n.kafka for n in nodes]
    sent = _sent("kp")
    producer = KafkaProducer(bootstrap_servers=servers, acks="all", linger_ms=5)
    try:
        futures = [producer.send(topic, value=v.encode(), partition=p) for p, v in sent]
        producer.flush(30)
        for f in futures:
            f.get(timeout=30)
    finally:
        producer.close(10)
    consumer = KafkaConsumer(bootstrap_servers=servers, group_id=None,
                             enable_auto_commit=False, consumer_timeout_ms=1000)
    got: Read = {}
    try:
        consumer.assign([KpPartition(topic, p) for p in range(PARTITIONS)])
        consumer.seek_to_beginning()
        deadline = time.monotonic() + 40
        while sum(map(len, got.values())) < COUNT:
            assert time.monotonic() < deadline, f"kafka-python read only {got}"
            for rs in consumer.poll(500).values():
                for r in rs:
                    got.setdefault(r.partition, []).append((r.offset, r.value.decode()))
    finally:
        consumer.close()
    _check(sent, got)


@pytest.mark.timeout(120)
def test_aiokafka_via_a_follower(nodes: list[FixedNode]) -> None:
    topic = "c-aiokafka"
    leads = _topic(nodes, topic)
    via = _follower(nodes, leads).kafka
    sent = _sent("aio")

    async def run() -> Read:
        producer = AIOKafkaProducer(bootstrap_servers=via, acks="all",
                                    enable_idempotence=True)
        await producer.start()
        try:
            for p, v in sent:
                await producer.send_and_wait(topic, v.encode(), partition=p)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=via, group_id=None,
                                    enable_auto_commit=False)
        await consumer.start()
        got: Read = {}
        try:
            consumer.assign([AioPartition(topic, p) for p in range(PARTITIONS)])
            await consumer.seek_to_beginning()
            async with asyncio.timeout(40):
                while sum(map(len, got.values())) < COUNT:
                    batch = await consumer.getmany(timeout_ms=500)
                    for tp, rs in batch.items():
                        got.setdefault(tp.partition, []).extend(
                            (r.offset, r.value.decode()) for r in rs if r.value is not None)
        finally:
            await consumer.stop()
        return got

    _check(sent, asyncio.run(run()))


@pytest.mark.timeout(120)
def test_kafkajs_via_all_nodes(nodes: list[FixedNode]) -> None:
    topic = "c-kafkajs"
    _topic(nodes, topic)
    run = subprocess.run(["node", str(JS), bootstrap(nodes), topic, str(PARTITIONS),
                          str(COUNT)], capture_output=True, text=True, timeout=100,
                         cwd=JS.parent)
    assert run.returncode == 0, f"kafkajs failed: {run.stderr[-3000:]}"
    result = json.loads(run.stdout.strip().splitlines()[-1])
    sent = [(i % PARTITIONS, f"js-plain-{i}") for i in range(COUNT)] + [
        (i % PARTITIONS, f"js-idem-{i}") for i in range(COUNT)]
    assert result["sent"] == [v for _p, v in sent]
    got: Read = {}
    for g in result["got"]:
        got.setdefault(g["partition"], []).append((g["offset"], g["value"]))
    _check(sent, got)
    assert sorted(m["partitionId"] for m in result["metadata"]) == list(range(PARTITIONS))
    for m in result["metadata"]:
        assert sorted(m["replicas"]) == [1, 2, 3] and m["leader"] in (1, 2, 3)


@pytest.mark.timeout(120)
def test_kcat_via_a_follower(nodes: list[FixedNode]) -> None:
    kcat = shutil.which("kcat")
    if kcat is None:
        pytest.fail("kcat is not installed: run `apt-get install -y kcat` (Debian package)")
    topic = "c-kcat"
    leads = _topic(nodes, topic)
    via = _follower(nodes, leads).kafka
    sent = _sent("kcat")
    for p in range(PARTITIONS):
        lines = "".join(f"{v}\n" for q, v in sent if q == p).encode()
        out = subprocess.run([kcat, "-b", via, "-P", "-t", topic, "-p", str(p),
                              "-X", "acks=all"], input=lines, capture_output=True, timeout=60)
        assert out.returncode == 0, out.stderr.decode(errors="replace")
    got: Read = {}
    for p in range(PARTITIONS):
        out = subprocess.run([kcat, "-b", via, "-C", "-t", topic, "-p", str(p), "-o",
                              "beginning", "-e", "-f", "%o %s\\n"], capture_output=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr.decode(errors="replace")
        got[p] = [(int(o), v) for o, v in (line.split(" ", 1) for line in
                                           out.stdout.decode().splitlines() if line)]
    _check(sent, got)
