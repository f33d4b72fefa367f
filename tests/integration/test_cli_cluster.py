"""`redshank cluster partitions|health|info|transfer-leadership` on a 3-node cluster of real
processes (one cluster for the module), run in-process through `cli.main`: a topic with
replication factor 3 shows three replicas and a full ISR on every partition, the cluster is
healthy, and `transfer-leadership` moves a partition's leader to the named broker (checked with
confluent-kafka's own metadata), the same command again says it already leads, and a broker
that is not a replica is refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster_load import FixedNode, bootstrap, cluster, create_topic
from confluent_kafka.admin import AdminClient
from test_cluster_controller import wait_for

from redshank.tools.cli import main

TOPIC = "cli-moves"


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[FixedNode]]:
    with cluster(Path(tmp_path_factory.mktemp("cli-cluster"))) as started:
        create_topic(started, TOPIC, 3, 3)
        yield started


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    code, out, err = run(capsys, *args, "--json")
    assert code == 0, (args, code, err)
    return json.loads(out)


def leader(servers: str, partition: int) -> int:
    """The partition's leader as confluent-kafka's metadata names it."""
    admin = AdminClient({"bootstrap.servers": servers})
    return int(admin.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions[partition].leader)


@pytest.mark.timeout(120)
def test_partitions_health_and_transfer_leadership(nodes: list[FixedNode],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    servers = bootstrap(nodes)
    ids = sorted(n.node_id for n in nodes)

    def in_sync() -> list[dict[str, Any]] | None:
        # Exit 4 until the node asked has learned of the new topic.
        code, out, err = run(capsys, "cluster", "partitions", "--topic", TOPIC, "-X", servers,
                             "--json")
        assert code in (0, 4), err
        rows: list[dict[str, Any]] = json.loads(out) if code == 0 else []
        return rows if rows and all(r["state"] == "ok" for r in rows) else None

    rows = wait_for("every partition led with a full ISR", in_sync, 30)
    assert [r["partition"] for r in rows] == [0, 1, 2]
    for r in rows:
        assert sorted(r["replicas"]) == ids and sorted(r["isr"]) == ids, r
        assert r["leader"] in ids
    info = run_json(capsys, "cluster", "info", "-X", servers)
    assert [b["id"] for b in info["brokers"]] == ids and info["controller"] in ids
    health = run_json(capsys, "cluster", "health", "-X", servers)
    assert health["healthy"] is True and health["brokers"] == ids, health

    before = leader(servers, 0)
    target = next(i for i in ids if i != before)
    code, out, err = run(capsys, "cluster", "transfer-leadership", TOPIC, "0", "--to",
                         str(target), "-X", servers)
    assert code == 0, err
    assert f"leader {before} -> {target}" in out
    # The command returned once the node it asked named the new leader; every node's
    # metadata (confluent-kafka asks any of them) follows within moments.
    wait_for(f"every node naming {target} the leader", lambda: all(
        leader(n.kafka, 0) == target for n in nodes) or None, 10)
    [row] = [r for r in run_json(capsys, "cluster", "partitions", "--topic", TOPIC, "-X",
                                 servers) if r["partition"] == 0]
    assert row["leader"] == target and row["replicas"][0] == target, row

    code, out, _err = run(capsys, "cluster", "transfer-leadership", TOPIC, "0", "--to",
                          str(target), "-X", servers)
    assert code == 0 and "already led by" in out
    code, out, err = run(capsys, "cluster", "transfer-leadership", TOPIC, "0", "--to", "99",
                         "-X", servers)
    assert code == 1 and out == "" and "not one of its replicas" in err


@pytest.mark.timeout(90)
def test_health_is_unhealthy_with_a_node_down(nodes: list[FixedNode],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    # Runs last in the module: the node stays down.
    servers = bootstrap(nodes)
    victim = nodes[-1]
    victim.kill_group()

    def unhealthy() -> dict[str, Any] | None:
        code, out, err = run(capsys, "cluster", "health", "--json", "-X", servers)
        assert code in (0, 1), err
        report: dict[str, Any] = json.loads(out)
        assert report["healthy"] is (code == 0)
        return report if report["under_replicated_partitions"] else None

    report = wait_for("partitions under-replicated with a node down", unhealthy, 30)
    assert report["healthy"] is False
    assert victim.node_id in {u["id"] for u in report["unreachable_brokers"]} | set(
        report["down_brokers"]), report
    rows = run_json(capsys, "cluster", "partitions", "--topic", TOPIC, "-X", servers)
    shrunk = [r for r in rows if r["state"] == "under-replicated"]
    assert all(victim.node_id not in r["isr"] and victim.node_id in r["replicas"]
               for r in shrunk), rows
