"""Node liveness and replica clean-up across real node processes on 127.0.0.1 (issue 14's known
gaps), on one 3-node cluster for the module: Metadata v12 from the live nodes lists a SIGKILLed
or SIGSTOPped node's replicas in `offline_replicas` and leaves them out of the ISR within a few
seconds (`redshank cluster health` then counts every partition under-replicated), and takes
them back once the node returns and catches up; a topic deleted while a node
was down leaves no replica directory on that node after it rejoins, its replicas never opened
again; a node restarted from a controller snapshot taken before a topic's deletion (the delete
in its log after it) never opens that topic's replicas again."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cluster_load import FixedNode, cluster, create_topic
from confluent_kafka.admin import AdminClient, ConfigResource
from poison import RawClient
from test_cluster_controller import agreed, wait_for

from redshank.protocol.messages import metadata as md
from redshank.tools.cli import main

TOPIC = "alive"
PARTITIONS = 3  # with preferred leaders spread, every node leads one and follows two
SNAPSHOT_EVERY = 64  # ControllerHostConfig.snapshot_every


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[FixedNode]]:
    with cluster(tmp_path_factory.mktemp("liveness")) as started:
        create_topic(started, TOPIC, PARTITIONS)
        yield started


def _metadata(node: FixedNode, topic: str) -> list[Any] | None:
    """The topic's partitions (v12) as `node` answers, None if it cannot now."""
    client = RawClient(node.kafka, timeout=5)
    try:
        resp = client.call(md.MetadataRequest(topics=(md.MetadataRequestTopic(name=topic),),
                                              allow_auto_topic_creation=False), 12,
                           md.MetadataResponse)
    except OSError:
        return None
    finally:
        client.close()
    for t in resp.topics:
        if t.name == topic and t.error_code == 0 and len(t.partitions) == PARTITIONS:
            return sorted(t.partitions, key=lambda p: p.partition_index)
    return None


def _shows(node: FixedNode, down: int | None) -> list[Any] | None:
    """Every partition as `node` says once it shows node `down` offline and out of the ISR (None:
    every replica online and in sync), with a leader that is not `down`."""
    parts = _metadata(node, TOPIC)
    if parts is None:
        return None
    for p in parts:
        want_offline = () if down is None else (down,)
        want_isr = tuple(sorted(r for r in p.replica_nodes if r != down))
        if (tuple(p.offline_replicas) != want_offline or tuple(sorted(p.isr_nodes)) != want_isr
                or p.leader_id <= 0 or p.leader_id == down):
            return None
    return parts


def _detail(nodes: list[FixedNode]) -> Any:
    return lambda: " | ".join(f"node {n.node_id}: {_metadata(n, TOPIC) if n.proc else 'down'}"
                              for n in nodes)


def _a_leader(nodes: list[FixedNode]) -> FixedNode:
    """A node that leads a partition now (so its replicas' views go stale with it), node 1
    preferred as the one asked."""
    parts = wait_for("the partitions' leaders", lambda: _shows(nodes[0], None), 30)
    leaders = {p.leader_id for p in parts}
    return next(n for n in reversed(nodes) if n.node_id in leaders)


def _restart(node: FixedNode, nodes: list[FixedNode]) -> None:
    node.spawn()
    node.ready()
    wait_for("the cluster agreeing again", lambda: agreed(nodes, len(nodes)),  # type: ignore
             30)


def _health(capsys: pytest.CaptureFixture[str], nodes: list[FixedNode]) -> dict[str, Any]:
    """`redshank cluster health --json` against the live nodes."""
    capsys.readouterr()
    code = main(["cluster", "health", "--json", "-X", ",".join(n.kafka for n in nodes if n.proc)])
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    report: dict[str, Any] = json.loads(out)
    return report


def test_a_dead_node_is_offline_and_out_of_the_isr(nodes: list[FixedNode],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    detail = _detail(nodes)
    for n in nodes:
        wait_for(f"node {n.node_id}: all in sync", lambda n=n: _shows(n, None), 30, detail)
    victim = _a_leader(nodes)
    rest = [n for n in nodes if n is not victim]
    victim.kill_group()
    started = time.monotonic()
    for n in rest:
        wait_for(f"node {n.node_id} shows node {victim.node_id} offline",
                 lambda n=n: _shows(n, victim.node_id), 15, detail)
    took = time.monotonic() - started
    # The health command reads the same Metadata: every partition of the topic under-replicated
    # (the ones the dead node led included).
    report = _health(capsys, nodes)
    assert not report["healthy"]
    assert {f"{TOPIC}/{p}" for p in range(PARTITIONS)} <= set(
        report["under_replicated_partitions"]), report
    with capsys.disabled():
        print(f"killed node offline in Metadata after {took:.1f} s")
    _restart(victim, nodes)
    for n in nodes:
        wait_for(f"node {n.node_id}: all back in sync", lambda n=n: _shows(n, None), 60, detail)


def test_a_paused_node_is_offline_and_out_of_the_isr(nodes: list[FixedNode]) -> None:
    detail = _detail(nodes)
    for n in nodes:
        wait_for(f"node {n.node_id}: all in sync", lambda n=n: _shows(n, None), 30, detail)
    paused = _a_leader(nodes)
    assert paused.proc is not None
    rest = [n for n in nodes if n is not paused]
    os.killpg(paused.pgid, signal.SIGSTOP)
    started = time.monotonic()
    try:
        for n in rest:
            wait_for(f"node {n.node_id} shows node {paused.node_id} offline",
                     lambda n=n: _shows(n, paused.node_id), 15, detail)
        print(f"paused node offline in Metadata after {time.monotonic() - started:.1f} s")
    finally:
        os.killpg(paused.pgid, signal.SIGCONT)
    for n in nodes:
        wait_for(f"node {n.node_id}: all back in sync", lambda n=n: _shows(n, None), 60, detail)


def _dirs(node: FixedNode, topic: str) -> list[str]:
    try:
        names = os.listdir(node.data_dir / "kafka")
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.startswith(f"{topic}-"))


