"""Admin APIs with real admin clients (confluent-kafka AdminClient, kafka-python
KafkaAdminClient) against a real broker: consumer groups are listed, described (a live member
while Stable, Empty once it left) and deleted (a live group is refused with NON_EMPTY_GROUP, an
unknown one with GROUP_ID_NOT_FOUND); DescribeCluster names this node as broker and controller;
DeleteTopics removes a topic and its log directories (a topic created again under the same name
starts empty) and refuses unknown topics; DescribeConfigs reports set values and defaults;
CreatePartitions grows a topic (the new partitions take records) and refuses to shrink it;
DeleteRecords moves the low watermark (consumers start there) and refuses offsets past the end;
OffsetForLeaderEpoch (raw requests, every version) says epoch 0 ends at the high watermark."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest
from broker_proc import BrokerProcess, create_topic, recv_exact
from confluent_kafka import (
    Consumer,
    ConsumerGroupState,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic
from kafka.admin import ConfigResource as KpConfigResource
from kafka.admin import ConfigResourceType as KpResourceType
from kafka.admin import KafkaAdminClient
from kafka.admin import NewPartitions as KpNewPartitions
from kafka.errors import (
    GroupIdNotFoundError,
    InvalidPartitionsError,
    NonEmptyGroupError,
    UnknownTopicOrPartitionError,
)
from kafka.structs import TopicPartition as KpTopicPartition

from redshank.protocol.api_versions import (
    ADVERTISED,
    ApiKey,
    request_header_version,
    response_header_version,
)
from redshank.protocol.messages import list_offsets as lo_wire
from redshank.protocol.messages import offset_for_leader_epoch as ofe
from redshank.protocol.messages.request_header import RequestHeader
from redshank.protocol.messages.response_header import ResponseHeader

TIMEOUT = 20


def _fill(bootstrap: str, topic: str) -> None:
    create_topic(bootstrap, topic, 1)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(5):
        producer.produce(topic, value=f"{topic}-{i}".encode(), partition=0)
    assert producer.flush(TIMEOUT) == 0


def _joined_consumer(bootstrap: str, topic: str, group: str) -> Consumer:
    """A consumer that has joined `group`, read a record and committed its offset."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "client.id": f"{group}-client", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe([topic])
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is not None:
            assert msg.error() is None, f"consumer error: {msg.error()}"
            consumer.commit(message=msg, asynchronous=False)
            return consumer
    consumer.close()
    raise AssertionError(f"{group} got no record in {TIMEOUT}s")


@pytest.fixture()
def ck_admin(broker: BrokerProcess) -> Iterator[AdminClient]:
    yield AdminClient({"bootstrap.servers": broker.bootstrap})


@pytest.mark.timeout(90)
def test_confluent_kafka_list_describe_delete_groups(broker: BrokerProcess,
                                                      ck_admin: AdminClient) -> None:
    _fill(broker.bootstrap, "adm-ck")
    consumer = _joined_consumer(broker.bootstrap, "adm-ck", "adm-ck-group")
    try:
        listed = ck_admin.list_consumer_groups(request_timeout=TIMEOUT).result(TIMEOUT)
        by_id = {g.group_id: g for g in listed.valid}
        assert by_id["adm-ck-group"].state == ConsumerGroupState.STABLE
        desc = ck_admin.describe_consumer_groups(
            ["adm-ck-group"], request_timeout=TIMEOUT)["adm-ck-group"].result(TIMEOUT)
        assert desc.state == ConsumerGroupState.STABLE
        assert [m.client_id for m in desc.members] == ["adm-ck-group-client"]
        assert [tp.topic for m in desc.members for tp in m.assignment.topic_partitions] == [
            "adm-ck"]
        with pytest.raises(KafkaException) as refused:
            ck_admin.delete_consumer_groups(
                ["adm-ck-group"], request_timeout=TIMEOUT)["adm-ck-group"].result(TIMEOUT)
        assert refused.value.args[0].code() == KafkaError.NON_EMPTY_GROUP
    finally:
        consumer.close()
    desc = ck_admin.describe_consumer_groups(
        ["adm-ck-group"], request_timeout=TIMEOUT)["adm-ck-group"].result(TIMEOUT)
    assert desc.state == ConsumerGroupState.EMPTY and list(desc.members) == []
    ck_admin.delete_consumer_groups(
        ["adm-ck-group"], request_timeout=TIMEOUT)["adm-ck-group"].result(TIMEOUT)
    listed = ck_admin.list_consumer_groups(request_timeout=TIMEOUT).result(TIMEOUT)
    assert "adm-ck-group" not in {g.group_id for g in listed.valid}
    with pytest.raises(KafkaException) as unknown:
        ck_admin.delete_consumer_groups(
            ["adm-ck-group"], request_timeout=TIMEOUT)["adm-ck-group"].result(TIMEOUT)
    assert unknown.value.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND


