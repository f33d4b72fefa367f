"""The partition side of transactions (KIP-98) against a real broker process, read by a real
client: transactional batches and COMMIT/ABORT markers written with our own codec over a
socket (Produce and WriteTxnMarkers, as a transactional producer and the transaction
coordinator send them), then confluent-kafka consumers: read_committed sees committed and
non-transactional records only, stops at the last stable offset while a transaction is open and
is woken when its marker moves it; read_uncommitted sees everything up to the high watermark;
ListOffsets latest answers the LSO under read_committed; DescribeProducers lists the open
transaction; after a broker restart the aborted transactions and the LSO are the same (also
when they span many segments: the segment snapshots); and on three nodes the markers replicate
and a new leader answers the same LSO."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from broker_proc import BrokerProcess, create_topic
from cluster_load import bootstrap, cluster, leader_of
from cluster_load import create_topic as create_rf3
from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from test_cluster_controller import wait_for

from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages import describe_producers as dp
from redshank.protocol.messages import init_producer_id as ipi
from redshank.protocol.messages import list_offsets as lo
from redshank.protocol.messages import produce as pr
from redshank.protocol.messages import write_txn_markers as wtm
from redshank.protocol.records import BatchBuilder
from redshank.tools.kafka_raw import RawConnection

TOPIC = "txn-part"
PARTITIONS = 2  # on both cores: one of them is read across cores


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    proc = BrokerProcess(tmp_path_factory.mktemp("txn-broker") / "data", cores=2)
    proc.start()
    try:
        create_topic(proc.bootstrap, TOPIC, PARTITIONS)
        yield proc
    finally:
        proc.stop()


class Writer:
    """A producer id with its sequence, writing one batch per call over a raw connection."""

    def __init__(self, conn: RawConnection) -> None:
        r = conn.call(ipi.InitProducerIdRequest(transactional_id=None,
                                                transaction_timeout_ms=60000), 4,
                      ipi.InitProducerIdResponse)
        assert r.error_code == 0, r
        self.conn, self.pid, self.epoch = conn, r.producer_id, r.producer_epoch
        self.seq: dict[int, int] = {}

    def send(self, partition: int, values: list[bytes], transactional: bool = True,
             topic: str = TOPIC) -> int:
        seq = self.seq.get(partition, 0)
        b = BatchBuilder(producer_id=self.pid, producer_epoch=self.epoch, base_sequence=seq,
                         is_transactional=transactional)
        for v in values:
            b.append(v, timestamp=int(time.time() * 1000))
        self.seq[partition] = seq + len(values)
        return produce(self.conn, partition, b.build(), topic)

    def end(self, partition: int, commit: bool, topic: str = TOPIC) -> int:
        return end_txn(self.conn, self.pid, self.epoch, partition, commit, topic=topic)


def produce(conn: RawConnection, partition: int, batch: bytes, topic: str = TOPIC) -> int:
    req = pr.ProduceRequest(transactional_id="txn-part-test", acks=-1, timeout_ms=10000,
                            topic_data=(pr.TopicProduceData(topic, (
                                pr.PartitionProduceData(partition, batch),)),))
    resp = conn.call(req, 9, pr.ProduceResponse)
    p = resp.responses[0].partition_responses[0]
    assert p.error_code == 0, p
    return int(p.base_offset)


def plain(conn: RawConnection, partition: int, value: bytes, topic: str = TOPIC) -> int:
    b = BatchBuilder()
    b.append(value, timestamp=int(time.time() * 1000))
    return produce(conn, partition, b.build(), topic)


def end_txn(conn: RawConnection, pid: int, epoch: int, partition: int, commit: bool,
            coordinator_epoch: int = 0, topic: str = TOPIC) -> int:
    req = wtm.WriteTxnMarkersRequest(markers=(wtm.WritableTxnMarker(
        producer_id=pid, producer_epoch=epoch, transaction_result=commit,
        topics=(wtm.WritableTxnMarkerTopic(topic, (partition,)),),
        coordinator_epoch=coordinator_epoch),))
    resp = conn.call(req, 1, wtm.WriteTxnMarkersResponse)
    return int(resp.markers[0].topics[0].partitions[0].error_code)


def latest(conn: RawConnection, partition: int, isolation: int, topic: str = TOPIC) -> int:
    req = lo.ListOffsetsRequest(replica_id=-1, isolation_level=isolation, topics=(
        lo.ListOffsetsTopic(topic, (lo.ListOffsetsPartition(partition, -1, -1),)),))
    p = conn.call(req, 7, lo.ListOffsetsResponse).topics[0].partitions[0]
    assert p.error_code == 0, p
    return int(p.offset)


def consume_to_end(bootstrap: str, partition: int, isolation: str,
                   timeout: float = 20.0, topic: str = TOPIC) -> list[bytes]:
    """Every value from offset 0 until the partition's end (librdkafka's EOF: the LSO under
    read_committed, the high watermark under read_uncommitted)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{isolation}",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "isolation.level": isolation, "fetch.wait.max.ms": 100})
    got: list[bytes] = []
    try:
        consumer.assign([TopicPartition(topic, partition, 0)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error() is not None:
                assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
                return got
            got.append(msg.value() or b"")
    finally:
        consumer.close()
    raise AssertionError(f"no end of partition {partition} within {timeout}s: {got}")


def txn_state(bootstrap: str, partition: int) -> tuple[int, int, dict[int, int]]:
    """(LSO by ListOffsets read_committed, high watermark, producer id -> open txn start)."""
    with RawConnection(bootstrap, 10) as conn:
        resp = conn.call(dp.DescribeProducersRequest(topics=(
            dp.TopicRequest(TOPIC, (partition,)),)), 0, dp.DescribeProducersResponse)
        p = resp.topics[0].partitions[0]
        assert p.error_code == 0, p
        return (latest(conn, partition, 1), latest(conn, partition, 0),
                {s.producer_id: s.current_txn_start_offset for s in p.active_producers})


@pytest.mark.timeout(120)
def test_read_committed_sees_committed_records_only_and_survives_a_restart(
        broker: BrokerProcess, tmp_path: Path) -> None:
    with RawConnection(broker.bootstrap, 10) as conn:
        for p in range(PARTITIONS):
            a, b = Writer(conn), Writer(conn)
            assert a.send(p, [b"a0", b"a1"]) == 0      # 0-1, to be aborted
            assert b.send(p, [b"b0"]) == 2             # 2, to be committed
            assert plain(conn, p, b"plain0") == 3      # 3
            assert latest(conn, p, 1) == 0 and latest(conn, p, 0) == 4
            assert consume_to_end(broker.bootstrap, p, "read_committed") == []
            assert consume_to_end(broker.bootstrap, p, "read_uncommitted") == [
                b"a0", b"a1", b"b0", b"plain0"]
            assert a.end(p, commit=False) == ErrorCode.NONE  # 4
            assert b.end(p, commit=True) == ErrorCode.NONE   # 5
            assert latest(conn, p, 1) == latest(conn, p, 0) == 6
            assert consume_to_end(broker.bootstrap, p, "read_committed") == [b"b0", b"plain0"]
            # A marker retried by the coordinator is written again (an offset) and changes
            # nothing; one from an older coordinator epoch is fenced.
            assert end_txn(conn, a.pid, a.epoch, p, False, 3) == ErrorCode.NONE  # 6
            assert end_txn(conn, a.pid, a.epoch, p, False, 2) == \
                ErrorCode.TRANSACTION_COORDINATOR_FENCED
            c = Writer(conn)
            assert c.send(p, [b"c0"]) == 7                 # open
            assert plain(conn, p, b"plain1") == 8
            lso, hw, producers = txn_state(broker.bootstrap, p)
            assert (lso, hw, producers[c.pid]) == (7, 9, 7)
            assert consume_to_end(broker.bootstrap, p, "read_committed") == [b"b0", b"plain0"]
    _woken_by_the_marker(broker, 0)
    expected = [b"b0", b"plain0", b"c0", b"plain1"]
    segmented = _transactions_over_many_segments(broker)
    broker.stop()
    broker.start()
    assert segmented == _segmented_state(broker)
    for p in range(PARTITIONS):
        lso, hw, producers = txn_state(broker.bootstrap, p)
        assert (lso, hw) == ((10, 10) if p == 0 else (7, 9))
        assert consume_to_end(broker.bootstrap, p, "read_committed") == (
            expected if p == 0 else expected[:2])
        assert consume_to_end(broker.bootstrap, p, "read_uncommitted") == [
            b"a0", b"a1", b"b0", b"plain0", b"c0", b"plain1"]
    # Another client's reader of the aborted-transactions list: aiokafka's read_committed (the
    # aborted records come first in the log, so any leak shows in the first four).
    assert _aiokafka_committed(broker.bootstrap, 0, 4) == expected


def _aiokafka_committed(bootstrap: str, partition: int, total: int) -> list[bytes]:
    from aiokafka import AIOKafkaConsumer
    from aiokafka import TopicPartition as AioTopicPartition

    async def run() -> list[bytes]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                    fetch_max_wait_ms=100, isolation_level="read_committed")
        await consumer.start()
        got: list[bytes] = []
        try:
            tp = AioTopicPartition(TOPIC, partition)
            consumer.assign([tp])
            consumer.seek(tp, 0)
            deadline = asyncio.get_running_loop().time() + 20
            while len(got) < total and asyncio.get_running_loop().time() < deadline:
                for msgs in (await consumer.getmany(timeout_ms=200)).values():
                    got += [m.value or b"" for m in msgs]
        finally:
            await consumer.stop()
        return got

    return asyncio.run(asyncio.wait_for(run(), 40))


def _woken_by_the_marker(broker: BrokerProcess, partition: int) -> None:
    """A read_committed consumer parked at the LSO gets the open transaction's records once
    its commit marker is written (the long poll wakes on the LSO's move)."""
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "g-woken",
                         "enable.auto.commit": False, "isolation.level": "read_committed",
                         "fetch.wait.max.ms": 5000})
    try:
        consumer.assign([TopicPartition(TOPIC, partition, 7)])
        assert consumer.poll(0.5) is None  # parked at the LSO
        with RawConnection(broker.bootstrap, 10) as conn:
            _, _, producers = txn_state(broker.bootstrap, partition)
            open_pid = next(pid for pid, start in producers.items() if start == 7)
            assert end_txn(conn, open_pid, 0, partition, True) == ErrorCode.NONE  # 9
        got: list[bytes] = []
        deadline = time.monotonic() + 15
        while len(got) < 2 and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                got.append(msg.value() or b"")
        assert got == [b"c0", b"plain1"]
    finally:
        consumer.close()