def _delete(nodes: list[FixedNode], topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": ",".join(n.kafka for n in nodes if n.proc)})
    admin.delete_topics([topic], operation_timeout=20)[topic].result(30)


def test_a_topic_deleted_while_a_node_was_down_leaves_nothing_there(
        nodes: list[FixedNode]) -> None:
    create_topic(nodes, "gone", 2)
    victim = nodes[2]
    wait_for("gone's replicas on the victim", lambda: len(_dirs(victim, "gone")) == 2 or None, 30)
    victim.kill_group()
    _delete(nodes, "gone")
    mark = os.path.getsize(victim.log_path)
    _restart(victim, nodes)
    # Rejoined and caught up (the agreed view includes its applied count): its replicas of the
    # deleted topic are gone, and were never opened again.
    wait_for("gone's replica dirs removed on the rejoined node",
             lambda: not _dirs(victim, "gone") or None, 15, lambda: str(_dirs(victim, "gone")))
    assert not _opened(victim, mark, "gone"), _opened(victim, mark, "gone")


def _opened(node: FixedNode, mark: int, topic: str) -> list[str]:
    """The node's `replica_opened` log lines of `topic` after byte `mark` of its log."""
    return [line for line in _log_since(node, mark).splitlines()
            if "replica_opened" in line and f'"ntp": "{topic}/' in line]


def _applied(node: FixedNode) -> int:
    view = node.view()
    assert view is not None
    return int(view["applied"])


def _log_since(node: FixedNode, offset: int) -> str:
    with open(node.log_path, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def test_a_restart_from_an_older_snapshot_never_opens_a_deleted_topic(
        nodes: list[FixedNode]) -> None:
    create_topic(nodes, "old", 1)
    node = nodes[0]
    wait_for("old's replica here", lambda: _dirs(node, "old") or None, 30)
    # Commands (config changes of a small topic) until a snapshot is taken after "old" exists,
    # so the delete lands in the log after the snapshot.
    create_topic(nodes, "pad", 1, rf=1)
    admin = AdminClient({"bootstrap.servers": node.kafka})
    start = _applied(node)
    i = 0
    while _applied(node) // SNAPSHOT_EVERY == start // SNAPSHOT_EVERY or \
            _applied(node) % SNAPSHOT_EVERY > SNAPSHOT_EVERY - 4:
        resource = ConfigResource("topic", "pad", set_config={"retention.ms": str(3600000 + i)})
        admin.alter_configs([resource])[resource].result(30)
        i += 1
        assert i < 3 * SNAPSHOT_EVERY, "no snapshot taken"
    before = _applied(node)
    _delete(nodes, "old")
    wait_for("the delete applied on every node",
             lambda: all(_applied(n) > before for n in nodes) or None, 15)
    assert _applied(node) // SNAPSHOT_EVERY == before // SNAPSHOT_EVERY  # no newer snapshot
    wait_for("old's replica dir removed", lambda: not _dirs(node, "old") or None, 15)
    node.stop()
    mark = os.path.getsize(node.log_path)
    _restart(node, nodes)
    wait_for("node 1 caught up", lambda: _applied(node) > before or None, 30)
    assert not _opened(node, mark, "old"), _opened(node, mark, "old")
    assert not _dirs(node, "old")


def test_an_admin_request_just_after_the_controller_leader_died_is_served(
        nodes: list[FixedNode]) -> None:
    """Metadata names the node asked as the controller (it proposes to the leader for the
    client, as KRaft brokers forward): an admin client that asks while the live nodes still
    know a dead leader is served once a new one is elected, instead of waiting on a dead node
    until its next metadata refresh (five minutes in librdkafka)."""
    view = wait_for("the cluster agreeing", lambda: agreed(nodes, len(nodes)), 30)  # type: ignore
    leader = next(n for n in nodes if n.node_id == view["leader"])
    create_topic(nodes, "late", 1)
    leader.kill_group()
    try:
        started = time.monotonic()
        _delete(nodes, "late")
        took = time.monotonic() - started
        print(f"topic deleted {took:.1f} s after the controller leader was killed")
    finally:
        _restart(leader, nodes)
    wait_for("late's replica dirs removed on every node",
             lambda: all(not _dirs(n, "late") for n in nodes) or None, 15)