@pytest.mark.timeout(90)
def test_kafka_python_list_describe_delete_groups(broker: BrokerProcess) -> None:
    _fill(broker.bootstrap, "adm-kp")
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=TIMEOUT * 1000)
    try:
        consumer = _joined_consumer(broker.bootstrap, "adm-kp", "adm-kp-group")
        try:
            listed = {g["group_id"]: g for g in admin.list_groups()}
            assert listed["adm-kp-group"]["group_state"] == "Stable"
            assert listed["adm-kp-group"]["protocol_type"] == "consumer"
            live = admin.describe_groups(["adm-kp-group"])["adm-kp-group"]
            assert (live["error"], live["group_state"]) == (None, "Stable")
            (member,) = live["members"]
            assert member["client_id"] == "adm-kp-group-client"
            assert member["member_assignment"]["assigned_partitions"] == [
                {"topic": "adm-kp", "partitions": [0]}]
            assert admin.delete_groups(["adm-kp-group"]) == {
                "adm-kp-group": NonEmptyGroupError.__name__}
        finally:
            consumer.close()
        left = admin.describe_groups(["adm-kp-group"])["adm-kp-group"]
        assert (left["group_state"], left["members"]) == ("Empty", [])
        assert admin.delete_groups(["adm-kp-group"]) == {"adm-kp-group": "OK"}
        assert "adm-kp-group" not in {g["group_id"] for g in admin.list_groups()}
        assert admin.delete_groups(["adm-kp-group"]) == {
            "adm-kp-group": GroupIdNotFoundError.__name__}
    finally:
        admin.close()


@pytest.mark.timeout(60)
def test_describe_cluster(broker: BrokerProcess, ck_admin: AdminClient) -> None:
    port = int(broker.bootstrap.rsplit(":", 1)[1])
    desc = ck_admin.describe_cluster(request_timeout=TIMEOUT).result(TIMEOUT)
    assert desc.cluster_id
    assert [(n.id, n.port) for n in desc.nodes] == [(0, port)]
    assert desc.controller is not None and desc.controller.id == 0
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=TIMEOUT * 1000)
    try:
        kp = admin.describe_cluster()
        assert kp["cluster_id"] == desc.cluster_id
        assert kp["controller_id"] == 0
        assert [(b["broker_id"], b["port"]) for b in kp["brokers"]] == [(0, port)]
    finally:
        admin.close()


def _consume_all(bootstrap: str, topic: str, expect: int) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-reader",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    got: list[bytes] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + TIMEOUT
        while len(got) < expect and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None:
                assert msg.error() is None, f"consumer error: {msg.error()}"
                got.append(msg.value())
        # Anything beyond `expect` would be data that outlived the deletion.
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            msg = consumer.poll(0.1)
            if msg is not None and msg.error() is None:
                got.append(msg.value())
    finally:
        consumer.close()
    return got


@pytest.mark.timeout(90)
def test_confluent_kafka_delete_topic_and_recreate(broker: BrokerProcess,
                                                   ck_admin: AdminClient) -> None:
    _fill(broker.bootstrap, "adm-del")  # 5 records
    ck_admin.delete_topics(["adm-del"], request_timeout=TIMEOUT)["adm-del"].result(TIMEOUT)
    assert "adm-del" not in ck_admin.list_topics(timeout=TIMEOUT).topics
    with pytest.raises(KafkaException) as unknown:
        ck_admin.delete_topics(["adm-del"], request_timeout=TIMEOUT)["adm-del"].result(TIMEOUT)
    assert unknown.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    create_topic(broker.bootstrap, "adm-del", 2)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    producer.produce("adm-del", value=b"fresh", partition=1)
    assert producer.flush(TIMEOUT) == 0
    assert _consume_all(broker.bootstrap, "adm-del", 1) == [b"fresh"]


