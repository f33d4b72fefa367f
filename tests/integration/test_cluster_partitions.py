"""Replicated Kafka partitions across real node processes on 127.0.0.1 (the first slice of
issue 14): three seed nodes; a topic of replication factor 3 created through a Kafka admin
client on node 1 goes through the controller, and every node's controller backend opens its
replicas (`cluster/replicas-core<N>.json`); each partition elects exactly one leader across the
nodes; acks=all batches produced to the leader's node are read back from it, followers answer
NOT_LEADER_OR_FOLLOWER; Metadata from any node names every broker and each partition's leader,
so a producer bootstrapped on a follower's node writes to the leader; when the leader's whole
process group is SIGKILLed another node leads, serves every acknowledged record, and takes more
from a client that found it through Metadata; restarted, the killed node's replicas follow the
partition's leader and catch up, and the preferred replica leads again; deleted, the topic's
replicas close and their logs go on every node."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from poison import RawClient, batch
from test_cluster_controller import Node, agreed, wait_for

from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.record_batch import iter_batches
from redshank.protocol.records import iter_records
from redshank.tools.bench._broker import read_line
from redshank.tools.cluster_cmd import plan_ports

TOPIC = "replicated"
PARTITIONS = 2


class KafkaNode(Node):
    kafka = ""

    def ready(self, timeout: float = 45.0) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        line = read_line(self.proc.stdout, timeout)
        assert line.startswith("redshank ready "), (line, self.tail())
        self.kafka = line.split("kafka=", 1)[1].split()[0]

    def replicas(self) -> dict[int, dict[str, Any]]:
        """Partition -> this node's replica view (every core's file)."""
        out = {}
        for core in range(self.cores):
            out.update(_core_view(self, core))
        return out


def leaders(nodes: list[KafkaNode], partition: int) -> dict[str, Any] | None:
    """The one leader of `partition` every node agrees on (node id, term), once it serves."""
    views = [n.replicas().get(partition) for n in nodes]
    if any(v is None for v in views):
        return None
    serving = [n for n, v in zip(nodes, views, strict=True) if v and v["serves"]]
    terms = {(v["term"], v["leader"]) for v in views if v}
    if len(serving) != 1 or len(terms) != 1:
        return None
    return {"node": serving[0], "term": views[0]["term"] if views[0] else -1}


def values(records: bytes | memoryview | None) -> list[bytes]:
    buf = bytes(records or b"")
    return [r.value or b"" for pos, _ in iter_batches(buf)
            for r in iter_records(buf, pos, verify_crc=False)]


def restart_a_core(nodes: list[KafkaNode], detail: Any) -> None:
    """SIGKILL core 1 of a node that hosts a replica there: the supervisor restarts it and the
    node's controller backend opens the replica on it again, which rejoins its group."""
    node, p = next((n, p) for n in nodes for p in range(PARTITIONS)
                   if _core_view(n, 1).get(p) is not None)
    pid = json.loads((node.data_dir / "node.json").read_text())["pids"][1]
    os.kill(pid, signal.SIGKILL)
    wait_for("core 1 gone", lambda: _gone(pid) or None, 10)
    (node.data_dir / "cluster" / "replicas-core1.json").unlink(missing_ok=True)
    wait_for("the replica open again on the restarted core", lambda: (
        v if (v := _core_view(node, 1).get(p)) is not None and v["leader"] > 0 else None),
        30, detail)


def _core_view(node: KafkaNode, core: int) -> dict[int, dict[str, Any]]:
    try:
        view = json.loads((node.data_dir / "cluster" / f"replicas-core{core}.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return {int(r["name"].rsplit("/", 1)[1]): r for r in view["replicas"]
            if r["name"].split("/")[1] == TOPIC}


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie until the supervisor reaps it.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1].startswith("Z")
    except FileNotFoundError:
        return True


