"""Transactions (KIP-98, issue 18) with confluent-kafka's transactional producer against a real
broker: committed records reach a `read_committed` consumer, aborted ones never do (a
`read_uncommitted` one sees both); a second producer with the same `transactional.id` fences
the first (a zombie), whose open transaction is aborted and whose commit fails fatally; the
transaction APIs an admin asks (ListTransactions, DescribeTransactions) answer from the
coordinator."""

from __future__ import annotations

import time

import pytest
from broker_proc import BrokerProcess, create_topic
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from redshank.protocol.messages import describe_transactions as dt
from redshank.protocol.messages import find_coordinator as fc
from redshank.protocol.messages import list_transactions as lt
from redshank.tools.kafka_raw import RawConnection


def _producer(broker: BrokerProcess, txn_id: str) -> Producer:
    return Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": txn_id,
                     "linger.ms": 5, "log_level": 0})


def _consume_all(broker: BrokerProcess, topic: str, partitions: int, isolation: str,
                 timeout_s: float = 30.0) -> list[bytes]:
    """Every value of `topic` up to the end each partition has for `isolation` (the last
    stable offset for read_committed), in partition then offset order."""
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"{topic}-{isolation}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "isolation.level": isolation, "enable.partition.eof": True,
                         "log_level": 0})
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        got: dict[int, list[bytes]] = {p: [] for p in range(partitions)}
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while len(at_end) < partitions:
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

    read = _consume_all(broker, topic, 2, "read_committed")
    assert sorted(read) == sorted(committed)
    # Offsets order within a partition: the committed records as produced.
    assert [v for v in read if v in committed[0::2]] == committed[0::2]
    uncommitted = _consume_all(broker, topic, 2, "read_uncommitted")
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

    assert sorted(_consume_all(broker, topic, 2, "read_committed")) == [b"next-0", b"next-1"]


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