@pytest.mark.timeout(90)
def test_kafka_python_delete_topics(broker: BrokerProcess) -> None:
    _fill(broker.bootstrap, "adm-del-kp")
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=TIMEOUT * 1000)
    try:
        assert list(broker.data_dir.rglob("adm-del-kp-0"))
        admin.delete_topics(["adm-del-kp"])
        assert "adm-del-kp" not in admin.list_topics()
        assert not list(broker.data_dir.rglob("adm-del-kp-*"))  # the controller waits for it
        with pytest.raises(UnknownTopicOrPartitionError):
            admin.delete_topics(["adm-del-kp"])
    finally:
        admin.close()


@pytest.mark.timeout(60)
def test_describe_configs(broker: BrokerProcess, ck_admin: AdminClient) -> None:
    created = ck_admin.create_topics([NewTopic("adm-cfg", 1, 1, config={"retention.ms": "60000"})],
                                     request_timeout=TIMEOUT)
    created["adm-cfg"].result(TIMEOUT)
    resource = ConfigResource(ConfigResource.Type.TOPIC, "adm-cfg")
    entries = ck_admin.describe_configs([resource], request_timeout=TIMEOUT)[resource].result(
        TIMEOUT)
    assert entries["retention.ms"].value == "60000" and not entries["retention.ms"].is_default
    assert entries["cleanup.policy"].value == "delete" and entries["cleanup.policy"].is_default
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=TIMEOUT * 1000)
    try:
        described = admin.describe_configs([KpConfigResource(KpResourceType.TOPIC, "adm-cfg")])
        # kafka-python lists the non-default entries only.
        retention = described["topic"]["adm-cfg"]["retention.ms"]
        assert (retention["value"], retention["config_source"]) == (
            "60000", "DYNAMIC_TOPIC_CONFIG")
    finally:
        admin.close()


@pytest.mark.timeout(90)
def test_create_partitions(broker: BrokerProcess, ck_admin: AdminClient) -> None:
    create_topic(broker.bootstrap, "adm-grow", 1)
    ck_admin.create_partitions([NewPartitions("adm-grow", 3)], request_timeout=TIMEOUT)[
        "adm-grow"].result(TIMEOUT)
    assert len(ck_admin.list_topics("adm-grow", timeout=TIMEOUT).topics["adm-grow"].partitions) == 3
    with pytest.raises(KafkaException) as shrink:
        ck_admin.create_partitions([NewPartitions("adm-grow", 2)], request_timeout=TIMEOUT)[
            "adm-grow"].result(TIMEOUT)
    assert shrink.value.args[0].code() == KafkaError.INVALID_PARTITIONS
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    producer.produce("adm-grow", value=b"in-new-partition", partition=2)
    assert producer.flush(TIMEOUT) == 0
    assert _consume_all(broker.bootstrap, "adm-grow", 1) == [b"in-new-partition"]
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=TIMEOUT * 1000)
    try:
        admin.create_partitions({"adm-grow": KpNewPartitions(4)})
        assert len(admin.describe_topics(["adm-grow"])[0]["partitions"]) == 4
        with pytest.raises(InvalidPartitionsError):
            admin.create_partitions({"adm-grow": KpNewPartitions(4)})
    finally:
        admin.close()


