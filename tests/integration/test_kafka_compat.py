"""Kafka's documented answers where clients' own conformance suites check them (issue 17), with
real clients against a real broker: OffsetCommit and AlterConsumerGroupOffsets to a topic or
partition that does not exist answer UNKNOWN_TOPIC_OR_PARTITION for that partition (the others
of the same request are committed); an idempotent producer gets a producer id (transactional
ones: test_transactions.py); ListOffsets
answers per record, not per batch: by time, the first record whose timestamp is at or after the
target (and that record's timestamp); MAX_TIMESTAMP, the record carrying the largest; static
members (KIP-345) join one generation and keep their partitions across a restart; OffsetDelete
(KIP-496) deletes a group's offsets except those of topics its members subscribe to. The
commit and delete answers hold in cluster mode too (three nodes, `__consumer_offsets` and the
topic replicated, asked through nodes that do not coordinate the group)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from broker_proc import BrokerProcess, create_topic
from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec
from kafka.admin import KafkaAdminClient
from kafka.errors import GroupIdNotFoundError
from kafka.structs import TopicPartition as KpTopicPartition
from test_cluster_controller import agreed, wait_for
from test_cluster_groups import one_leader
from test_cluster_partitions import KafkaNode

from redshank.tools.cluster_cmd import plan_ports

_UNKNOWN = KafkaError.UNKNOWN_TOPIC_OR_PART


def _committed(admin: AdminClient, group: str) -> dict[tuple[str, int], int]:
    futures = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
    listed = futures[group].result(20)
    return {(tp.topic, tp.partition): tp.offset for tp in listed.topic_partitions}


@pytest.mark.timeout(90)
def test_alter_group_offsets_answers_unknown_topic_or_partition_per_partition(
        broker: BrokerProcess) -> None:
    create_topic(broker.bootstrap, "compat-alter", 2)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    group = "compat-alter-group"
    asked = [TopicPartition("compat-alter", 0, 5), TopicPartition("compat-alter", 1, 7),
             TopicPartition("compat-alter", 2, 3),  # past the topic's 2 partitions
             TopicPartition("compat-no-such-topic", 0, 1)]
    futures = admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, asked)])
    answered = futures[group].result(20)
    errors = {(tp.topic, tp.partition): None if tp.error is None else tp.error.code()
              for tp in answered.topic_partitions}
    assert errors == {("compat-alter", 0): None, ("compat-alter", 1): None,
                      ("compat-alter", 2): _UNKNOWN, ("compat-no-such-topic", 0): _UNKNOWN}
    # The partitions that exist were committed; the others left nothing behind.
    assert _committed(admin, group) == {("compat-alter", 0): 5, ("compat-alter", 1): 7}


@pytest.mark.timeout(90)
def test_consumer_commit_to_an_unknown_topic_fails_with_unknown_topic_or_partition(
        broker: BrokerProcess) -> None:
    create_topic(broker.bootstrap, "compat-commit", 1)
    group = "compat-commit-group"
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    try:
        with pytest.raises(KafkaException) as raised:
            consumer.commit(offsets=[TopicPartition("compat-commit", 0, 4),
                                     TopicPartition("compat-commit-missing", 0, 1)],
                            asynchronous=False)
        assert raised.value.args[0].code() == _UNKNOWN
        committed = consumer.committed([TopicPartition("compat-commit", 0),
                                        TopicPartition("compat-commit-missing", 0)], timeout=20)
        assert [(tp.topic, tp.offset) for tp in committed] == [
            ("compat-commit", 4), ("compat-commit-missing", -1001)]  # -1001: OFFSET_INVALID
        # A commit of existing partitions only succeeds as before.
        done = consumer.commit(offsets=[TopicPartition("compat-commit", 0, 9)],
                               asynchronous=False)
        assert done is not None and [(tp.offset, tp.error) for tp in done] == [(9, None)]
    finally:
        consumer.close()


@pytest.mark.timeout(90)
def test_an_idempotent_producer_gets_a_producer_id(broker: BrokerProcess) -> None:
    idempotent = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True})
    create_topic(broker.bootstrap, "compat-idem", 1)
    delivered: list[KafkaError | None] = []
    idempotent.produce("compat-idem", b"v", partition=0,
                       on_delivery=lambda err, _msg: delivered.append(err))
    assert idempotent.flush(30) == 0
    assert delivered == [None]


# One producer batch each (linger), timestamps not monotonic, as real producers send them.
_STAMPS = [1000, 3000, 2000, 5000, 4000]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("codec", ["none", "lz4"])
def test_list_offsets_answers_per_record(broker: BrokerProcess, codec: str) -> None:
    topic = f"compat-times-{codec}"
    create_topic(broker.bootstrap, topic, 1)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 1000,
                         "compression.type": codec, "acks": "all"})
    for i, ts in enumerate(_STAMPS):
        producer.produce(topic, value=b"r%d" % i, partition=0, timestamp=ts)
    assert producer.flush(30) == 0
    producer.produce(topic, value=b"later", partition=0, timestamp=1500)  # offset 5
    assert producer.flush(30) == 0
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})

    def ask(spec: OffsetSpec) -> tuple[int, int]:
        tp = TopicPartition(topic, 0)
        info = admin.list_offsets({tp: spec}, request_timeout=20)[tp].result(20)
        return info.offset, info.timestamp

    # The record of the largest timestamp (offset 3), not the batch's last offset (4).
    assert ask(OffsetSpec.max_timestamp()) == (3, 5000)
    # The first record at or after the time, with its own timestamp (not the batch's base).
    assert ask(OffsetSpec.for_timestamp(2500)) == (1, 3000)
    assert ask(OffsetSpec.for_timestamp(4001)) == (3, 5000)
    assert ask(OffsetSpec.for_timestamp(1200)) == (1, 3000)  # the batch of 1000-5000 first
    assert ask(OffsetSpec.for_timestamp(5001)) == (-1, -1)  # none: no offset
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"{topic}-g"})
    try:
        found = consumer.offsets_for_times([TopicPartition(topic, 0, 2500)], timeout=20)
        assert [tp.offset for tp in found] == [1]
    finally:
        consumer.close()


@pytest.mark.timeout(120)
def test_list_offsets_max_timestamp_after_a_broker_restart(tmp_path: Path) -> None:
    """A restarted leader has not seen the batches: MAX_TIMESTAMP comes from the log."""
    proc = BrokerProcess(tmp_path / "data", cores=1)
    proc.start()
    try:
        topic = "compat-times-restart"
        create_topic(proc.bootstrap, topic, 1)
        producer = Producer({"bootstrap.servers": proc.bootstrap, "linger.ms": 1000,
                             "acks": "all"})
        for i, ts in enumerate(_STAMPS):
            producer.produce(topic, value=b"r%d" % i, partition=0, timestamp=ts)
        assert producer.flush(30) == 0
        assert proc.stop() == 0
        proc.start()
        admin = AdminClient({"bootstrap.servers": proc.bootstrap})
        tp = TopicPartition(topic, 0)
        deadline = time.monotonic() + 30
        while True:  # the partition is opened on first use after the restart
            try:
                info = admin.list_offsets({tp: OffsetSpec.max_timestamp()},
                                          request_timeout=10)[tp].result(15)
                break
            except KafkaException:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert (info.offset, info.timestamp) == (3, 5000)
    finally:
        proc.stop()


class _Member:
    """A confluent-kafka consumer with a static instance id, recording its rebalance callbacks."""

    def __init__(self, bootstrap: str, group: str, instance: str, topic: str) -> None:
        self.assigns: list[set[int]] = []
        self.revokes = 0
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": group, "group.instance.id": instance,
            "session.timeout.ms": 30000, "enable.auto.commit": False,
            "partition.assignment.strategy": "range"})
        self.consumer.subscribe([topic], on_assign=self._assigned, on_revoke=self._revoked)

    def _assigned(self, _c: Consumer, parts: list[TopicPartition]) -> None:
        self.assigns.append({tp.partition for tp in parts})

    def _revoked(self, _c: Consumer, _parts: list[TopicPartition]) -> None:
        self.revokes += 1


def _poll_until(members: list[_Member], done: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, [(m.assigns, m.revokes) for m in members]
        for m in members:
            m.consumer.poll(0.05)


@pytest.mark.timeout(120)
def test_static_members_join_one_generation_and_keep_their_assignment_across_a_restart(
        broker: BrokerProcess) -> None:
    """KIP-345. Two static members joining together are both in the first generation (neither
    is revoked: a later generation would revoke the first member's partitions first); a member
    restarted with the same instance id gets its partitions back with no rebalance: the other
    member, polled all along, is never revoked (an eager rebalance revokes every member before
    it can rejoin, so none happened by the time the restarted member is assigned)."""
    topic = "compat-static"
    create_topic(broker.bootstrap, topic, 4)
    group = "compat-static-group"
    a = _Member(broker.bootstrap, group, "instance-a", topic)
    b = _Member(broker.bootstrap, group, "instance-b", topic)
    try:
        _poll_until([a, b], lambda: bool(a.assigns and a.assigns[-1] and b.assigns
                                         and b.assigns[-1]), 60)
        assert (len(a.assigns), a.revokes, len(b.assigns), b.revokes) == (1, 0, 1, 0)
        assert a.assigns[0] | b.assigns[0] == {0, 1, 2, 3} and not a.assigns[0] & b.assigns[0]
        kept = a.assigns[0]
        a.consumer.close()  # a static member leaves no LeaveGroup: its place is kept
        a = _Member(broker.bootstrap, group, "instance-a", topic)
        _poll_until([a, b], lambda: bool(a.assigns), 60)
        assert a.assigns == [kept]
        assert (len(b.assigns), b.revokes) == (1, 0)
    finally:
        a.consumer.close()
        b.consumer.close()



def _delete_offsets(admin: KafkaAdminClient, group: str, parts: list[tuple[str, int]]
                    ) -> dict[tuple[str, int], str]:
    answered = admin.delete_group_offsets(group, [KpTopicPartition(t, p) for t, p in parts])
    return {(tp.topic, tp.partition): error.__name__ for tp, error in answered.items()}


@pytest.mark.timeout(120)
def test_offset_delete(broker: BrokerProcess) -> None:
    """KIP-496 with kafka-python's KafkaAdminClient.delete_group_offsets (confluent-kafka's
    Python AdminClient does not expose it): an Empty group's offsets are deleted (also of
    partitions it never committed); a topic that does not exist answers
    UNKNOWN_TOPIC_OR_PARTITION; a live consumer group keeps the offsets of the topics its
    members subscribe to (GROUP_SUBSCRIBED_TO_TOPIC) and deletes the others; a group that does
    not exist is GROUP_ID_NOT_FOUND."""
    create_topic(broker.bootstrap, "compat-odel", 2)
    create_topic(broker.bootstrap, "compat-odel-other", 1)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    kp_admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    group = "compat-odel-group"
    try:
        admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, [
            TopicPartition("compat-odel", 0, 5), TopicPartition("compat-odel", 1, 6),
            TopicPartition("compat-odel-other", 0, 7)])])[group].result(20)
        assert _delete_offsets(kp_admin, group, [
            ("compat-odel", 0), ("compat-odel-other", 9), ("compat-odel-missing", 0)]) == {
            ("compat-odel", 0): "NoError", ("compat-odel-other", 9): "NoError",
            ("compat-odel-missing", 0): "UnknownTopicOrPartitionError"}
        assert _committed(admin, group) == {("compat-odel", 1): 6,
                                            ("compat-odel-other", 0): 7}
        # A live member subscribed to compat-odel: its offsets stay, compat-odel-other's go.
        member = _Member(broker.bootstrap, group, "odel-instance", "compat-odel")
        try:
            _poll_until([member], lambda: bool(member.assigns and member.assigns[-1]), 60)
            assert _delete_offsets(kp_admin, group, [
                ("compat-odel", 1), ("compat-odel-other", 0)]) == {
                ("compat-odel", 1): "GroupSubscribedToTopicError",
                ("compat-odel-other", 0): "NoError"}
            assert _committed(admin, group) == {("compat-odel", 1): 6}
        finally:
            member.consumer.close()
        with pytest.raises(GroupIdNotFoundError):
            _delete_offsets(kp_admin, "compat-odel-no-group", [("compat-odel", 0)])
    finally:
        kp_admin.close()


@pytest.mark.timeout(180)
def test_commit_and_offset_delete_answers_in_cluster_mode(tmp_path: Path) -> None:
    rpcs = [rpc for _kafka, rpc in plan_ports(3, 1, 0)]
    nodes = [KafkaNode(tmp_path / f"node-{i}", i, rpcs[i - 1], rpcs, 1) for i in (1, 2, 3)]
    try:
        for node in nodes:
            node.spawn()
        for node in nodes:
            node.ready()
        wait_for("three nodes agreeing on one cluster", lambda: agreed(nodes, 3), 30)  # type: ignore[arg-type]
        admin = AdminClient({"bootstrap.servers": nodes[1].kafka})
        admin.create_topics([NewTopic("cc-topic", 2, 3)])["cc-topic"].result(30)
        for p in (0, 1):
            wait_for(f"a leader of cc-topic/{p}", lambda p=p: one_leader(nodes, "cc-topic", p), 30)
        group = "cc-group"
        def alter() -> dict[tuple[str, int], int | None]:
            # A new client each time: librdkafka caches the group's coordinator and does not
            # forget it on a per-partition NOT_COORDINATOR.
            fresh = AdminClient({"bootstrap.servers": nodes[1].kafka})
            futures = fresh.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, [
                TopicPartition("cc-topic", 0, 3), TopicPartition("cc-topic", 1, 4),
                TopicPartition("cc-topic", 2, 5), TopicPartition("cc-missing", 0, 1)])])
            answered = futures[group].result(60)
            return {(tp.topic, tp.partition): None if tp.error is None else tp.error.code()
                    for tp in answered.topic_partitions}

        # The group's coordinator is the leader of its __consumer_offsets partition, created by
        # this first request: while that partition elects its leader, loads and settles on
        # its preferred replica, the node asked may answer COORDINATOR_LOAD_IN_PROGRESS or
        # NOT_COORDINATOR (retriable; an application asks again, as librdkafka does not for
        # this admin call).
        deadline = time.monotonic() + 30
        settling = {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                    KafkaError.COORDINATOR_NOT_AVAILABLE}
        while (codes := alter()) and settling & set(codes.values()) \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        assert codes == {
            ("cc-topic", 0): None, ("cc-topic", 1): None, ("cc-topic", 2): _UNKNOWN,
            ("cc-missing", 0): _UNKNOWN}
        kp_admin = KafkaAdminClient(bootstrap_servers=nodes[2].kafka)
        try:
            assert _delete_offsets(kp_admin, group, [("cc-topic", 0), ("cc-missing", 0)]) == {
                ("cc-topic", 0): "NoError", ("cc-missing", 0): "UnknownTopicOrPartitionError"}
        finally:
            kp_admin.close()
        assert _committed(admin, group) == {("cc-topic", 1): 4}
    finally:
        for node in nodes:
            node.stop()


def _records_bytes(records: bytes | memoryview | None) -> int:
    return 0 if records is None else len(records)


def _batch_sizes(records: bytes | memoryview | None) -> list[int]:
    """The sizes of the whole batches in `records` (a partial batch at the end not counted)."""
    from redshank.protocol.record_batch import parse_header

    sizes, pos, data = [], 0, bytes(records or b"")
    while len(data) - pos >= 61:
        size = parse_header(memoryview(data)[pos:]).size
        if pos + size > len(data):
            break
        sizes.append(size)
        pos += size
    return sizes


@pytest.mark.timeout(90)
def test_fetch_honours_max_bytes_and_partition_max_bytes(broker: BrokerProcess) -> None:
    """KIP-74: the records of one Fetch stay within max_bytes and each partition's within its
    partition_max_bytes, except that the first batch of the first non-empty partition is
    returned whole even when it is larger (so a consumer always makes progress)."""
    from poison import RawClient

    from redshank.protocol.messages.fetch import (
        FetchPartition,
        FetchRequest,
        FetchResponse,
        FetchTopic,
    )
    from redshank.protocol.records import BatchBuilder

    topic = "compat-fetch-limits"
    create_topic(broker.bootstrap, topic, 3)
    client = RawClient(broker.bootstrap)
    try:
        def batch(value_bytes: int, n: int = 4) -> bytes:
            builder = BatchBuilder()
            for i in range(n):
                builder.append(bytes([65 + i]) * (value_bytes // n), key=b"k%d" % i,
                               timestamp=1_700_000_000_000 + i)
            return builder.build()

        # Partition 0 opens with a batch larger than every limit below; 1 and 2 hold ten
        # 30 KB batches each.
        assert client.produce(topic, 0, batch(300_000)).error_code == 0  # type: ignore[union-attr]
        for p in (1, 2):
            for _ in range(10):
                assert client.produce(topic, p, batch(30_000)).error_code == 0  # type: ignore[union-attr]

        def fetch(max_bytes: int, part_max: int, partitions: tuple[int, ...]
                  ) -> dict[int, bytes | memoryview | None]:
            request = FetchRequest(max_wait_ms=0, min_bytes=0, max_bytes=max_bytes, topics=(
                FetchTopic(topic=topic, partitions=tuple(
                    FetchPartition(partition=p, fetch_offset=0, partition_max_bytes=part_max)
                    for p in partitions)),))
            response = client.call(request, 11, FetchResponse)
            (t,) = response.responses
            assert all(p.error_code == 0 for p in t.partitions)
            return {p.partition_index: p.records for p in t.partitions}

        # The request-wide limit across partitions 1 and 2: at most 100 KB in all.
        got = fetch(100_000, 1 << 20, (1, 2))
        total = sum(_records_bytes(r) for r in got.values())
        assert 0 < total <= 100_000, {p: _batch_sizes(r) for p, r in got.items()}
        assert _batch_sizes(got[1]) and sum(_batch_sizes(got[1])) <= 100_000

        # The per-partition limit: at most 50 KB from each, both served.
        got = fetch(1 << 20, 50_000, (1, 2))
        for p in (1, 2):
            assert 0 < _records_bytes(got[p]) <= 50_000, (p, _records_bytes(got[p]))

        # The oversized first batch of the first non-empty partition comes whole; what follows
        # it in the same response stays within what is left of the limit (nothing).
        got = fetch(100_000, 100_000, (0, 1))
        first = _batch_sizes(got[0])
        assert len(first) == 1 and first[0] > 300_000
        assert _records_bytes(got[0]) == first[0]
        assert _batch_sizes(got[1]) == []

        # The same oversized batch behind a non-empty partition is not returned whole.
        got = fetch(100_000, 100_000, (1, 0))
        assert 0 < _records_bytes(got[1]) <= 100_000
        assert _batch_sizes(got[0]) == []
    finally:
        client.close()
