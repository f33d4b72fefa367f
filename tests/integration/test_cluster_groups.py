"""Consumer groups across real node processes on 127.0.0.1 (issue 14): three seed nodes, one core
each. `__consumer_offsets` is a controller topic (replicated on the three nodes), and the
coordinator of a group is the Raft leader of its partition: FindCoordinator from every node
names that leader, the other nodes answer the group's requests NOT_COORDINATOR; two
confluent-kafka consumers of one group bootstrapped on different nodes join one group (both
assigned, disjoint, every partition) and read every record; their commits are acknowledged once
committed on a majority. When the coordinator's node is SIGKILLed, another node leads the
partition, replays it and coordinates: the consumers carry on with the new coordinator (the
records produced after the kill reach them), and a new consumer of the group resumes each
partition from the offsets committed before the kill. A coordinator paused (SIGSTOP) while
another node takes its partition over resigns when it wakes: it answers NOT_COORDINATOR (never
its stale offsets) and names the new coordinator. An fdatasync EIO on the coordinator's log of
the partition: that replica fails and is opened again by recovery in the same process, rejoins
its group, and commits work on. kafka-python and aiokafka groups commit through one node and
resume through another."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from poison import RawClient
from test_cluster_controller import agreed, wait_for
from test_cluster_partitions import KafkaNode
from test_groups import HALF, TOTAL, _ak_take, _kp_take

from redshank.cluster.group import partition_for
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages.find_coordinator import (
    FindCoordinatorRequest,
    FindCoordinatorResponse,
)
from redshank.protocol.messages.offset_fetch import (
    OffsetFetchRequest,
    OffsetFetchRequestTopic,
    OffsetFetchResponse,
)
from redshank.storage.fault_files import ENV
from redshank.tools.cluster_cmd import plan_ports

TOPIC = "grouped"
PARTITIONS = 4
GROUP = "cluster-group"
OFFSETS = "__consumer_offsets"
FIRST = 5  # records per partition before the kill
COMMITTED = 3  # the offset committed for every partition before the kill


def replica_views(node: KafkaNode, topic: str) -> dict[int, dict[str, Any]]:
    """Partition -> this node's view of its replica of `topic` (every core's file)."""
    out = {}
    for core in range(node.cores):
        path = node.data_dir / "cluster" / f"replicas-core{core}.json"
        try:
            rows = json.loads(path.read_text())["replicas"]
        except (FileNotFoundError, json.JSONDecodeError):
            continue
        out.update({int(r["name"].rsplit("/", 1)[1]): r for r in rows
                    if r["name"].split("/")[1] == topic})
    return out


def one_leader(nodes: list[KafkaNode], topic: str, p: int, above_term: int = 0
               ) -> tuple[KafkaNode, int] | None:
    """The node every one of `nodes` agrees leads `p` of `topic` and serves, with its term."""
    views = [replica_views(n, topic).get(p) for n in nodes]
    if any(v is None for v in views):
        return None
    serving = [n for n, v in zip(nodes, views, strict=True) if v and v["serves"]]
    terms = {(v["term"], v["leader"]) for v in views if v}
    if len(serving) != 1 or len(terms) != 1:
        return None
    ((term, _),) = terms
    return (serving[0], term) if term > above_term else None


def replicated(nodes: list[KafkaNode]) -> int | None:
    """The partition count of `__consumer_offsets` once every node hosts each partition."""
    counts = {len(replica_views(n, OFFSETS)) for n in nodes}
    return counts.pop() if len(counts) == 1 and 0 not in counts else None


def find_coordinator(node: KafkaNode) -> FindCoordinatorResponse:
    client = RawClient(node.kafka)
    try:
        response: FindCoordinatorResponse = client.call(
            FindCoordinatorRequest(key=GROUP, key_type=0), 3, FindCoordinatorResponse)
    finally:
        client.close()
    return response


def commit(bootstrap: str, offsets: dict[int, int]) -> None:
    """Commit `offsets` for the group as a consumer that assigns itself (no membership: Kafka's
    generation -1 commit), through whichever node coordinates the group."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP,
                         "enable.auto.commit": False})
    try:
        got = consumer.commit(offsets=[TopicPartition(TOPIC, q, o) for q, o in offsets.items()],
                              asynchronous=False)
        assert got is not None and all(tp.error is None for tp in got), got
    finally:
        consumer.close()