@pytest.mark.timeout(90)
def test_delete_records(broker: BrokerProcess, ck_admin: AdminClient) -> None:
    _fill(broker.bootstrap, "adm-trim")  # offsets 0-4
    tp = TopicPartition("adm-trim", 0, 2)
    deleted = ck_admin.delete_records([tp], request_timeout=TIMEOUT)[tp].result(TIMEOUT)
    assert deleted.low_watermark == 2
    assert _consume_all(broker.bootstrap, "adm-trim", 3) == [
        b"adm-trim-2", b"adm-trim-3", b"adm-trim-4"]
    beyond = TopicPartition("adm-trim", 0, 99)
    with pytest.raises(KafkaException) as refused:
        ck_admin.delete_records([beyond], request_timeout=TIMEOUT)[beyond].result(TIMEOUT)
    assert refused.value.args[0].code() == KafkaError.OFFSET_OUT_OF_RANGE
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=TIMEOUT * 1000)
    try:
        out = admin.delete_records({KpTopicPartition("adm-trim", 0): 4})
        assert out[KpTopicPartition("adm-trim", 0)]["low_watermark"] == 4
    finally:
        admin.close()
    assert _consume_all(broker.bootstrap, "adm-trim", 1) == [b"adm-trim-4"]


def _roundtrip(bootstrap: str, request: Any, version: int, response_type: Any) -> Any:
    key = request.API_KEY
    header = RequestHeader(key, version, 11, "admin-test").encode(
        request_header_version(key, version))
    body = header + request.encode(version)
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
        sock.settimeout(TIMEOUT)
        sock.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", recv_exact(sock, 4))[0]
        frame = recv_exact(sock, size)
    head, pos = ResponseHeader.decode_from(frame, 0, response_header_version(key, version))
    assert head.correlation_id == 11
    return response_type.decode(frame[pos:], version)


def _epoch_end(bootstrap: str, v: int, epoch: int) -> tuple[Any, Any]:
    """OffsetForLeaderEpoch v`v` for adm-epoch/0 at `epoch`, and for a partition that does not
    exist (7): their two answers."""
    req = ofe.OffsetForLeaderEpochRequest(replica_id=-1 if v >= 3 else -2, topics=(
        ofe.OffsetForLeaderTopic("adm-epoch", (ofe.OffsetForLeaderPartition(0, -1, epoch),
                                               ofe.OffsetForLeaderPartition(7, -1, 0))),))
    first, second = _roundtrip(bootstrap, req, v, ofe.OffsetForLeaderEpochResponse
                               ).topics[0].partitions
    return first, second


@pytest.mark.timeout(60)
def test_offset_for_leader_epoch_raw(broker: BrokerProcess) -> None:
    _fill(broker.bootstrap, "adm-epoch")  # high watermark 5
    lo, hi = ADVERTISED[ApiKey.OFFSET_FOR_LEADER_EPOCH]
    for v in range(lo, hi + 1):
        # The partition's leader wrote every batch in its term (ListOffsets says which): that
        # epoch ends at the log end (5); epoch 0, older than any, ends where the first begins.
        (latest,) = _roundtrip(broker.bootstrap, lo_wire.ListOffsetsRequest(
            replica_id=-1, topics=(lo_wire.ListOffsetsTopic("adm-epoch", (
                lo_wire.ListOffsetsPartition(0, -1, -1),)),)),
            4, lo_wire.ListOffsetsResponse).topics[0].partitions
        term = latest.leader_epoch
        assert term >= 1 and latest.offset == 5
        ok, missing = _epoch_end(broker.bootstrap, v, term)
        older, _ = _epoch_end(broker.bootstrap, v, 0)
        assert (ok.error_code, ok.leader_epoch, ok.end_offset) == (0, term, 5)
        assert (older.error_code, older.leader_epoch, older.end_offset) == (0, 0, 0)
        assert missing.error_code == 3  # UNKNOWN_TOPIC_OR_PARTITION
        if v >= 2:  # current_leader_epoch newer than the partition's term: unknown
            ahead = _roundtrip(broker.bootstrap, ofe.OffsetForLeaderEpochRequest(
                replica_id=-1 if v >= 3 else -2, topics=(ofe.OffsetForLeaderTopic(
                    "adm-epoch", (ofe.OffsetForLeaderPartition(0, term + 1, term),)),)),
                v, ofe.OffsetForLeaderEpochResponse)
            assert ahead.topics[0].partitions[0].error_code == 75  # UNKNOWN_LEADER_EPOCH
