"""Transactions (KIP-98, issue 18) with confluent-kafka's transactional producer against a real
broker: committed records reach a `read_committed` consumer, aborted ones never do (a
`read_uncommitted` one sees both); a second producer with the same `transactional.id` fences
the first (a zombie), whose open transaction is aborted and whose commit fails fatally; the
transaction APIs an admin asks (ListTransactions, DescribeTransactions) answer from the
coordinator."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from broker_proc import BrokerProcess, create_topic
from cluster_load import cluster
from cluster_load import create_topic as create_cluster_topic
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from test_cluster_controller import wait_for
from test_cluster_groups import one_leader

from redshank.protocol.messages import describe_transactions as dt
from redshank.protocol.messages import find_coordinator as fc
from redshank.protocol.messages import list_transactions as lt
from redshank.tools.kafka_raw import RawConnection


def _producer(broker: BrokerProcess | str, txn_id: str) -> Producer:
    bootstrap = broker if isinstance(broker, str) else broker.bootstrap
    return Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id,
                     "linger.ms": 5, "log_level": 0})


def _consume_all(bootstrap: str, topic: str, partitions: int, isolation: str, expect: int,
                 timeout_s: float = 30.0) -> list[bytes]:
    """Every value of `topic` up to the end each partition has for `isolation` (the last
    stable offset for read_committed), in partition then offset order, once there are at least
    `expect` (a commit returns once the coordinator decided it; its markers, which move the
    last stable offset, land just after)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-{isolation}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "isolation.level": isolation, "enable.partition.eof": True,
                         "log_level": 0})
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        got: dict[int, list[bytes]] = {p: [] for p in range(partitions)}
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while len(at_end) < partitions or sum(map(len, got.values())) < expect:
            assert time.monotonic() < deadline, f"not at the end of {topic}: {got}"
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                assert err.code() == KafkaError._PARTITION_EOF, err
                at_end.add(msg.partition())
                continue
            got[msg.partition()].append(msg.value())
            at_end.discard(msg.partition())
        return [v for p in range(partitions) for v in got[p]]
    finally:
        consumer.close()


def _send(producer: Producer, topic: str, values: list[bytes]) -> None:
    for i, v in enumerate(values):
        producer.produce(topic, v, partition=i % 2)
    producer.flush(30)


@pytest.mark.timeout(120)
def test_committed_records_reach_read_committed_and_aborted_ones_never(
        broker: BrokerProcess) -> None:
    topic = "txn-flow"
    create_topic(broker.bootstrap, topic, 2)
    producer = _producer(broker, "txn-flow-id")
    producer.init_transactions(30)
    committed = [f"c{i}".encode() for i in range(6)]
    aborted = [f"a{i}".encode() for i in range(4)]
    producer.begin_transaction()
    _send(producer, topic, committed[:4])
    producer.commit_transaction(30)
    producer.begin_transaction()
    _send(producer, topic, aborted)
    producer.abort_transaction(30)
    producer.begin_transaction()
    _send(producer, topic, committed[4:])
    producer.commit_transaction(30)

    read = _consume_all(broker.bootstrap, topic, 2, "read_committed", len(committed))
    assert sorted(read) == sorted(committed)
    # Offsets order within a partition: the committed records as produced.
    assert [v for v in read if v in committed[0::2]] == committed[0::2]
    uncommitted = _consume_all(broker.bootstrap, topic, 2, "read_uncommitted",
                               len(committed) + len(aborted))
    assert sorted(uncommitted) == sorted(committed + aborted)


@pytest.mark.timeout(120)
def test_a_second_producer_with_the_same_id_fences_the_zombie(broker: BrokerProcess) -> None:
    topic = "txn-zombie"
    create_topic(broker.bootstrap, topic, 2)
    zombie = _producer(broker, "txn-zombie-id")
    zombie.init_transactions(30)
    zombie.begin_transaction()
    _send(zombie, topic, [b"zombie-0", b"zombie-1"])

    successor = _producer(broker, "txn-zombie-id")
    successor.init_transactions(30)  # bumps the epoch, aborts the zombie's open transaction
    successor.begin_transaction()
    _send(successor, topic, [b"next-0", b"next-1"])
    successor.commit_transaction(30)

    with pytest.raises(KafkaException) as raised:
        zombie.commit_transaction(30)
    error = raised.value.args[0]
    assert error.fatal(), error
    assert error.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                            KafkaError.INVALID_PRODUCER_EPOCH), error

    read = _consume_all(broker.bootstrap, topic, 2, "read_committed", 2)
    assert sorted(read) == [b"next-0", b"next-1"]


@pytest.mark.timeout(60)
def test_list_and_describe_transactions_answer_from_the_coordinator(
        broker: BrokerProcess) -> None:
    topic = "txn-admin"
    create_topic(broker.bootstrap, topic, 2)
    producer = _producer(broker, "txn-admin-id")
    producer.init_transactions(30)
    producer.begin_transaction()
    _send(producer, topic, [b"open-0", b"open-1"])
    with RawConnection(broker.bootstrap, 10) as conn:
        found = conn.call(fc.FindCoordinatorRequest(key="txn-admin-id", key_type=1), 3,
                          fc.FindCoordinatorResponse)
        assert found.error_code == 0 and found.port == int(broker.bootstrap.rsplit(":")[1])
        listed = conn.call(lt.ListTransactionsRequest(), 1, lt.ListTransactionsResponse)
        assert listed.error_code == 0
        states = {t.transactional_id: t.transaction_state for t in listed.transaction_states}
        assert states.get("txn-admin-id") == "Ongoing", states
        described = conn.call(dt.DescribeTransactionsRequest(("txn-admin-id", "no-such-id")),
                              0, dt.DescribeTransactionsResponse)
        ours, unknown = described.transaction_states
        assert (ours.error_code, ours.transaction_state) == (0, "Ongoing")
        assert {(t.topic, p) for t in ours.topics for p in t.partitions} == {
            (topic, 0), (topic, 1)}
        assert unknown.error_code == 105  # TRANSACTIONAL_ID_NOT_FOUND
    producer.commit_transaction(30)
    # EndTxn is answered once PrepareCommit is durable; CompleteCommit follows the markers.
    deadline = time.monotonic() + 20
    with RawConnection(broker.bootstrap, 10) as conn:
        while True:
            described = conn.call(dt.DescribeTransactionsRequest(("txn-admin-id",)), 0,
                                  dt.DescribeTransactionsResponse)
            state = described.transaction_states[0].transaction_state
            if state == "CompleteCommit":
                break
            assert state == "PrepareCommit" and time.monotonic() < deadline, state
            time.sleep(0.05)