def try_commit(consumer: Consumer, offset: int) -> bool:
    try:
        got = consumer.commit(offsets=[TopicPartition(TOPIC, q, offset)
                                       for q in range(PARTITIONS)], asynchronous=False)
    except KafkaException:
        return False
    return bool(got) and all(tp.error is None for tp in got)


def offsets_of(response: OffsetFetchResponse) -> list[tuple[int, int]]:
    return sorted((pt.partition_index, pt.committed_offset)
                  for t in response.topics for pt in t.partitions)


def committed_at(node: KafkaNode) -> OffsetFetchResponse:
    client = RawClient(node.kafka)
    try:
        response: OffsetFetchResponse = client.call(OffsetFetchRequest(
            group_id=GROUP, topics=(OffsetFetchRequestTopic(TOPIC, tuple(range(PARTITIONS))),)),
            5, OffsetFetchResponse)
    finally:
        client.close()
    return response


class Member:
    """A confluent-kafka consumer of the group; `runs[p]`: the (offset, value) it read from `p`
    since it was last assigned `p` (a rebalance starts a new run)."""

    def __init__(self, bootstrap: str, name: str) -> None:
        self.name = name
        self.runs: dict[int, list[tuple[int, bytes]]] = {}
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": GROUP, "client.id": name,
            "auto.offset.reset": "earliest", "enable.auto.commit": False,
            "session.timeout.ms": 10000, "heartbeat.interval.ms": 500,
            "topic.metadata.refresh.interval.ms": 1000})
        self.consumer.subscribe([TOPIC], on_assign=self._assigned)

    def _assigned(self, _consumer: Consumer, parts: list[TopicPartition]) -> None:
        for tp in parts:
            self.runs[tp.partition] = []

    def poll(self) -> None:
        msg: Message | None = self.consumer.poll(0.2)
        if msg is None or msg.error() is not None:
            return
        p = msg.partition()
        self.runs.setdefault(p, []).append((int(msg.offset()), bytes(msg.value() or b"")))

    def assigned(self) -> set[int]:
        return {tp.partition for tp in self.consumer.assignment()}


def read_all(members: list[Member], expected: dict[int, list[bytes]]) -> bool:
    """Each partition assigned to exactly one member, whose run since it was assigned it is
    contiguous offsets up to the last expected record, each with the value produced there."""
    owned = [(m, p) for m in members for p in m.assigned()]
    if sorted(p for _, p in owned) != list(range(PARTITIONS)):
        return False
    for m, p in owned:
        run = m.runs.get(p, [])
        if not run or run[-1][0] != len(expected[p]) - 1:
            return False
        first = run[0][0]
        assert [o for o, _ in run] == list(range(first, len(expected[p]))), (m.name, p, run)
        assert [v for _, v in run] == expected[p][first:], (m.name, p, run)
    return True


