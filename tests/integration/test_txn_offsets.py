"""TxnOffsetCommit (KIP-98) on a real broker. Raw requests on one connection: the offsets of an
open transaction are written (NONE) but not shown: OffsetFetch v6 answers the last committed
offset, v7 with require_stable UNSTABLE_OFFSET_COMMIT (KIP-447); a partition of an unknown topic
answers UNKNOWN_TOPIC_OR_PARTITION. With the transaction coordinator (issue 18's other
parts): confluent-kafka's consume-transform-produce whose broker is killed (-9) with offsets
sent to an open transaction: after the restart they replay pending, and the next producer of
the transactional id aborts that transaction, which drops them; the committed ones stay."""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path
from typing import Any

import pytest
from broker_proc import BrokerProcess, create_topic, recv_exact
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from redshank.protocol import messages as m
from redshank.protocol.api_versions import ApiKey, request_header_version, response_header_version
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages.request_header import RequestHeader
from redshank.protocol.messages.response_header import ResponseHeader

TIMEOUT = 20.0
GROUP = "txn-offsets-group"


def _ask(sock: socket.socket, key: ApiKey, version: int, request: Any, corr: int) -> Any:
    body = RequestHeader(key, version, corr, "txn-offsets-test").encode(
        request_header_version(key, version)) + request.encode(version)
    sock.sendall(struct.pack(">i", len(body)) + body)
    frame = recv_exact(sock, struct.unpack(">i", recv_exact(sock, 4))[0])
    head, pos = ResponseHeader.decode_from(frame, 0, response_header_version(key, version))
    assert head.correlation_id == corr
    return m.RESPONSES[key].decode(frame[pos:], version)  # type: ignore[attr-defined]


def test_txn_offset_commit_is_pending_and_unstable(broker: BrokerProcess) -> None:
    topic = "txn-offsets"
    create_topic(broker.bootstrap, topic, 2)
    host, port = broker.bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
        sock.settimeout(TIMEOUT)
        oc = m.offset_commit
        committed = _ask(sock, ApiKey.OFFSET_COMMIT, 8, oc.OffsetCommitRequest(
            group_id=GROUP, generation_id_or_member_epoch=-1, topics=(oc.OffsetCommitRequestTopic(
                topic, (oc.OffsetCommitRequestPartition(0, 5),)),)), 1)
        assert committed.topics[0].partitions[0].error_code == ErrorCode.NONE

        tc = m.txn_offset_commit
        for corr, version in ((2, 3), (3, 0)):
            resp = _ask(sock, ApiKey.TXN_OFFSET_COMMIT, version, tc.TxnOffsetCommitRequest(
                transactional_id="tx", group_id=GROUP, producer_id=77, producer_epoch=0,
                topics=(tc.TxnOffsetCommitRequestTopic(topic, (
                    tc.TxnOffsetCommitRequestPartition(0, 10 + version),
                    tc.TxnOffsetCommitRequestPartition(1, 20))),
                    tc.TxnOffsetCommitRequestTopic("no-such-topic", (
                        tc.TxnOffsetCommitRequestPartition(0, 1),)))), corr)
            assert [[p.error_code for p in t.partitions] for t in resp.topics] == [
                [ErrorCode.NONE, ErrorCode.NONE], [ErrorCode.UNKNOWN_TOPIC_OR_PARTITION]]

        of = m.offset_fetch
        asked = (of.OffsetFetchRequestTopic(topic, (0, 1)),)
        old = _ask(sock, ApiKey.OFFSET_FETCH, 6, of.OffsetFetchRequest(GROUP, asked), 4)
        assert [(p.committed_offset, p.error_code) for p in old.topics[0].partitions] == [
            (5, ErrorCode.NONE), (-1, ErrorCode.NONE)]
        stable = _ask(sock, ApiKey.OFFSET_FETCH, 7, of.OffsetFetchRequest(
            GROUP, asked, require_stable=True), 5)
        assert [(p.committed_offset, p.error_code) for p in stable.topics[0].partitions] == [
            (-1, ErrorCode.UNSTABLE_OFFSET_COMMIT), (-1, ErrorCode.UNSTABLE_OFFSET_COMMIT)]
        loose = _ask(sock, ApiKey.OFFSET_FETCH, 7, of.OffsetFetchRequest(GROUP, asked), 6)
        assert [p.committed_offset for p in loose.topics[0].partitions] == [5, -1]


