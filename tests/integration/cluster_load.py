"""Helpers for the 3-node cluster tests (test_cluster_failover.py, test_cluster_clients.py): a
cluster of real `redshank start` processes on fixed loopback ports (a restarted node keeps its
Kafka address), an idempotent acks=all confluent-kafka producer and a no-group consumer that
record into a `lab.History`, and the final read of every partition.

Concern: driving real clients against real nodes and recording what they were told and saw.
Must not know the broker's internals beyond the replica view files the nodes write
(`cluster/replicas-core<N>.json`, read through `KafkaNode.replicas`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic
from lab.history import History
from test_cluster_controller import agreed, wait_for
from test_cluster_partitions import KafkaNode

from redshank.tools.cluster_cmd import plan_ports


class FixedNode(KafkaNode):
    """A node whose Kafka port is fixed, so it is the same after a restart on its data dir."""

    def __init__(self, data_dir: Path, node_id: int, kafka_port: int, rpc: int,
                 seeds: list[int], cores: int = 1) -> None:
        super().__init__(data_dir, node_id, rpc, seeds, cores)
        self.kafka_port = kafka_port
        self.kafka = f"127.0.0.1:{kafka_port}"

    def spawn(self) -> None:
        cmd = [sys.executable, "-m", "redshank.tools.cli", "start", "--node-id",
               str(self.node_id), "--kafka-addr", self.kafka, "--data-dir",
               str(self.data_dir), "--cores", str(self.cores), "--no-pin",
               "--admin-addr", "127.0.0.1:0", "--rpc-addr", f"127.0.0.1:{self.rpc}",
               "--seeds", ",".join(f"127.0.0.1:{p}" for p in self.seeds)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log,
                                         process_group=0)

    @property
    def pgid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


@contextmanager
def cluster(tmp_path: Path, n: int = 3, cores: int = 1) -> Iterator[list[FixedNode]]:
    """`n` seed nodes, started, ready and agreeing on one controller; all stopped at the end
    (SIGCONT first, in case a test left one paused)."""
    plan = plan_ports(n, cores, 0)
    rpcs = [rpc for _kafka, rpc in plan]
    nodes = [FixedNode(tmp_path / f"node-{i}", i, plan[i - 1][0], rpcs[i - 1], rpcs, cores)
             for i in range(1, n + 1)]
    try:
        for node in nodes:
            node.spawn()
        for node in nodes:
            node.ready()
        wait_for(f"{n} nodes agreeing on one cluster",
                 lambda: agreed(nodes, n), 30)  # type: ignore[arg-type]
        yield nodes
    finally:
        for node in nodes:
            if node.proc is not None:
                try:
                    os.killpg(node.proc.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
        for node in nodes:
            node.stop()


def bootstrap(nodes: list[FixedNode]) -> str:
    return ",".join(n.kafka for n in nodes)


def create_topic(nodes: list[FixedNode], topic: str, partitions: int, rf: int = 3) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap(nodes)})
    admin.create_topics([NewTopic(topic, partitions, rf)], operation_timeout=20)[topic].result(30)


def replica_views(nodes: list[FixedNode], topic: str, partition: int
                  ) -> list[dict[str, Any] | None]:
    return [_views(n, topic).get(partition) for n in nodes]


def _views(node: FixedNode, topic: str) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for core in range(node.cores):
        try:
            view = json.loads((node.data_dir / "cluster" / f"replicas-core{core}.json")
                              .read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            continue
        for r in view["replicas"]:
            if r["name"].split("/")[1] == topic:
                out[int(r["name"].rsplit("/", 1)[1])] = r
    return out


def leader_of(nodes: list[FixedNode], topic: str, partition: int,
              above_term: int = 0) -> tuple[FixedNode, int] | None:
    """The node every one of `nodes` agrees leads `partition` (and serves), with its term,
    once that term is above `above_term`."""
    views = replica_views(nodes, topic, partition)
    if any(v is None for v in views):
        return None
    serving = [n for n, v in zip(nodes, views, strict=True) if v and v["serves"]]
    terms = {(v["term"], v["leader"]) for v in views if v}
    if len(serving) != 1 or len(terms) != 1:
        return None
    term = int(next(iter(terms))[0])
    return (serving[0], term) if term > above_term else None


class Load:
    """An idempotent acks=all producer writing unique ids round-robin over the partitions from
    one thread, and a consumer (assign, no group membership) reading them from another, both
    recording into `history`; `acks_after(p, t)` is when the first record attempted after `t`
    was acknowledged on partition `p`."""

    def __init__(self, servers: str, topic: str, partitions: int, history: History,
                 rate: float = 200.0) -> None:
        self.topic = topic
        self.partitions = partitions
        self.history = history
        self.rate = rate
        self.producer = Producer({
            "bootstrap.servers": servers, "acks": "all", "enable.idempotence": True,
            "linger.ms": 5, "message.timeout.ms": 90000, "retry.backoff.ms": 50,
            "retry.backoff.max.ms": 250, "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 250, "topic.metadata.refresh.interval.ms": 1000,
            "socket.timeout.ms": 5000, "request.timeout.ms": 5000,
        })
        self.consumer = Consumer({
            "bootstrap.servers": servers, "group.id": f"nogroup-{topic}",
            "enable.auto.commit": False, "fetch.wait.max.ms": 100,
            "topic.metadata.refresh.interval.ms": 1000, "socket.timeout.ms": 5000,
            "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 250,
        })
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING)
                              for p in range(partitions)])
        self._lock = threading.Lock()
        self._attempted_at: dict[str, float] = {}
        self.ack_times: dict[int, list[tuple[float, float]]] = {p: [] for p in range(partitions)}
        self.errors: list[str] = []
        self.implicit: list[str] = []  # acknowledged without an offset (see `_report`)
        self.consumer_errors: list[str] = []
        self.observed = 0
        self.sent = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._produce, name="load-producer"),
                         threading.Thread(target=self._consume, name="load-consumer")]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def _report(self, err: KafkaError | None, msg: Message) -> None:
        value = msg.value()
        rid = (value or b"").decode()
        partition, offset = msg.partition(), msg.offset()
        if err is None and (partition is None or offset is None or offset < 0):
            # Acknowledged without an offset: librdkafka's implicit ack (a later batch of the
            # idempotent producer succeeded, so this earlier one, whose own answer was lost,
            # was persisted). The History places records by offset, so it counts as unknown
            # there; the test checks these are present after the final read.
            self.history.unknown(rid)
            with self._lock:
                self.implicit.append(rid)
        elif err is None:
            assert partition is not None and offset is not None
            self.history.acked(rid, partition, offset)
            with self._lock:
                self.ack_times[partition].append((self._attempted_at.get(rid, 0.0),
                                                  time.monotonic()))
        else:
            # confluent-kafka does not expose librdkafka's persistence status: every delivery
            # error may have been written (a timeout, a lost connection), so it is unknown.
            self.history.unknown(rid)
            with self._lock:
                self.errors.append(f"{rid}: {err}")

    def _produce(self) -> None:
        seq = 0
        gap = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            rid = f"r{seq:07d}"
            p = seq % self.partitions
            self.history.attempt(rid, producer="p1")
            with self._lock:
                self._attempted_at[rid] = time.monotonic()
            try:
                self.producer.produce(self.topic, value=rid.encode(), partition=p,
                                      on_delivery=self._report)
            except BufferError:
                self.history.failed(rid)  # never queued: definitely not written
                self.producer.poll(0.1)
            else:
                seq += 1
                self.sent = seq
            self.producer.poll(0)
            next_at += gap
            pause = next_at - time.monotonic()
            if pause > 0:
                self.producer.poll(pause)
            else:
                next_at = time.monotonic()

    def _consume(self) -> None:
        while not self._stop.is_set():
            msg = self.consumer.poll(0.2)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                with self._lock:
                    self.consumer_errors.append(str(err))
                continue
            value, partition, offset = msg.value(), msg.partition(), msg.offset()
            assert value is not None and partition is not None and offset is not None
            self.history.observed(partition, offset, value.decode(), consumer="c1")
            self.observed += 1

    def first_ack_after(self, partition: int, t: float) -> float | None:
        """When the first record attempted after `t` on `partition` was acknowledged."""
        with self._lock:
            times = [acked for attempted, acked in self.ack_times[partition] if attempted > t]
        return min(times) if times else None

    def acked_count(self) -> int:
        with self._lock:
            return sum(len(v) for v in self.ack_times.values())

    def stop(self, flush_s: float = 60.0) -> int:
        """Stop producing, wait for every outstanding delivery; returns how many are left."""
        self._stop.set()
        for t in self._threads:
            t.join(30)
        left = self.producer.flush(flush_s)
        self.consumer.close()
        return int(left)


def final_read(servers: str, topic: str, partitions: int, history: History,
               timeout: float = 60.0) -> dict[int, list[tuple[int, str]]]:
    """Read every partition from its start to its high watermark into `history.final`;
    returns what was read."""
    consumer = Consumer({"bootstrap.servers": servers, "group.id": f"final-{topic}",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 100})
    try:
        ends = {}
        for p in range(partitions):
            _lo, hi = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=15)
            ends[p] = int(hi)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        got: dict[int, list[tuple[int, str]]] = {p: [] for p in range(partitions)}
        deadline = time.monotonic() + timeout
        def done() -> bool:
            return all((got[p][-1][0] + 1 if got[p] else 0) >= ends[p] for p in got)
        while not done():
            assert time.monotonic() < deadline, (
                f"final read incomplete: ends {ends}, read {[len(v) for v in got.values()]}")
            msg = consumer.poll(0.2)
            if msg is None or msg.error() is not None:
                continue
            value, p, offset = msg.value(), msg.partition(), msg.offset()
            assert value is not None and p is not None and offset is not None
            got[p].append((offset, value.decode()))
        for p, records in got.items():
            history.final(p, records)
        return got
    finally:
        consumer.close()

