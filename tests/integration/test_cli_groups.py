"""`redshank group ...` and `redshank cluster ...` against one real broker (the session's shared
broker), run in-process through `cli.main` (exit code, stdout, stderr as a user sees them):
a confluent-kafka consumer in a group consumes part of a topic and commits, and `group describe`
shows its member, committed offsets and lag; `seek` is refused while the consumer is a member
and moves the committed offsets once it has left; `offset-delete` and `delete`; `cluster info`,
`health`, `config get` and `partitions` on a healthy node; lag counts only up to the last
stable offset while a transaction is open; an unknown group exits 4 and an unreachable broker
exits 3, each with one line on stderr."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from broker_proc import BrokerProcess, free_port
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from redshank.tools.cli import main

TOPIC = "cli-lag"
GROUP = "cli-group"
PER_PARTITION = 10


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    code, out, err = run(capsys, *args, "--json")
    assert code == 0, (args, code, err)
    return json.loads(out)


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("redshank: "), err
    return lines[0]


def committed_of(described: Any) -> dict[int, int | None]:
    [g] = described
    return {p["partition"]: p["committed"] for p in g["partitions"] if p["topic"] == TOPIC}


@pytest.mark.timeout(90)
def test_group_lag_seek_offset_delete_and_delete(broker: BrokerProcess,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    b = broker.bootstrap
    admin = AdminClient({"bootstrap.servers": b})  # kept alive until its future is done
    admin.create_topics([NewTopic(TOPIC, 2, 1)])[TOPIC].result(20)
    producer = Producer({"bootstrap.servers": b})
    for p in (0, 1):
        for i in range(PER_PARTITION):
            producer.produce(TOPIC, value=f"v{p}-{i}".encode(), partition=p)
    assert producer.flush(20) == 0

    consumer = Consumer({"bootstrap.servers": b, "group.id": GROUP, "client.id": "cli-test",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        consumer.subscribe([TOPIC])
        # Part of the topic: about 6 records, committed exactly where each partition got to.
        position: dict[int, int] = {}
        deadline = time.monotonic() + 30
        while sum(position.values()) < 6 and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                position[msg.partition()] = msg.offset() + 1
        assert sum(position.values()) >= 6, position
        consumer.commit(offsets=[TopicPartition(TOPIC, p, o) for p, o in position.items()],
                        asynchronous=False)

        [g] = run_json(capsys, "group", "describe", GROUP, "-X", b)
        assert g["state"] == "Stable" and g["protocol_type"] == "consumer"
        [member] = g["members"]
        assert member["client_id"] == "cli-test"
        assert sorted((a["topic"], a["partition"]) for a in member["assignments"]) == [
            (TOPIC, 0), (TOPIC, 1)]
        rows = {p["partition"]: p for p in g["partitions"]}
        for p, row in rows.items():
            assert row["log_end"] == PER_PARTITION
            assert row["committed"] == position.get(p)
            assert row["lag"] == (PER_PARTITION - position[p] if p in position else None)
        assert g["total_lag"] == sum(PER_PARTITION - o for o in position.values())
        code, out, _err = run(capsys, "group", "describe", GROUP, "-X", b)
        assert code == 0 and f"TOTAL-LAG    {g['total_lag']}" in out

        listed = run_json(capsys, "group", "list", "-X", b)
        assert {"group": GROUP, "state": "Stable", "protocol_type": "consumer"}.items() <= next(
            r for r in listed if r["group"] == GROUP).items()

        # A member is there: Kafka refuses to move the group's offsets, and says why.
        code, _out, err = run(capsys, "group", "seek", GROUP, "--to", "start", "-X", b)
        assert code == 1 and "UNKNOWN_MEMBER_ID" in one_line_error(err)
    finally:
        consumer.close()  # LeaveGroup: the group is empty from here

    [g] = run_json(capsys, "group", "describe", GROUP, "-X", b)
    assert g["state"] == "Empty" and g["members"] == []
    seeked = run_json(capsys, "group", "seek", GROUP, "--to", "start", "--topics", TOPIC,
                      "-X", b)
    assert {(r["partition"], r["after"]) for r in seeked} == {(0, 0), (1, 0)}
    assert committed_of(run_json(capsys, "group", "describe", GROUP, "-X", b)) == {0: 0, 1: 0}
    run_json(capsys, "group", "seek", GROUP, "--to", "4", "-X", b)
    [g] = run_json(capsys, "group", "describe", GROUP, "-X", b)
    assert committed_of([g]) == {0: 4, 1: 4} and g["total_lag"] == 2 * (PER_PARTITION - 4)
    run_json(capsys, "group", "seek", GROUP, "--to", "end", "-X", b)
    assert committed_of(run_json(capsys, "group", "describe", GROUP, "-X", b)) == {
        0: PER_PARTITION, 1: PER_PARTITION}

    deleted = run_json(capsys, "group", "offset-delete", GROUP, "--topic", TOPIC,
                       "--partitions", "0", "-X", b)
    assert deleted == [{"topic": TOPIC, "partition": 0, "error": None}]
    assert committed_of(run_json(capsys, "group", "describe", GROUP, "-X", b)) == {
        1: PER_PARTITION}

    assert run_json(capsys, "group", "delete", GROUP, "-X", b) == {
        "deleted": [GROUP], "failed": []}
    assert GROUP not in {r["group"] for r in run_json(capsys, "group", "list", "-X", b)}
    code, out, err = run(capsys, "group", "describe", GROUP, "-X", b)
    assert code == 4 and out == "" and "no such group" in one_line_error(err)


@pytest.mark.timeout(60)
def test_group_lag_counts_only_up_to_the_last_stable_offset(
        broker: BrokerProcess, capsys: pytest.CaptureFixture[str]) -> None:
    # Issue 18: lag is what a read_committed consumer can reach. 5 plain records, the group
    # committed at 2, then a transaction holds 3 records open: the log end is 8, the last stable
    # offset 5, the lag 3. After the commit (and its marker at 8) both are 9 and the lag 7.
    b = broker.bootstrap
    topic, group_id = "cli-lag-lso", "cli-lag-lso-group"
    admin = AdminClient({"bootstrap.servers": b})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(20)
    plain = Producer({"bootstrap.servers": b})
    for i in range(5):
        plain.produce(topic, value=f"p{i}".encode(), partition=0)
    assert plain.flush(20) == 0
    admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(
        group_id, [TopicPartition(topic, 0, 2)])])[group_id].result(20)
    txn = Producer({"bootstrap.servers": b, "transactional.id": "cli-lag-lso-txn",
                    "log_level": 0})
    txn.init_transactions(30)
    txn.begin_transaction()
    for i in range(3):
        txn.produce(topic, value=f"t{i}".encode(), partition=0)
    assert txn.flush(20) == 0

    [g] = run_json(capsys, "group", "describe", group_id, "-X", b)
    [row] = g["partitions"]
    assert (row["committed"], row["log_end"], row["last_stable"], row["lag"]) == (2, 8, 5, 3)
    assert g["total_lag"] == 3
    code, out, _err = run(capsys, "group", "describe", group_id, "-X", b)
    assert code == 0 and "LAST-STABLE" in out and "TOTAL-LAG    3" in out

    txn.commit_transaction(30)
    deadline = time.monotonic() + 20
    while True:  # EndTxn answers before the marker is written; the LSO follows it
        [g] = run_json(capsys, "group", "describe", group_id, "-X", b)
        [row] = g["partitions"]
        if row["last_stable"] == 9:
            break
        assert row["last_stable"] == 5 and time.monotonic() < deadline, row
        time.sleep(0.05)
    assert (row["log_end"], row["lag"], g["total_lag"]) == (9, 7, 7)


@pytest.mark.timeout(60)
def test_cluster_info_health_config_partitions_on_one_node(
        broker: BrokerProcess, capsys: pytest.CaptureFixture[str]) -> None:
    b = broker.bootstrap
    topic = "cli-parts"
    admin = AdminClient({"bootstrap.servers": b})
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(20)
    metadata = admin.list_topics(timeout=10)
    [node] = metadata.brokers.values()

    info = run_json(capsys, "cluster", "info", "-X", b)
    assert info["cluster_id"] == metadata.cluster_id and info["controller"] == node.id
    assert info["brokers"] == [{"id": node.id, "host": node.host, "port": node.port,
                                "rack": None}]

    health = run_json(capsys, "cluster", "health", "-X", b)
    assert health["healthy"] is True and health["brokers"] == [node.id], health
    code, out, _err = run(capsys, "cluster", "health", "-X", b)
    assert code == 0 and "HEALTHY" in out and "yes" in out

    configs = run_json(capsys, "cluster", "config", "get", "-X", b)
    # Whatever DescribeConfigs lists for the broker, each with Kafka's name of its source.
    assert isinstance(configs, list)
    assert all(isinstance(c["name"], str) and not c["source"].isdigit() for c in configs)

    rows = run_json(capsys, "cluster", "partitions", "--topic", topic, "-X", b)
    assert [(r["topic"], r["partition"], r["leader"], r["replicas"], r["isr"], r["state"])
            for r in rows] == [(topic, p, node.id, [node.id], [node.id], "ok") for p in range(3)]
    code, _out, err = run(capsys, "cluster", "partitions", "--topic", "cli-no-such", "-X", b)
    assert code == 4 and "no such topic" in one_line_error(err)


@pytest.mark.timeout(60)
def test_unreachable_broker_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    nobody = f"127.0.0.1:{free_port()}"
    for args in (("group", "list"), ("cluster", "info"), ("cluster", "health")):
        code, out, err = run(capsys, *args, "-X", nobody, "--timeout", "1")
        assert code == 3 and out == "", (args, code, out)
        assert "cannot reach a broker" in one_line_error(err)