def poll_until(what: str, members: list[Member], done: Callable[[], bool], timeout: float,
               detail: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"{what} not within {timeout} s; {detail()}"
        for m in members:
            m.poll()


def produce(bootstrap: str, expected: dict[int, list[bytes]], tag: bytes, n: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for p in range(PARTITIONS):
        for i in range(n):
            value = b"%s-p%d-%d" % (tag, p, i)
            producer.produce(TOPIC, value=value, partition=p)
            expected[p].append(value)
    assert producer.flush(30) == 0


@pytest.mark.timeout(240)
def test_one_group_across_nodes_survives_its_coordinator(tmp_path: Path) -> None:
    rpcs = [rpc for _kafka, rpc in plan_ports(3, 1, 0)]
    nodes = [KafkaNode(tmp_path / f"node-{i}", i, rpcs[i - 1], rpcs, 1) for i in (1, 2, 3)]
    members: list[Member] = []
    try:
        for node in nodes:
            node.spawn()
        for node in nodes:
            node.ready()
        wait_for("three nodes agreeing on one cluster", lambda: agreed(nodes, 3), 30)  # type: ignore[arg-type]

        def detail() -> str:
            return "\n".join(f"{n.node_id}: {replica_views(n, OFFSETS)}\n{n.tail(8)}"
                             for n in nodes)

        admin = AdminClient({"bootstrap.servers": nodes[0].kafka})
        admin.create_topics([NewTopic(TOPIC, PARTITIONS, 3)],
                            operation_timeout=20)[TOPIC].result(30)
        for p in range(PARTITIONS):
            wait_for(f"a leader of {TOPIC}/{p}", lambda p=p: one_leader(nodes, TOPIC, p), 30,
                     detail)
        expected: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
        produce(nodes[0].kafka, expected, b"a", FIRST)

        # The first FindCoordinator creates `__consumer_offsets` through the controller; until
        # its partition has a leader the answer is COORDINATOR_NOT_AVAILABLE (clients retry).
        first = find_coordinator(nodes[1])
        assert first.error_code in (ErrorCode.NONE, ErrorCode.COORDINATOR_NOT_AVAILABLE), first
        p = partition_for(GROUP, wait_for(f"{OFFSETS} replicated on every node",
                                          lambda: replicated(nodes), 30, detail))
        coordinator, term = wait_for("one leader of the group's partition",
                                     lambda: one_leader(nodes, OFFSETS, p), 30, detail)
        for node in nodes:  # every node names the leader
            answer = wait_for(f"node {node.node_id} naming the coordinator", lambda node=node: (
                a if (a := find_coordinator(node)).error_code == ErrorCode.NONE else None),
                20, detail)
            assert (answer.node_id, f"{answer.host}:{answer.port}") == (
                coordinator.node_id, coordinator.kafka), answer

        # Two consumers of the group, bootstrapped on two different nodes: one group.
        members = [Member(nodes[0].kafka, "m1"), Member(nodes[1].kafka, "m2")]
        poll_until("both members assigned and every record read", members, lambda: (
            all(m.assigned() for m in members) and read_all(members, expected)), 90, detail)
        assert not members[0].assigned() & members[1].assigned()
        described = admin.describe_consumer_groups([GROUP])[GROUP].result(20)
        assert described.coordinator.id == coordinator.node_id
        assert sorted(m.client_id for m in described.members) == ["m1", "m2"]

        # Commits (acks=all on the replicated partition), then read back from the coordinator;
        # the other nodes are not the coordinator.
        for m in members:
            got = m.consumer.commit(offsets=[TopicPartition(TOPIC, q, COMMITTED)
                                             for q in sorted(m.assigned())], asynchronous=False)
            assert got is not None and all(tp.error is None for tp in got), got
        for node in nodes:
            fetched = committed_at(node)
            if node is coordinator:
                assert fetched.error_code == ErrorCode.NONE, fetched
                assert sorted((pt.partition_index, pt.committed_offset)
                              for t in fetched.topics for pt in t.partitions) == [
                    (q, COMMITTED) for q in range(PARTITIONS)]
            else:
                assert fetched.error_code == ErrorCode.NOT_COORDINATOR, (node.node_id, fetched)

        # The coordinator's node dies whole: another node leads the partition and coordinates.
        coordinator.kill_group()
        rest = [n for n in nodes if n is not coordinator]
        new, _ = wait_for("a new leader of the group's partition",
                          lambda: one_leader(rest, OFFSETS, p, term), 30, detail)
        for node in rest:
            answer = wait_for(f"node {node.node_id} naming the new coordinator",
                              lambda node=node: (a if (a := find_coordinator(node)).node_id
                                                 == new.node_id else None), 20, detail)
            assert f"{answer.host}:{answer.port}" == new.kafka
        # The members carry on with it: what is produced now reaches them.
        produce(rest[0].kafka, expected, b"b", 3)
        poll_until("the members reading on after the kill", members,
                   lambda: read_all(members, expected), 60, detail)
        fetched = committed_at(new)
        assert fetched.error_code == ErrorCode.NONE, fetched
        assert sorted((pt.partition_index, pt.committed_offset)
                      for t in fetched.topics for pt in t.partitions) == [
            (q, COMMITTED) for q in range(PARTITIONS)]
        for m in members:
            m.consumer.close()
        members = []

        # A new consumer of the group resumes every partition at the offsets committed before
        # the kill.
        late = Member(rest[1].kafka, "m3")
        members = [late]
        poll_until("the new member reading every partition", members,
                   lambda: read_all(members, expected), 60, detail)
        assert {q: late.runs[q][0][0] for q in range(PARTITIONS)} == {
            q: COMMITTED for q in range(PARTITIONS)}
    finally:
        for m in members:
            m.consumer.close()
        for node in nodes:
            node.stop()


@pytest.mark.timeout(180)
def test_a_paused_coordinator_resigns_when_it_wakes(tmp_path: Path) -> None:
    rpcs = [rpc for _kafka, rpc in plan_ports(3, 1, 0)]
    nodes = [KafkaNode(tmp_path / f"node-{i}", i, rpcs[i - 1], rpcs, 1) for i in (1, 2, 3)]
    paused: KafkaNode | None = None
    try:
        for node in nodes:
            node.spawn()
        for node in nodes:
            node.ready()
        wait_for("three nodes agreeing on one cluster", lambda: agreed(nodes, 3), 30)  # type: ignore[arg-type]

        def detail() -> str:
            return "\n".join(f"{n.node_id}: {replica_views(n, OFFSETS)}\n{n.tail(8)}"
                             for n in nodes)

        admin = AdminClient({"bootstrap.servers": nodes[0].kafka})
        admin.create_topics([NewTopic(TOPIC, PARTITIONS, 3)],
                            operation_timeout=20)[TOPIC].result(30)
        find_coordinator(nodes[0])  # creates the topic
        p = partition_for(GROUP, wait_for(f"{OFFSETS} replicated on every node",
                                          lambda: replicated(nodes), 30, detail))
        paused, term = wait_for("one leader of the group's partition",
                                lambda: one_leader(nodes, OFFSETS, p), 30, detail)
        commit(nodes[0].kafka, {q: 1 for q in range(PARTITIONS)})
        assert offsets_of(committed_at(paused)) == [(q, 1) for q in range(PARTITIONS)]

        assert paused.proc is not None
        os.killpg(paused.proc.pid, signal.SIGSTOP)
        rest = [n for n in nodes if n is not paused]
        new, new_term = wait_for("a new leader while the coordinator is paused",
                                 lambda: one_leader(rest, OFFSETS, p, term), 30, detail)
        commit(rest[0].kafka, {q: 2 for q in range(PARTITIONS)})
        os.killpg(paused.proc.pid, signal.SIGCONT)
        wait_for("the woken node following the new leader", lambda: (
            v if (v := replica_views(paused, OFFSETS).get(p)) is not None
            and v["leader"] == new.node_id and v["term"] >= new_term and not v["serves"]
            else None), 30, detail)

        stale = committed_at(paused)
        assert stale.error_code == ErrorCode.NOT_COORDINATOR, stale
        moved = find_coordinator(paused)
        assert (moved.error_code, moved.node_id) == (ErrorCode.NONE, new.node_id), moved
        assert offsets_of(committed_at(new)) == [(q, 2) for q in range(PARTITIONS)]
        assert '"event": "group_coordinator_resigned"' in paused.log_path.read_text()
    finally:
        if paused is not None and paused.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(paused.proc.pid, signal.SIGCONT)  # never leave a stopped group
        for node in nodes:
            node.stop()


@pytest.mark.timeout(180)
def test_kafka_python_and_aiokafka_groups_resume_through_another_node(tmp_path: Path) -> None:
    rpcs = [rpc for _kafka, rpc in plan_ports(3, 1, 0)]
    nodes = [KafkaNode(tmp_path / f"node-{i}", i, rpcs[i - 1], rpcs, 1) for i in (1, 2, 3)]
    try:
        for node in nodes:
            node.spawn()
        for node in nodes:
            node.ready()
        wait_for("three nodes agreeing on one cluster", lambda: agreed(nodes, 3), 30)  # type: ignore[arg-type]
        admin = AdminClient({"bootstrap.servers": nodes[0].kafka})
        topics = ["kp-topic", "ak-topic"]
        for future in admin.create_topics([NewTopic(t, 1, 3) for t in topics],
                                          operation_timeout=20).values():
            future.result(30)
        for t in topics:  # known (with a leader) on every node before any client asks for it
            wait_for(f"a leader of {t}/0", lambda t=t: one_leader(nodes, t, 0), 30)
        values = {t: [f"{t}-{i}".encode() for i in range(TOTAL)] for t in topics}
        producer = Producer({"bootstrap.servers": nodes[0].kafka, "acks": "all"})
        for t in topics:
            for v in values[t]:
                producer.produce(t, value=v, partition=0)
        assert producer.flush(30) == 0

        # Each takes half through node 2 and commits, then the rest through node 3 (the group's
        # coordinator is wherever its partition leads: found through FindCoordinator).
        assert _kp_take(nodes[1].kafka, "kp-topic", "kp-group", HALF) == values["kp-topic"][:HALF]
        assert _kp_take(nodes[2].kafka, "kp-topic", "kp-group", HALF) == values["kp-topic"][HALF:]

        async def aiokafka_halves() -> tuple[list[bytes], list[bytes]]:
            first = await _ak_take(nodes[1].kafka, "ak-topic", "ak-group", HALF)
            return first, await _ak_take(nodes[2].kafka, "ak-topic", "ak-group", HALF)

        first, second = asyncio.run(asyncio.wait_for(aiokafka_halves(), 90))
        assert (first, second) == (values["ak-topic"][:HALF], values["ak-topic"][HALF:])
    finally:
        for node in nodes:
            node.stop()


@pytest.mark.timeout(180)
def test_an_fsync_eio_on_the_coordinators_log_reopens_its_replica(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rpcs = [rpc for _kafka, rpc in plan_ports(3, 1, 0)]
    nodes = [KafkaNode(tmp_path / f"node-{i}", i, rpcs[i - 1], rpcs, 1) for i in (1, 2, 3)]
    controls = {n.node_id: tmp_path / f"faults-{n.node_id}.json" for n in nodes}
    consumer: Consumer | None = None
    try:
        for node in nodes:  # each node reads its own fault control file
            monkeypatch.setenv(ENV, str(controls[node.node_id]))
            node.spawn()
        for node in nodes:
            node.ready()
        wait_for("three nodes agreeing on one cluster", lambda: agreed(nodes, 3), 30)  # type: ignore[arg-type]

        def detail() -> str:
            return "\n".join(f"{n.node_id}: {replica_views(n, OFFSETS)}\n{n.tail(8)}"
                             for n in nodes)

        admin = AdminClient({"bootstrap.servers": nodes[0].kafka})
        admin.create_topics([NewTopic(TOPIC, PARTITIONS, 3)],
                            operation_timeout=20)[TOPIC].result(30)
        find_coordinator(nodes[0])  # creates the topic
        p = partition_for(GROUP, wait_for(f"{OFFSETS} replicated on every node",
                                          lambda: replicated(nodes), 30, detail))
        failing, _ = wait_for("one leader of the group's partition",
                              lambda: one_leader(nodes, OFFSETS, p), 30, detail)
        consumer = Consumer({"bootstrap.servers": nodes[0].kafka, "group.id": GROUP,
                             "enable.auto.commit": False})
        wait_for("a first commit", lambda: try_commit(consumer, 3) or None, 30, detail)
        assert failing.proc is not None
        pid = failing.proc.pid

        control = controls[failing.node_id]
        tmp = control.with_suffix(".tmp")  # written whole: the node reads it on each call
        tmp.write_text(json.dumps({"match": f"kafka/{OFFSETS}-{p}-",  # -<group id hex>/
                                   "fail": {"fdatasync": "EIO"}}))
        tmp.replace(control)
        try_commit(consumer, 4)  # its flush fails on the leader (a majority may still have it)
        wait_for("the replica's log failed", lambda: (
            "group_log_failed_reopening_on_next_use" in failing.log_path.read_text()) or None,
            30, detail)
        control.unlink()
        wait_for("commits working again", lambda: try_commit(consumer, 5) or None, 30, detail)
        leader, _ = wait_for("one leader", lambda: one_leader(nodes, OFFSETS, p), 30, detail)
        assert offsets_of(committed_at(leader)) == [(q, 5) for q in range(PARTITIONS)]
        # The failed replica was opened again in the same process and follows (or leads) its
        # group, caught up with the others.
        assert failing.proc is not None and failing.proc.poll() is None
        assert failing.proc.pid == pid
        wait_for("the reopened replica caught up", lambda: (
            True if len({(v["term"], v["leader"], v["log_end"]) for n in nodes
                         if (v := replica_views(n, OFFSETS).get(p)) is not None}) == 1
            and all(p in replica_views(n, OFFSETS) for n in nodes) else None), 30, detail)
    finally:
        if consumer is not None:
            consumer.close()
        for control in controls.values():
            control.unlink(missing_ok=True)
        for node in nodes:
            node.stop()
