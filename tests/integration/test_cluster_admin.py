"""Kafka admin requests through the controller (Raft group 0) on three real node processes
(issue 14): CreateTopics without a replication factor gets the cluster default (3 with three
nodes) and says so in its response; explicit replica assignments are placed as named and bad
ones refused (INVALID_REPLICA_ASSIGNMENT); CreatePartitions adds partitions that elect a leader
and take records; (Incremental)AlterConfigs changes are seen by DescribeConfigs on every node
and applied by the leader's log (LogAppendTime), a value out of Kafka's bounds is refused by the
controller, every Kafka topic config is described and a node describes its broker settings;
Metadata auto-creates a topic through the controller with the default replication factor;
InitProducerId never hands out one id twice across the nodes; Metadata's ISR drops a SIGKILLed
follower and takes it back once it restarted and caught up."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
)
from poison import RawClient
from test_cluster_controller import agreed, wait_for
from test_cluster_partitions import KafkaNode

from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages import create_topics as ct
from redshank.protocol.messages import init_producer_id as ipi
from redshank.protocol.messages import metadata as md
from redshank.protocol.record_batch import iter_batches, parse_header
from redshank.protocol.records import iter_records
from redshank.tools.cluster_cmd import plan_ports


def _call(node: KafkaNode, request: Any, version: int, response_type: Any) -> Any:
    client = RawClient(node.kafka)
    try:
        return client.call(request, version, response_type)
    finally:
        client.close()


def _create(node: KafkaNode, *topics: ct.CreatableTopic) -> dict[str, ct.CreatableTopicResult]:
    resp = _call(node, ct.CreateTopicsRequest(topics=topics, timeout_ms=20000), 7,
                 ct.CreateTopicsResponse)
    return {t.name: t for t in resp.topics}


def _partitions(node: KafkaNode, topic: str) -> dict[int, Any] | None:
    """The topic's partitions as the node's Metadata (confluent-kafka) says, once every one has
    a leader."""
    got = AdminClient({"bootstrap.servers": node.kafka}).list_topics(topic, timeout=10)
    t = got.topics.get(topic)
    if t is None or t.error is not None or not t.partitions:
        return None
    if any(p.leader < 0 for p in t.partitions.values()):
        return None
    return dict(t.partitions)


def _isr(node: KafkaNode, topic: str, partition: int) -> tuple[int, tuple[int, ...]] | None:
    """(leader, sorted ISR) of one partition from the node's Metadata v12."""
    resp = _call(node, md.MetadataRequest(topics=(md.MetadataRequestTopic(name=topic),),
                                          allow_auto_topic_creation=False), 12,
                 md.MetadataResponse)
    for t in resp.topics:
        for p in t.partitions:
            if t.name == topic and p.partition_index == partition and p.leader_id > 0:
                return p.leader_id, tuple(sorted(p.isr_nodes))
    return None


def _described(node: KafkaNode, topic: str, want: dict[str, str]) -> bool | None:
    """True once the node's DescribeConfigs shows `want` for the topic."""
    resource = ConfigResource("topic", topic)
    client = AdminClient({"bootstrap.servers": node.kafka})
    entries = client.describe_configs([resource])[resource].result(30)
    return True if {k: entries[k].value for k in want} == want else None


def _values(nodes: list[KafkaNode], topic: str, partition: int
            ) -> list[tuple[bytes, int, bool]]:
    """(value, timestamp, log-append-time) of every record the partition's leader serves,
    whichever node it is now (Metadata may name a replica while an election or a leadership
    hand-over runs: the others answer NOT_LEADER_OR_FOLLOWER, and the leader is asked)."""
    deadline = time.monotonic() + 30
    while True:
        for node in nodes:
            client = RawClient(node.kafka)
            try:
                got = client.fetch(topic, partition, 0)
            finally:
                client.close()
            if got.error_code == ErrorCode.NONE:
                return _records(got)
            assert got.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER, got
        assert time.monotonic() < deadline, f"no leader of {topic}/{partition} within 30 s"
        time.sleep(0.1)