@pytest.mark.timeout(180)
@pytest.mark.parametrize("cores", [1, 2])
def test_replicas_open_elect_replicate_and_fail_over(tmp_path: Path, cores: int) -> None:
    rpcs = [rpc for _kafka, rpc in plan_ports(3, cores, 0)]
    nodes = [KafkaNode(tmp_path / f"node-{i}", i, rpcs[i - 1], rpcs, cores) for i in (1, 2, 3)]
    try:
        for node in nodes:
            node.spawn()
        for node in nodes:
            node.ready()
        wait_for("three nodes agreeing on one cluster", lambda: agreed(nodes, 3), 30)  # type: ignore[arg-type]

        admin = AdminClient({"bootstrap.servers": nodes[0].kafka})
        futures = admin.create_topics([NewTopic(TOPIC, PARTITIONS, 3)], operation_timeout=20)
        futures[TOPIC].result(30)
        detail = lambda: "\n".join(f"{n.node_id}: {n.replicas()}\n{n.tail(5)}"  # noqa: E731
                                   for n in nodes)
        led = [wait_for(f"one leader of partition {p}", lambda p=p: leaders(nodes, p), 30,
                        detail) for p in range(PARTITIONS)]

        acked: dict[int, list[bytes]] = {}
        for p, lead in enumerate(led):
            for node in nodes:
                client = RawClient(node.kafka)
                try:
                    res = client.produce(TOPIC, p, batch(3, value=b"p%d-" % p))
                finally:
                    client.sock.close()
                assert res is not None
                if node is lead["node"]:
                    assert res.error_code == ErrorCode.NONE, res
                    acked[p] = values(batch(3, value=b"p%d-" % p))
                else:
                    assert res.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER, res
            client = RawClient(lead["node"].kafka)
            try:
                got = client.fetch(TOPIC, p, 0)
            finally:
                client.sock.close()
            assert got.error_code == ErrorCode.NONE
            assert values(got.records) == acked[p]

        # Metadata from any node: every broker, each partition's leader and replicas.
        for node in nodes:
            md = AdminClient({"bootstrap.servers": node.kafka}).list_topics(TOPIC, timeout=10)
            assert sorted(md.brokers) == [1, 2, 3]
            assert {b.port for b in md.brokers.values()} == {
                int(n.kafka.rsplit(":", 1)[1]) for n in nodes}
            parts = md.topics[TOPIC].partitions
            assert [parts[p].leader for p in range(PARTITIONS)] == [
                lead["node"].node_id for lead in led]
            assert all(sorted(parts[p].replicas) == [1, 2, 3] for p in range(PARTITIONS))
        # A client bootstrapped on a node that does not lead partition 1 finds its leader.
        other = next(n for n in nodes if n is not led[1]["node"])
        producer = Producer({"bootstrap.servers": other.kafka, "acks": "all"})
        for i in range(5):
            producer.produce(TOPIC, value=b"c%d" % i, partition=1)
        assert producer.flush(20) == 0
        acked[1] += [b"c%d" % i for i in range(5)]
        client = RawClient(led[1]["node"].kafka)
        try:
            got = client.fetch(TOPIC, 1, 0)
        finally:
            client.sock.close()
        assert values(got.records) == acked[1]

        if cores > 1:
            restart_a_core(nodes, detail)
            led[0] = wait_for("one leader of partition 0", lambda: leaders(nodes, 0), 30, detail)

        # Partition 0's leader node dies whole; the others elect a leader that has the batch.
        victim = led[0]["node"]
        rest = [n for n in nodes if n is not victim]
        victim.kill_group()
        new = wait_for("a new leader of partition 0", lambda: (
            got if (got := leaders(rest, 0)) is not None and got["term"] > led[0]["term"]
            else None), 30, detail)
        client = RawClient(new["node"].kafka)
        try:
            got = client.fetch(TOPIC, 0, 0)
        finally:
            client.sock.close()
        assert got.error_code == ErrorCode.NONE
        assert values(got.records) == acked[0]
        # Clients find the new leader through Metadata and write on.
        producer = Producer({"bootstrap.servers": rest[0].kafka, "acks": "all"})
        producer.produce(TOPIC, value=b"after", partition=0)
        assert producer.flush(20) == 0
        client = RawClient(new["node"].kafka)
        try:
            got = client.fetch(TOPIC, 0, 0)
        finally:
            client.sock.close()
        assert values(got.records) == [*acked[0], b"after"]

        # The killed node restarts on its data: its backend reopens its replicas, which follow
        # the partition's leader and catch up to its high watermark; the preferred replica then
        # leads again (leadership balance), with the same records. The leader the restarted
        # replica follows is whichever one all three nodes agree on, not necessarily `new`:
        # when `new` is not the preferred replica, the balance hands leadership on to the
        # preferred one (the victim, or the other survivor) in a later term, possibly before
        # the victim is back.
        victim.spawn()
        victim.ready()
        caught_up = wait_for("the restarted node caught up", lambda: (
            v if (v := victim.replicas().get(0)) is not None
            and v["log_end"] == len(acked[0]) + 1 and v["term"] >= new["term"]
            and (lead := leaders(nodes, 0)) is not None
            and v["leader"] == lead["node"].node_id
            else None), 30, detail)
        assert caught_up["preferred"] in [n.node_id for n in nodes], caught_up
        preferred = next(n for n in nodes if n.node_id == caught_up["preferred"])
        back = wait_for("the preferred replica leading again", lambda: (
            got if (got := leaders(nodes, 0)) is not None and got["node"] is preferred
            else None), 30, detail)
        assert back["term"] >= new["term"]
        client = RawClient(preferred.kafka)
        try:
            got = client.fetch(TOPIC, 0, 0)
        finally:
            client.sock.close()
        assert got.error_code == ErrorCode.NONE
        assert values(got.records) == [*acked[0], b"after"]

        # Deleted through the controller: every node closes its replicas and removes their logs.
        admin = AdminClient({"bootstrap.servers": rest[0].kafka})
        admin.delete_topics([TOPIC], operation_timeout=20)[TOPIC].result(30)
        wait_for("every replica closed and removed", lambda: all(
            not n.replicas() and not list((n.data_dir / "kafka").glob(f"{TOPIC}-*"))
            for n in nodes) or None, 30, detail)
    finally:
        for node in nodes:
            node.stop()