SEGMENTED = "txn-part-segments"


def _transactions_over_many_segments(broker: BrokerProcess) -> tuple[int, list[bytes]]:
    """A topic rolling a segment every batch: an aborted transaction and an open one span
    many segments, so after a restart their state comes from the segment snapshots the
    partition leader stored, not from a replay of the last two segments."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(SEGMENTED, 1, 1, config={"segment.bytes": "100"})],
                        operation_timeout=10)[SEGMENTED].result(timeout=20)
    with RawConnection(broker.bootstrap, 10) as conn:
        a, b = Writer(conn), Writer(conn)
        a.send(0, [b"a0"], topic=SEGMENTED)                                  # 0
        for i in range(4):
            plain(conn, 0, b"p%d" % i, topic=SEGMENTED)                      # 1-4
        assert a.end(0, commit=False, topic=SEGMENTED) == ErrorCode.NONE     # 5
        assert b.send(0, [b"b0"], topic=SEGMENTED) == 6                      # open
        for i in range(4, 8):
            plain(conn, 0, b"p%d" % i, topic=SEGMENTED)                      # 7-10
    state = _segmented_state(broker)
    assert state == (6, [b"p0", b"p1", b"p2", b"p3"])
    snapshots = list((broker.data_dir / "kafka" / f"{SEGMENTED}-0").glob("*.txnindex"))
    assert len(snapshots) >= 5, snapshots  # sealed segments, each with its snapshot
    return state


def _segmented_state(broker: BrokerProcess) -> tuple[int, list[bytes]]:
    with RawConnection(broker.bootstrap, 10) as conn:
        lso = latest(conn, 0, 1, SEGMENTED)
    return lso, consume_to_end(broker.bootstrap, 0, "read_committed", topic=SEGMENTED)


REPLICATED = "txn-part-rf3"


@pytest.mark.timeout(180)
def test_rf3_markers_replicate_and_a_new_leader_has_the_same_lso(tmp_path: Path) -> None:
    """On three nodes: an aborted transaction and an open one written on the leader; the leader
    is killed; the new leader answers the same LSO, its read_committed readers skip the aborted
    records and stop at the open transaction, and it takes the commit marker that ends it."""
    with cluster(tmp_path) as nodes:
        create_rf3(nodes, REPLICATED, 1)
        found = wait_for("a leader", lambda: leader_of(nodes, REPLICATED, 0), 30)
        assert found is not None
        leader, term = found
        with RawConnection(leader.kafka, 10) as conn:
            a, b = Writer(conn), Writer(conn)
            assert a.send(0, [b"a0", b"a1"], topic=REPLICATED) == 0
            assert plain(conn, 0, b"p0", topic=REPLICATED) == 2
            assert a.end(0, commit=False, topic=REPLICATED) == ErrorCode.NONE  # 3
            assert b.send(0, [b"b0"], topic=REPLICATED) == 4                   # open
            assert plain(conn, 0, b"p1", topic=REPLICATED) == 5
            assert latest(conn, 0, 1, REPLICATED) == 4
        leader.kill_group()
        rest = [n for n in nodes if n is not leader]
        found = wait_for("a new leader", lambda: leader_of(rest, REPLICATED, 0, term), 30)
        assert found is not None
        new = found[0]
        with RawConnection(new.kafka, 10) as conn:
            assert latest(conn, 0, 1, REPLICATED) == 4 and latest(conn, 0, 0, REPLICATED) == 6
            assert consume_to_end(bootstrap(rest), 0, "read_committed",
                                  topic=REPLICATED) == [b"p0"]
            assert end_txn(conn, b.pid, b.epoch, 0, True, topic=REPLICATED) == ErrorCode.NONE
            assert latest(conn, 0, 1, REPLICATED) == 7
        assert consume_to_end(bootstrap(rest), 0, "read_committed", topic=REPLICATED) == [
            b"p0", b"b0", b"p1"]
