"""A node started after the cluster formed, with `--seeds` naming the three seed nodes but not
itself (issue 14, "a node started later with --seeds joins it"): it registers through a seed,
the controller leader adds it to group 0 as a learner, and it applies the controller's log (its
`cluster/controller.json` shows the cluster uuid and four members, its node identity the
cluster uuid). A topic created through the new node's admin API is placed over all four nodes,
the new node opens its replicas, and a producer and consumer bootstrapped on the new node alone
write and read every partition (content checked); Metadata from it lists four brokers. Restarted,
it needs no seed to start its learner replica again (its voters record) and serves Metadata as
before."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from test_cluster_controller import agreed, identity_cluster, wait_for
from test_cluster_partitions import KafkaNode

from redshank.tools.cluster_cmd import plan_ports

TOPIC = "joined"
PARTITIONS = 4


def hosted(node: KafkaNode) -> set[int]:
    """The partitions of TOPIC this node hosts a replica of (its replica view)."""
    try:
        view = json.loads((node.data_dir / "cluster" / "replicas-core0.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return set()
    return {int(r["name"].rsplit("/", 1)[1]) for r in view["replicas"]
            if r["name"].split("/")[1] == TOPIC}


@pytest.mark.timeout(180)
def test_a_node_started_later_joins_hosts_replicas_and_serves(tmp_path: Path) -> None:
    rpcs = [rpc for _kafka, rpc in plan_ports(4, 1, 0)]
    seeds = rpcs[:3]
    nodes = [KafkaNode(tmp_path / f"node-{i}", i, rpcs[i - 1], seeds, 1) for i in (1, 2, 3)]
    late = KafkaNode(tmp_path / "node-4", 4, rpcs[3], seeds, 1)
    every = [*nodes, late]
    detail = lambda: "\n".join(f"{n.node_id}: {n.view()}\n{n.tail(8)}"  # noqa: E731
                               for n in every)
    try:
        for node in nodes:
            node.spawn()
        for node in nodes:
            node.ready()
        formed = wait_for("three seeds agreeing on one cluster", lambda: agreed(nodes, 3), 30)  # type: ignore[arg-type]

        late.spawn()
        late.ready()
        joined = wait_for("four nodes agreeing, the late one included", lambda: agreed(
            every, 4), 30, detail)  # type: ignore[arg-type]
        assert joined["cluster_uuid"] == formed["cluster_uuid"]
        assert sorted(int(m["node_id"]) for m in joined["members"]) == [1, 2, 3, 4], joined
        assert identity_cluster(late.data_dir) == formed["cluster_uuid"]

        admin = AdminClient({"bootstrap.servers": late.kafka})
        admin.create_topics([NewTopic(TOPIC, PARTITIONS, 3)],
                            operation_timeout=20)[TOPIC].result(30)
        mine = wait_for("the late node hosting its replicas", lambda: hosted(late) or None,
                        30, detail)
        # 4 partitions x 3 replicas over 4 nodes, balanced: 3 each.
        assert len(mine) == 3, mine

        md = admin.list_topics(TOPIC, timeout=10)
        assert sorted(md.brokers) == [1, 2, 3, 4]
        assert all(len(p.replicas) == 3 for p in md.topics[TOPIC].partitions.values())

        producer = Producer({"bootstrap.servers": late.kafka, "acks": "all",
                             "enable.idempotence": True})
        acked: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}

        def delivered(err: Any, msg: Any) -> None:
            assert err is None, err
            acked[msg.partition()].append(msg.value())

        for p in range(PARTITIONS):
            for i in range(5):
                producer.produce(TOPIC, value=f"v{p}-{i}".encode(), partition=p,
                                 on_delivery=delivered)
        assert producer.flush(30) == 0
        assert all(len(v) == 5 for v in acked.values()), acked

        consumer = Consumer({"bootstrap.servers": late.kafka, "group.id": "unused",
                             "enable.auto.commit": False})
        try:
            consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
            got: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
            deadline = time.monotonic() + 30
            while sum(map(len, got.values())) < 20 and time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is not None and msg.error() is None:
                    got[msg.partition()].append(msg.value())
        finally:
            consumer.close()
        assert got == acked

        # Restarted: its voters record starts the learner replica again.
        assert late.stop() == 0
        late.spawn()
        late.ready()
        wait_for("the late node back in agreement", lambda: agreed(every, 4), 30, detail)  # type: ignore[arg-type]
        md = AdminClient({"bootstrap.servers": late.kafka}).list_topics(TOPIC, timeout=10)
        assert sorted(md.brokers) == [1, 2, 3, 4]
        assert len(md.topics[TOPIC].partitions) == PARTITIONS
    finally:
        for node in every:
            node.stop()