def _offsets(bootstrap: str, group: str, topic: str, version: int, stable: bool = False
             ) -> list[int | ErrorCode]:
    """Partition 0's committed offset (or its error) by a raw OffsetFetch."""
    host, port = bootstrap.rsplit(":", 1)
    of = m.offset_fetch
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
        sock.settimeout(TIMEOUT)
        resp = _ask(sock, ApiKey.OFFSET_FETCH, version, of.OffsetFetchRequest(
            group, (of.OffsetFetchRequestTopic(topic, (0,)),), require_stable=stable), 1)
    return [p.committed_offset if p.error_code == ErrorCode.NONE else ErrorCode(p.error_code)
            for p in resp.topics[0].partitions]


def _read(bootstrap: str, topic: str, expect: int) -> list[bytes]:
    """Every read_committed value of partition 0 up to its end, once there are `expect`."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-reader",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "isolation.level": "read_committed", "enable.partition.eof": True,
                         "log_level": 0})
    got: list[bytes] = []
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        at_end = False
        deadline = time.monotonic() + TIMEOUT
        while not at_end or len(got) < expect:
            assert time.monotonic() < deadline, got
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                assert err.code() == KafkaError._PARTITION_EOF, err
                at_end = True
            else:
                got.append(msg.value())
                at_end = False
        return got
    finally:
        consumer.close()


@pytest.mark.timeout(150)
def test_offsets_of_a_transaction_open_at_a_broker_kill_replay_pending_then_abort(
        tmp_path: Path) -> None:
    pytest.importorskip("redshank.actors.txn_host", reason="needs the transaction coordinator")
    source, sink, group, txn_id = "ctp-in", "ctp-out", "ctp-group", "ctp-id"
    broker = BrokerProcess(tmp_path / "data", cores=1)
    broker.start()
    try:
        create_topic(broker.bootstrap, source, 1)
        create_topic(broker.bootstrap, sink, 1)
        plain = Producer({"bootstrap.servers": broker.bootstrap, "log_level": 0})
        for i in range(6):
            plain.produce(source, f"in-{i}".encode(), partition=0)
        assert plain.flush(30) == 0
        del plain
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                             "auto.offset.reset": "earliest", "enable.auto.commit": False,
                             "isolation.level": "read_committed", "log_level": 0})
        producer = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": txn_id,
                             "linger.ms": 5, "log_level": 0})
        try:
            producer.init_transactions(30)
            consumer.assign([TopicPartition(source, 0, 0)])
            meta = consumer.consumer_group_metadata()
            for first, upto, commit in ((0, 4, True), (4, 6, False)):
                producer.begin_transaction()
                for i in range(first, upto):
                    producer.produce(sink, f"out-{i}".encode(), partition=0)
                producer.send_offsets_to_transaction([TopicPartition(source, 0, upto)], meta, 30)
                if commit:
                    producer.commit_transaction(30)
                else:
                    assert producer.flush(30) == 0
        finally:
            consumer.close()
            del producer  # killed with its transaction open
        # The second transaction is open: its offset 6 is pending, 4 is the committed one.
        assert _offsets(broker.bootstrap, group, source, 6) == [4]
        assert _offsets(broker.bootstrap, group, source, 7, stable=True) == [
            ErrorCode.UNSTABLE_OFFSET_COMMIT]

        broker.kill()
        broker.start()
        assert _offsets(broker.bootstrap, group, source, 6) == [4]  # replayed: still pending
        assert _offsets(broker.bootstrap, group, source, 7, stable=True) == [
            ErrorCode.UNSTABLE_OFFSET_COMMIT]
        # The next instance of the transactional id aborts the open transaction.
        successor = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": txn_id,
                              "log_level": 0})
        successor.init_transactions(30)
        del successor
        deadline = time.monotonic() + TIMEOUT
        while (got := _offsets(broker.bootstrap, group, source, 7, stable=True)) != [4]:
            assert got == [ErrorCode.UNSTABLE_OFFSET_COMMIT] and time.monotonic() < deadline
            time.sleep(0.05)  # the abort's markers land just after InitProducerId answers
        assert _read(broker.bootstrap, sink, 4) == [f"out-{i}".encode() for i in range(4)]
    finally:
        broker.stop()
