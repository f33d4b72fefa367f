"""Leadership balance across real node processes (issue 14, "Leadership"): three seed nodes, a
topic of three partitions with replication factor 3. The controller's placement spreads the
preferred replicas (each partition's first) over the nodes, and each partition's leader is its
preferred replica, so every node leads one partition. When a leader's node is SIGKILLed another
replica leads its partition; once the node is back and caught up, leadership returns to it,
without an acknowledged record lost or moved (the records acked while it was away included).
ElectLeaders (kafka-python's admin client) answers what the groups do: no election needed
where the preferred replica leads, PREFERRED_LEADER_NOT_AVAILABLE while it is down, and success
once the returning node leads again. Reordering a partition's replicas
(AlterPartitionReassignments, kafka-python) moves its leadership to the new first replica, and
moving replicas to other brokers is refused with the reason. Every node gives the same cluster
id (Metadata and DescribeCluster) and DescribeCluster lists every broker."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import TopicPartition as KTP
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaConnectionError
from test_cluster_controller import agreed, wait_for
from test_cluster_partitions import KafkaNode

from redshank.tools.cluster_cmd import plan_ports

TOPIC = "balanced"
PARTITIONS = 3


def views(node: KafkaNode) -> dict[int, dict[str, Any]]:
    """Partition -> this node's replica view of TOPIC (every core's file)."""
    out = {}
    for core in range(node.cores):
        try:
            view = json.loads((node.data_dir / "cluster" / f"replicas-core{core}.json")
                              .read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            continue
        out.update({int(r["name"].rsplit("/", 1)[1]): r for r in view["replicas"]
                    if r["name"].split("/")[1] == TOPIC})
    return out


def serving(nodes: list[KafkaNode]) -> dict[int, tuple[int, int]] | None:
    """Partition -> (leader node id, preferred node id), once every partition has exactly one
    serving replica among `nodes` and they all agree on its term and leader."""
    seen = [views(n) for n in nodes]
    out = {}
    for p in range(PARTITIONS):
        rows = [(n, v[p]) for n, v in zip(nodes, seen, strict=True) if p in v]
        lead = [n for n, r in rows if r["serves"]]
        if len(rows) != len(nodes) or len(lead) != 1 or len(
                {(r["term"], r["leader"]) for _, r in rows}) != 1:
            return None
        out[p] = (lead[0].node_id, rows[0][1]["preferred"])
    return out


def elect(bootstrap: str, partition: int, timeout_s: float) -> int:
    """ElectLeaders PREFERRED for one partition of TOPIC, from kafka-python's admin client (the
    confluent-kafka 2.16 binding fails on its timeout arguments) -> its error code. The client
    sends it to Metadata's controller (group 0's leader), which may be the node just killed
    until group 0 elects another: a refused connection is tried again (within 30 s)."""
    deadline = time.monotonic() + 30
    while True:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap,
                                 request_timeout_ms=int((timeout_s + 15) * 1000))
        try:
            resp = admin.elect_leaders(0, {TOPIC: [partition]},
                                       timeout_ms=int(timeout_s * 1000), raise_errors=False)
            break
        except KafkaConnectionError:
            assert time.monotonic() < deadline, "no controller reachable within 30 s"
            time.sleep(0.2)
        finally:
            admin.close()
    [(topic, [(got, code, _message)])] = [
        (r[0], [tuple(x) for x in r[1]]) for r in resp.replica_election_results]
    assert (topic, got) == (TOPIC, partition)
    return int(code)


def read_all(bootstrap: str, counts: dict[int, int]) -> dict[int, list[bytes]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        consumer.assign([TopicPartition(TOPIC, p, 0) for p in counts])
        got: dict[int, list[bytes]] = {p: [] for p in counts}
        deadline = time.monotonic() + 30
        while any(len(got[p]) < n for p, n in counts.items()) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            got[msg.partition()].append(msg.value())
        return got
    finally:
        consumer.close()


@pytest.mark.timeout(180)
def test_leaders_spread_over_the_nodes_and_return_to_a_node_that_comes_back(
        tmp_path: Path) -> None:
    rpcs = [rpc for _kafka, rpc in plan_ports(3, 1, 0)]
    nodes = [KafkaNode(tmp_path / f"node-{i}", i, rpcs[i - 1], rpcs, 1) for i in (1, 2, 3)]
    try:
        for node in nodes:
            node.spawn()
        for node in nodes:
            node.ready()
        wait_for("three nodes agreeing on one cluster", lambda: agreed(nodes, 3), 30)  # type: ignore[arg-type]
        admin = AdminClient({"bootstrap.servers": nodes[0].kafka})
        admin.create_topics([NewTopic(TOPIC, PARTITIONS, 3)],
                            operation_timeout=20)[TOPIC].result(30)
        detail = lambda: "\n".join(f"{n.node_id}: {views(n)}\n{n.tail(5)}"  # noqa: E731
                                   for n in nodes)

        # Every partition led by its preferred replica, one partition per node.
        first = wait_for("every partition led by its preferred replica", lambda: (
            s if (s := serving(nodes)) is not None and all(lead == pref for lead, pref
                                                           in s.values()) else None),
            30, detail)
        assert sorted(lead for lead, _ in first.values()) == [1, 2, 3], first
        assert elect(nodes[1].kafka, 0, 5) == KafkaError.ELECTION_NOT_NEEDED
        # One cluster, whichever node is asked: its id (Metadata, DescribeCluster), brokers.
        ids = {AdminClient({"bootstrap.servers": n.kafka}).list_topics(timeout=10).cluster_id
               for n in nodes}
        assert len(ids) == 1, ids
        for n in nodes:
            asker = AdminClient({"bootstrap.servers": n.kafka})  # kept alive for its future
            desc = asker.describe_cluster(request_timeout=10).result(15)
            assert desc.cluster_id in ids and sorted(b.id for b in desc.nodes) == [1, 2, 3]
            assert desc.controller is not None and desc.controller.id in (1, 2, 3)

        bootstrap = ",".join(n.kafka for n in nodes)
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                             "enable.idempotence": True})
        acked: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}

        def produce(tag: str) -> None:
            def delivered(err: Any, msg: Any) -> None:
                assert err is None, err
                acked[msg.partition()].append(msg.value())
            for p in range(PARTITIONS):
                for i in range(5):
                    producer.produce(TOPIC, value=f"{tag}-{p}-{i}".encode(), partition=p,
                                     on_delivery=delivered)
            assert producer.flush(30) == 0

        produce("before")
        # The node leading partition 0 dies: another replica leads it.
        victim = next(n for n in nodes if n.node_id == first[0][0])
        rest = [n for n in nodes if n is not victim]
        victim.kill_group()
        moved = wait_for("a new leader of every partition", lambda: serving(rest), 30, detail)
        assert moved[0][0] != victim.node_id and moved[0][1] == victim.node_id
        produce("away")
        assert elect(rest[0].kafka, 0, 1) == KafkaError.PREFERRED_LEADER_NOT_AVAILABLE

        # Back on its data: it catches up, then leads partition 0 again.
        victim.spawn()
        victim.ready()
        started = time.monotonic()
        port = int(victim.kafka.rsplit(":", 1)[1])  # a new one: its Kafka port is ephemeral
        for n in nodes:
            asker = AdminClient({"bootstrap.servers": n.kafka})
            wait_for(f"node {n.node_id} naming the restarted node's new port", lambda a=asker: (
                True if (b := a.list_topics(timeout=5).brokers.get(victim.node_id)) is not None
                and b.port == port else None), 30, detail)
        # Answered once the preferred replica leads (NONE), or it already did (not needed).
        assert elect(rest[0].kafka, 0, 30) in (0, KafkaError.ELECTION_NOT_NEEDED)
        back = wait_for("leadership back on the restarted node", lambda: (
            s if (s := serving(nodes)) is not None and s[0][0] == victim.node_id else None),
            45, detail)
        print(f"leadership returned {time.monotonic() - started:.2f} s after the restart")
        assert all(lead == pref for lead, pref in back.values()), back
        produce("after")

        # Transfer: partition 1's replicas reordered, the new first one leads within seconds.
        target = next(n for n in (1, 2, 3) if n != back[1][0])
        admin_py = KafkaAdminClient(bootstrap_servers=nodes[0].kafka, request_timeout_ms=30000)
        try:
            order = [target, *(n for n in (1, 2, 3) if n != target)]
            done = admin_py.alter_partition_reassignments({KTP(TOPIC, 1): order})
            assert done == {KTP(TOPIC, 1): None}, done
            refused = admin_py.alter_partition_reassignments({KTP(TOPIC, 2): [1, 2, 4]})
            assert refused[KTP(TOPIC, 2)] is not None  # moving replicas: not yet
        finally:
            admin_py.close()
        started = time.monotonic()
        wait_for("partition 1 led by the new first replica", lambda: (
            s if (s := serving(nodes)) is not None and s[1] == (target, target) else None),
            30, detail)
        print(f"leadership transferred {time.monotonic() - started:.2f} s after the reorder")
        produce("moved")
        got = read_all(bootstrap, {p: len(v) for p, v in acked.items()})
        assert got == acked
        producer.flush(10)
    finally:
        for node in nodes:
            node.stop()
