"""Data transforms on a three-node cluster (`redshank start --seeds`, two cores each), with
real clients: the deployment (a record of the replicated `__transforms` topic) is seen by every
node, each input partition's instance runs on the node leading it (`transform list` names the
node), its output goes to output partitions led by any node, its offsets are committed at the
group's coordinator wherever it is. An upper-casing transform's exact output; then the
leadership of an input partition is transferred mid-stream (`redshank cluster
transfer-leadership`) and every input record reaches the output at least once (duplicates
counted and printed), the instance now running on the new leader.

One cluster for the module; every wait bounded; the nodes are stopped (their process groups
killed if they do not stop) whatever happens."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from test_cluster_controller import agreed
from test_cluster_controller import wait_for as wait_value
from test_cluster_partitions import KafkaNode
from transform_helpers import TRANSFORMS_PY, cli, consume_all, listed, produce, wait_for

from redshank.tools.cluster_cmd import plan_ports

CORES = 2


class Cluster:
    def __init__(self, nodes: list[KafkaNode]) -> None:
        self.nodes = nodes
        self.bootstrap = ",".join(n.kafka for n in nodes)

    def detail(self) -> str:
        return "\n".join(f"node {n.node_id}:\n{n.tail(15)}" for n in self.nodes)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("xform-cluster")
    rpcs = [rpc for _kafka, rpc in plan_ports(3, CORES, 0)]
    nodes = [KafkaNode(root / f"node-{i}", i, rpcs[i - 1], rpcs, CORES) for i in (1, 2, 3)]
    try:
        for node in nodes:
            node.spawn()
        for node in nodes:
            node.ready(90)  # three nodes of two cores starting at once on a shared machine
        wait_value("three nodes agreeing on one cluster",
                   lambda: agreed(nodes, 3), 30)  # type: ignore[arg-type]
        yield Cluster(nodes)
    finally:
        for node in nodes:
            node.stop()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("xform-cluster-src")
    (cwd / "xforms.py").write_text(TRANSFORMS_PY)
    return cwd


def create(bootstrap: str, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 3)], operation_timeout=20)[name].result(30)


def leaders(bootstrap: str, topic: str) -> dict[int, int]:
    """Partition -> the node id Metadata names its leader (-1: none)."""
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    return {p: m.leader for p, m in md.topics[topic].partitions.items()}


def caught_up(cwd: Path, bootstrap: str, name: str, topic: str, partitions: int) -> bool:
    """Every instance running, with no lag, reporting from the node leading its partition."""
    t = listed(cwd, bootstrap).get(name)
    if t is None or len(t["instances"]) != partitions:
        return False
    lead = leaders(bootstrap, topic)
    return all(i["status"] == "running" and i["lag"] == 0 and i["node"] == lead[i["partition"]]
               for i in t["instances"])


@pytest.mark.timeout(150)
def test_upper_transform_on_three_nodes(cluster: Cluster, workdir: Path) -> None:
    create(cluster.bootstrap, "cup-in", 3)
    create(cluster.bootstrap, "cup-out", 3)
    out = cli(workdir, cluster.bootstrap, "deploy", "--name", "cupper", "--input", "cup-in",
              "--output", "cup-out", "xforms:Upper")
    assert out.returncode == 0, out.stderr
    n = 300
    produce(cluster.bootstrap, "cup-in", [(b"k%d" % i, b"value-%d" % i) for i in range(n)])
    wait_for("the transform to catch up on every leader", lambda: caught_up(
        workdir, cluster.bootstrap, "cupper", "cup-in", 3), 60)
    got = consume_all(cluster.bootstrap, "cup-out", 3, timeout=30)
    inputs = consume_all(cluster.bootstrap, "cup-in", 3, timeout=30)
    assert Counter(got) == Counter((p, k, v.upper() if v else v) for p, k, v in inputs)
    assert len(got) == n
    t = listed(workdir, cluster.bootstrap)["cupper"]
    assert sum(i["processed"] for i in t["instances"]) == n
    # The instances sit on the partitions' leaders, which the placement spreads over the nodes.
    assert sorted(i["node"] for i in t["instances"]) == sorted(
        leaders(cluster.bootstrap, "cup-in").values())


@pytest.mark.timeout(200)
def test_leadership_moves_mid_stream_nothing_lost(cluster: Cluster, workdir: Path) -> None:
    create(cluster.bootstrap, "cmv-in", 3)
    create(cluster.bootstrap, "cmv-out", 3)
    out = cli(workdir, cluster.bootstrap, "deploy", "--name", "cident", "--input", "cmv-in",
              "--output", "cmv-out", "xforms:Ident")
    assert out.returncode == 0, out.stderr
    wait_for("the instances to run", lambda: caught_up(
        workdir, cluster.bootstrap, "cident", "cmv-in", 3), 60)
    producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 5,
                         "message.timeout.ms": 60000})
    failed: list[KafkaError] = []

    def report(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            failed.append(err)

    stop = threading.Event()
    sent = [0]  # records handed to the producer

    def run() -> None:  # ~1,000 records/s until told to stop, whatever leadership does
        i = 0
        while not stop.is_set():
            while True:
                try:
                    producer.produce("cmv-in", value=b"%06d" % i, key=b"%d" % i,
                                     on_delivery=report)
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
            i += 1
            sent[0] = i
            if i % 10 == 9:
                time.sleep(0.01)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    before = leaders(cluster.bootstrap, "cmv-in")
    target = next(n for n in (1, 2, 3) if n != before[0])
    wait_for("some output", lambda: sum(
        i["processed"] or 0 for i in listed(workdir, cluster.bootstrap)["cident"]["instances"])
        >= 200, 30)
    moved = subprocess.run(
        [sys.executable, "-m", "redshank.tools.cli", "cluster", "transfer-leadership",
         "cmv-in", "0", "--to", str(target), "--brokers", cluster.bootstrap],
        capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert moved.returncode == 0, moved.stderr
    # The stream goes on after the move: the new leader's instance takes it over mid-stream.
    after = sent[0]
    wait_for("records produced after the move", lambda: sent[0] >= after + 300, 30)
    stop.set()
    thread.join(30)
    assert not thread.is_alive()
    total = sent[0]
    assert producer.flush(60) == 0
    assert failed == [], f"delivery failures: {failed[:5]}"
    assert leaders(cluster.bootstrap, "cmv-in")[0] == target
    wait_for("the transform to catch up, partition 0's instance on its new leader",
             lambda: caught_up(workdir, cluster.bootstrap, "cident", "cmv-in", 3), 60)
    inputs = consume_all(cluster.bootstrap, "cmv-in", 3, timeout=30)
    outputs = consume_all(cluster.bootstrap, "cmv-out", 3, timeout=30)
    assert sorted(v for _p, _k, v in inputs) == [b"%06d" % i for i in range(total)]
    seen = Counter(v for _p, _k, v in outputs)
    missing = [v for _p, _k, v in inputs if v not in seen]
    assert not missing, f"{len(missing)} input records never reached the output"
    duplicates = sum(c - 1 for c in seen.values())
    print(f"\nleadership moved mid-stream: {total} records, {duplicates} duplicated in the "
          f"output (at-least-once)")
    assert set(outputs) <= set(inputs)  # each in its input's partition
    t: dict[str, Any] = listed(workdir, cluster.bootstrap)["cident"]
    (p0,) = [i for i in t["instances"] if i["partition"] == 0]
    assert (p0["node"], p0["status"]) == (target, "running")