def _records(got: Any) -> list[tuple[bytes, int, bool]]:
    buf = bytes(got.records or b"")
    out = []
    for pos, _ in iter_batches(buf):
        header = parse_header(buf, pos)
        append_time = bool(header.attributes & 0x08)
        for r in iter_records(buf, pos, verify_crc=False):
            out.append((r.value or b"", r.timestamp, append_time))
    return out


@pytest.mark.timeout(300)
def test_admin_requests_go_through_the_controller(tmp_path: Path) -> None:
    rpcs = [rpc for _kafka, rpc in plan_ports(3, 1, 0)]
    nodes = [KafkaNode(tmp_path / f"node-{i}", i, rpcs[i - 1], rpcs, 1) for i in (1, 2, 3)]
    detail = lambda: "\n".join(f"{n.node_id}: {n.tail(8)}" for n in nodes)  # noqa: E731
    try:
        for node in nodes:
            node.spawn()
        for node in nodes:
            node.ready()
        wait_for("three nodes agreeing on one cluster", lambda: agreed(nodes, 3), 30)  # type: ignore[arg-type]

        # -- CreateTopics: the default replication factor, explicit and refused assignments --
        ra = ct.CreatableReplicaAssignment
        got = _create(
            nodes[1],
            ct.CreatableTopic("dflt", num_partitions=2, replication_factor=-1),
            ct.CreatableTopic("named", num_partitions=-1, replication_factor=-1, assignments=(
                ra(0, (2, 3)), ra(1, (3, 1)), ra(2, (1, 2)))),
            ct.CreatableTopic("unknown-broker", num_partitions=-1, replication_factor=-1,
                              assignments=(ra(0, (1, 9)),)),
            ct.CreatableTopic("twice", num_partitions=-1, replication_factor=-1,
                              assignments=(ra(0, (2, 2)),)),
            ct.CreatableTopic("uneven", num_partitions=-1, replication_factor=-1,
                              assignments=(ra(0, (1, 2)), ra(1, (3,)))))
        assert (got["dflt"].error_code, got["dflt"].num_partitions,
                got["dflt"].replication_factor) == (ErrorCode.NONE, 2, 3), got["dflt"]
        assert (got["named"].error_code, got["named"].num_partitions,
                got["named"].replication_factor) == (ErrorCode.NONE, 3, 2), got["named"]
        for bad in ("unknown-broker", "twice", "uneven"):
            assert got[bad].error_code == ErrorCode.INVALID_REPLICA_ASSIGNMENT, got[bad]
        parts = wait_for("named has leaders", lambda: _partitions(nodes[0], "named"), 30, detail)
        assert [tuple(parts[p].replicas) for p in range(3)] == [(2, 3), (3, 1), (1, 2)]
        dflt = wait_for("dflt has leaders", lambda: _partitions(nodes[2], "dflt"), 30, detail)
        assert all(sorted(p.replicas) == [1, 2, 3] for p in dflt.values())
        # confluent-kafka's own default (-1) asks for the cluster's as well.
        admin = AdminClient({"bootstrap.servers": nodes[0].kafka})
        admin.create_topics([NewTopic("client-default", 1)], operation_timeout=20)[
            "client-default"].result(30)
        cd = wait_for("client-default has a leader",
                      lambda: _partitions(nodes[0], "client-default"), 30, detail)
        assert sorted(cd[0].replicas) == [1, 2, 3]

        # -- CreatePartitions: the new partition is placed, elects, takes and serves records --
        admin.create_partitions([NewPartitions("dflt", 3)], operation_timeout=20)["dflt"].result(30)
        grown = {n.node_id: wait_for(f"dflt/2 known on node {n.node_id}", lambda n=n: (
            p if (p := _partitions(n, "dflt")) is not None and len(p) == 3 else None), 30,
            detail) for n in nodes}
        assert all(sorted(p[2].replicas) == [1, 2, 3] for p in grown.values())
        producer = Producer({"bootstrap.servers": nodes[0].kafka, "acks": "all"})
        for i in range(3):
            producer.produce("dflt", value=b"new-%d" % i, partition=2)
        assert producer.flush(30) == 0
        assert [v for v, _ts, _lat in _values(nodes, "dflt", 2)] == [b"new-0", b"new-1",
                                                                      b"new-2"]

        # -- AlterConfigs / IncrementalAlterConfigs, seen from every node, applied by the log --
        res = ConfigResource("topic", "dflt", incremental_configs=[
            ConfigEntry("retention.ms", "123456",
                        incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("message.timestamp.type", "LogAppendTime",
                        incremental_operation=AlterConfigOpType.SET)])
        admin.incremental_alter_configs([res])[res].result(30)
        legacy = ConfigResource("topic", "named", set_config={"retention.bytes": "7777777"})
        admin.alter_configs([legacy])[legacy].result(30)
        for node in nodes:  # each node's controller replica applies the change in its time
            for name, want in (("dflt", {"retention.ms": "123456",
                                         "message.timestamp.type": "LogAppendTime"}),
                               ("named", {"retention.bytes": "7777777"})):
                wait_for(f"node {node.node_id} describing {name}'s new configs",
                         lambda n=node, t=name, w=want: _described(n, t, w), 20, detail)
        # The controller validates as a single node does (topic_configs), and describes every
        # Kafka 3.9 topic config; a node describes its own broker settings.
        bad = ConfigResource("topic", "dflt", incremental_configs=[ConfigEntry(
            "min.cleanable.dirty.ratio", "2", incremental_operation=AlterConfigOpType.SET)])
        with pytest.raises(KafkaException) as refused:
            admin.incremental_alter_configs([bad])[bad].result(30)
        assert refused.value.args[0].code() == KafkaError.INVALID_CONFIG
        described = admin.describe_configs([ConfigResource("topic", "dflt")])
        entries = next(iter(described.values())).result(30)
        assert len(entries) == 36 and entries["retention.ms"].value == "123456"
        assert entries["min.insync.replicas"].source == ConfigSource.DEFAULT_CONFIG.value
        described = admin.describe_configs([ConfigResource("broker", "2")])
        broker = next(iter(described.values())).result(30)
        assert (broker["node.id"].value, broker["default.replication.factor"].value) == ("2", "3")
        before = int(time.time() * 1000)
        producer.produce("dflt", value=b"stamped", partition=2, timestamp=1000)
        assert producer.flush(30) == 0
        last = wait_for("the stamped record", lambda: (
            r[-1] if (r := _values(nodes, "dflt", 2)) and r[-1][0] == b"stamped" else None),
            20, detail)
        assert last[2] and last[1] >= before, last  # the broker's clock, not the producer's

        # -- Metadata auto-creates through the controller, with the default RF --
        resp = _call(nodes[1], md.MetadataRequest(topics=(md.MetadataRequestTopic(name="auto"),),
                                                  allow_auto_topic_creation=True), 12,
                     md.MetadataResponse)
        assert [t.name for t in resp.topics] == ["auto"]
        auto = wait_for("auto has leaders", lambda: _partitions(nodes[2], "auto"), 30, detail)
        assert all(sorted(p.replicas) == [1, 2, 3] for p in auto.values())

        # -- InitProducerId: ids are unique across the nodes --
        ids = []
        for node in nodes * 2:
            r = _call(node, ipi.InitProducerIdRequest(transactional_id=None,
                                                      transaction_timeout_ms=60000), 4,
                      ipi.InitProducerIdResponse)
            assert r.error_code == ErrorCode.NONE, (node.node_id, r)
            ids.append(r.producer_id)
        assert len(set(ids)) == len(ids), ids
        # An idempotent producer on each node gets its own id and writes.
        for node in nodes:
            idem = Producer({"bootstrap.servers": node.kafka, "enable.idempotence": True})
            idem.produce("dflt", value=b"idem-%d" % node.node_id, partition=0)
            assert idem.flush(30) == 0

        # -- ISR: a SIGKILLed follower leaves it, and comes back after its restart --
        leader, _isr_all = wait_for("dflt/0 in sync", lambda: (
            got if (got := _isr(nodes[0], "dflt", 0)) is not None and len(got[1]) == 3
            else None), 30, detail)
        victim = next(n for n in nodes if n.node_id != leader)
        rest = [n for n in nodes if n is not victim]
        victim.kill_group()
        for node in rest:
            wait_for(f"node {node.node_id} shows the ISR without {victim.node_id}", lambda n=node: (
                got if (got := _isr(n, "dflt", 0)) is not None
                and victim.node_id not in got[1] and len(got[1]) == 2 else None), 30, detail)
        victim.spawn()
        victim.ready()
        for node in nodes:
            wait_for(f"node {node.node_id} shows the full ISR again", lambda n=node: (
                got if (got := _isr(n, "dflt", 0)) is not None and len(got[1]) == 3 else None),
                60, detail)
    finally:
        for node in nodes:
            node.stop()


@pytest.mark.timeout(240)
def test_a_node_that_is_not_a_seed_serves_admin_requests(tmp_path: Path) -> None:
    """A fourth node started with `--seeds` but not among them joins group 0 as a learner
    (test_cluster_join.py): admin requests sent to it go through the controller like a seed's
    (CreateTopics with the default replication factor, placed over all four nodes), its
    Metadata names every topic's leaders and in-sync replicas, configs altered through it are
    described alike by every node, and its producer ids are never handed out elsewhere."""
    rpcs = [rpc for _kafka, rpc in plan_ports(4, 1, 0)]
    seeds = [KafkaNode(tmp_path / f"node-{i}", i, rpcs[i - 1], rpcs[:3], 1) for i in (1, 2, 3)]
    other = KafkaNode(tmp_path / "node-4", 4, rpcs[3], rpcs[:3], 1)
    nodes = [*seeds, other]
    detail = lambda: "\n".join(f"{n.node_id}: {n.tail(8)}" for n in nodes)  # noqa: E731
    try:
        for node in nodes:
            node.spawn()
        for node in nodes:
            node.ready()
        wait_for("four nodes agreeing on one cluster", lambda: agreed(nodes, 4), 30, detail)  # type: ignore[arg-type]

        # CreateTopics sent to node 4 itself: created through the controller, RF 3 by default.
        got = _create(other, ct.CreatableTopic("direct", num_partitions=1, replication_factor=-1))
        assert got["direct"].error_code == ErrorCode.NONE, got["direct"]
        admin = AdminClient({"bootstrap.servers": other.kafka})
        admin.create_topics([NewTopic("via4", 2)], operation_timeout=20)["via4"].result(30)
        parts = wait_for("via4 has leaders, seen from node 4",
                         lambda: _partitions(other, "via4"), 30, detail)
        assert all(len(set(p.replicas)) == 3 and set(p.replicas) <= {1, 2, 3, 4}
                   for p in parts.values()), parts
        want_isr = tuple(sorted(parts[0].replicas))
        wait_for("node 4 reports the ISR", lambda: (
            got if (got := _isr(other, "via4", 0)) is not None and got[1] == want_isr
            else None), 30, detail)

        res = ConfigResource("topic", "via4", incremental_configs=[
            ConfigEntry("retention.ms", "654321", incremental_operation=AlterConfigOpType.SET)])
        admin.incremental_alter_configs([res])[res].result(30)
        for node in nodes:
            wait_for(f"node {node.node_id} describing via4's new configs", lambda n=node: (
                _described(n, "via4", {"retention.ms": "654321"})), 20, detail)

        ids = []
        for node in (other, seeds[0], other, seeds[1]):
            r = _call(node, ipi.InitProducerIdRequest(transactional_id=None,
                                                      transaction_timeout_ms=60000), 4,
                      ipi.InitProducerIdResponse)
            assert r.error_code == ErrorCode.NONE, (node.node_id, r)
            ids.append(r.producer_id)
        assert len(set(ids)) == len(ids), ids

        producer = Producer({"bootstrap.servers": other.kafka, "acks": "all",
                             "enable.idempotence": True})
        producer.produce("via4", value=b"from-4", partition=0)
        assert producer.flush(30) == 0
        assert [v for v, _ts, _lat in _values(nodes, "via4", 0)] == [b"from-4"]
    finally:
        for node in nodes:
            node.stop()