@pytest.mark.timeout(120)
def test_offsets_sent_to_a_transaction_commit_with_it(broker: BrokerProcess) -> None:
    """Consume-transform-produce: the group's offsets commit with the transaction's output;
    an aborted step leaves neither output nor offsets."""
    source, sink, group = "txn-ctp-in", "txn-ctp-out", "txn-ctp-group"
    create_topic(broker.bootstrap, source, 1)
    create_topic(broker.bootstrap, sink, 2)
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(6):
        plain.produce(source, f"in-{i}".encode(), partition=0)
    assert plain.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "isolation.level": "read_committed", "log_level": 0})
    producer = _producer(broker, "txn-ctp-id")
    try:
        producer.init_transactions(30)
        consumer.assign([TopicPartition(source, 0, 0)])

        def step(n: int, commit: bool) -> None:
            taken: list[bytes] = []
            deadline = time.monotonic() + 30
            while len(taken) < n:
                assert time.monotonic() < deadline, taken
                msg = consumer.poll(0.5)
                if msg is not None and msg.error() is None:
                    taken.append(msg.value())
            producer.begin_transaction()
            _send(producer, sink, [v.replace(b"in", b"out") for v in taken])
            producer.send_offsets_to_transaction(
                consumer.position([TopicPartition(source, 0)]),
                consumer.consumer_group_metadata(), 30)
            if commit:
                producer.commit_transaction(30)
            else:
                producer.abort_transaction(30)

        step(4, commit=True)
        step(2, commit=False)
        committed = consumer.committed([TopicPartition(source, 0)], 30)
        assert [tp.offset for tp in committed] == [4]
        assert sorted(_consume_all(broker.bootstrap, sink, 2, "read_committed", 4)) == [
            f"out-{i}".encode() for i in range(4)]
    finally:
        consumer.close()


@pytest.mark.timeout(180)
def test_markers_reach_partitions_led_by_other_nodes(tmp_path: Path) -> None:
    """Three nodes: the topic's partitions lead on several of them, so the coordinator writes
    some markers in-process and the others over the wire to their leaders."""
    topic, partitions = "txn-cluster", 3
    with cluster(tmp_path) as nodes:
        create_cluster_topic(nodes, topic, partitions)
        leaders = {p: wait_for(f"a leader of {topic}/{p}",
                               lambda p=p: one_leader(nodes, topic, p), 30)[0].node_id
                   for p in range(partitions)}
        # Leaders on two nodes or more: whichever node coordinates, some partition's leader
        # is another node.
        assert len(set(leaders.values())) > 1, leaders
        producer = _producer(nodes[0].kafka, "txn-cluster-id")
        producer.init_transactions(60)
        producer.begin_transaction()
        for p in range(partitions):
            producer.produce(topic, f"kept-{p}".encode(), partition=p)
        producer.commit_transaction(60)
        producer.begin_transaction()
        for p in range(partitions):
            producer.produce(topic, f"dropped-{p}".encode(), partition=p)
        producer.abort_transaction(60)
        # A last transaction: read_committed reaches its records only past the aborted ones,
        # once every partition has the abort's marker as well as the commits'.
        producer.begin_transaction()
        for p in range(partitions):
            producer.produce(topic, f"last-{p}".encode(), partition=p)
        producer.commit_transaction(60)
        got = _consume_all(nodes[1].kafka, topic, partitions, "read_committed",
                           2 * partitions, 60)
        assert got == [v.encode() for p in range(partitions)
                       for v in (f"kept-{p}", f"last-{p}")], leaders


@pytest.mark.timeout(120)
def test_a_transaction_left_open_by_a_restart_is_aborted_after_its_timeout(
        tmp_path: Path) -> None:
    topic = "txn-restart"
    proc = BrokerProcess(tmp_path / "data", cores=2)
    proc.start()
    try:
        create_topic(proc.bootstrap, topic, 1)
        opened = Producer({"bootstrap.servers": proc.bootstrap, "log_level": 0,
                           "transactional.id": "txn-restart-open",
                           "transaction.timeout.ms": 2000})
        opened.init_transactions(30)
        opened.begin_transaction()
        opened.produce(topic, b"never-committed", partition=0)
        assert opened.flush(30) == 0
        proc.stop()
        proc.start()  # on a new port: the clients below are new ones
        plain = Producer({"bootstrap.servers": proc.bootstrap, "log_level": 0})
        plain.produce(topic, b"after", partition=0)
        assert plain.flush(30) == 0
        # Held back by the open transaction until the coordinator aborts it (its timeout, then
        # Kafka's 10 s check for timed-out transactions).
        read = _consume_all(proc.bootstrap, topic, 1, "read_committed", 1, 60)
        assert read == [b"after"]
    finally:
        proc.stop()
