"""The sans-IO Kafka handlers: request planning (routing by the shard table, errors decided
without a log) and response building, per API."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

from redshank.cluster.kafka import TopicInfo
from redshank.cluster.kafka.fetch_session import requested
from redshank.cluster.kafka.handlers import (
    api_versions,
    create_topics,
    fetch,
    list_offsets,
    metadata,
    produce,
)
from redshank.cluster.kafka.handlers._unsure import not_leader_if_unsure
from redshank.cluster.partition import api as papi
from redshank.protocol.api_versions import ApiKey
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages.api_versions import ApiVersionsRequest
from redshank.protocol.messages.create_topics import (
    CreatableTopic,
    CreatableTopicConfig,
    CreateTopicsRequest,
)
from redshank.protocol.messages.fetch import FetchPartition, FetchRequest, FetchTopic
from redshank.protocol.messages.list_offsets import (
    ListOffsetsPartition,
    ListOffsetsRequest,
    ListOffsetsTopic,
)
from redshank.protocol.messages.metadata import MetadataRequest, MetadataRequestTopic
from redshank.protocol.messages.produce import (
    PartitionProduceData,
    ProduceRequest,
    TopicProduceData,
)
from redshank.protocol.record_batch import Compression, set_base_offset
from redshank.protocol.records import ControlType, Record, build_batch, build_control_batch

T1 = TopicInfo("t1", uuid.UUID(int=1), (0, 1), ())
SMALL = TopicInfo("small", uuid.UUID(int=2), (1,), (("max.message.bytes", "200"),))
TOPICS: dict[str, TopicInfo | None] = {"t1": T1, "small": SMALL}


def _batch(n: int = 3, producer_id: int = -1, seq: int = -1, size: int = 10) -> bytes:
    return build_batch([Record(i, 1000 + i, b"k", b"v" * size) for i in range(n)],
                       producer_id=producer_id, producer_epoch=0 if producer_id >= 0 else -1,
                       base_sequence=seq)


def _produce(records: bytes | None, topic: str = "t1", partition: int = 1, acks: int = -1
             ) -> ProduceRequest:
    return ProduceRequest(acks=acks, timeout_ms=1000, topic_data=(
        TopicProduceData(topic, (PartitionProduceData(partition, records),)),))


def test_api_versions_offers_only_served_apis() -> None:
    served = frozenset({ApiKey.PRODUCE, ApiKey.JOIN_GROUP, ApiKey.API_VERSIONS})
    resp = api_versions.handle(ApiVersionsRequest(), 3, served)
    keys = {k.api_key for k in resp.api_keys}
    assert keys == set(served)
    assert ApiKey.SASL_HANDSHAKE not in keys and ApiKey.JOIN_GROUP in keys
    assert resp.supported_features == () and resp.finalized_features == ()  # notes G2


def test_metadata_null_vs_empty_topics_per_version() -> None:
    q_all = metadata.query(MetadataRequest(topics=None), 12, True)
    assert q_all.names is None
    assert metadata.query(MetadataRequest(topics=()), 12, True).names == ()
    assert metadata.query(MetadataRequest(topics=()), 0, True).names is None  # v0: [] = all


def test_metadata_auto_create_respects_request_and_broker() -> None:
    req = MetadataRequest(topics=(MetadataRequestTopic(name="new"),
                                  MetadataRequestTopic(name="bad name")),
                          allow_auto_topic_creation=True)
    assert metadata.query(req, 12, True).create == ("new",)
    assert metadata.query(req, 12, False).create == ()
    no = MetadataRequest(topics=(MetadataRequestTopic(name="new"),),
                         allow_auto_topic_creation=False)
    assert metadata.query(no, 12, True).create == ()


def test_metadata_build_errors_ids_and_operations() -> None:
    broker = metadata.BrokerAddress(3, "h", 9)
    req = MetadataRequest(topics=(MetadataRequestTopic(name="t1"),
                                  MetadataRequestTopic(name="gone"),
                                  MetadataRequestTopic(name="b@d"),
                                  MetadataRequestTopic(name="small")))
    q = metadata.query(req, 12, False)
    resp = metadata.build(req, 12, broker, "cid", q, {"t1": T1, "small": SMALL},
                          frozenset({"small"}))
    by = {t.name: t for t in resp.topics}
    assert by["t1"].error_code == 0 and by["t1"].topic_id == T1.topic_id
    assert [p.leader_id for p in by["t1"].partitions] == [3, 3]
    assert by["gone"].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert by["b@d"].error_code == ErrorCode.INVALID_TOPIC_EXCEPTION
    assert by["small"].error_code == ErrorCode.LEADER_NOT_AVAILABLE
    assert all(t.topic_authorized_operations == -(2**31) for t in resp.topics)  # notes G14
    assert resp.brokers[0].host == "h" and resp.controller_id == 3
    for v in range(13):
        resp.encode(v)


def test_metadata_with_the_cluster_keeps_order_and_answers_controller_topics() -> None:
    rid = uuid.UUID(int=77)
    cluster = metadata.ClusterView(
        (metadata.BrokerAddress(1, "a", 1), metadata.BrokerAddress(2, "b", 2)), 2,
        {"rep": metadata.ReplicatedTopic(rid, (
            metadata.ReplicatedPartition((2, 1), 1, 4),
            metadata.ReplicatedPartition((1, 2), -1, -1)))})
    req = MetadataRequest(topics=(MetadataRequestTopic(name="rep"),
                                  MetadataRequestTopic(name="t1")))
    q = metadata.query(req, 12, True)
    local = metadata.local_query(q, cluster)
    assert local.names == ("t1",) and local.create == ("t1",)  # never created locally
    resp = metadata.with_cluster(
        metadata.build(req, 12, metadata.BrokerAddress(1, "a", 1), "cid", local, {"t1": T1}),
        q, cluster)
    assert [t.name for t in resp.topics] == ["rep", "t1"]
    assert [(b.node_id, b.host) for b in resp.brokers] == [(1, "a"), (2, "b")]
    assert resp.controller_id == 2 and resp.cluster_id == "cid"
    rep = resp.topics[0]
    assert rep.topic_id == rid
    assert [(p.leader_id, p.leader_epoch, p.replica_nodes, p.error_code)
            for p in rep.partitions] == [(1, 4, (2, 1), 0),
                                         (-1, -1, (1, 2), ErrorCode.LEADER_NOT_AVAILABLE)]
    q_all = metadata.query(MetadataRequest(topics=None), 12, True)
    assert metadata.local_query(q_all, cluster) == q_all
    every = metadata.with_cluster(
        metadata.build(req, 12, metadata.BrokerAddress(1, "a", 1), "cid", q_all, {"t1": T1}),
        q_all, cluster)
    assert [t.name for t in every.topics] == ["rep", "t1"]
    for v in range(13):
        resp.encode(v)


def test_metadata_while_the_table_is_unreachable_and_a_core_is_down() -> None:
    """Issue 12: a name the table could not be asked about is LEADER_NOT_AVAILABLE, never
    UNKNOWN_TOPIC_OR_PARTITION; a known topic keeps its partitions, those of a core that is
    down without a leader (LEADER_NOT_AVAILABLE, leader -1, replica offline)."""
    broker = metadata.BrokerAddress(3, "h", 9)
    req = MetadataRequest(topics=(MetadataRequestTopic(name="t1"),
                                  MetadataRequestTopic(name="not-cached")))
    q = metadata.query(req, 12, True)
    resp = metadata.build(req, 12, broker, None, q, {"t1": T1}, frozenset({"not-cached"}),
                          frozenset({1}))
    by = {t.name: t for t in resp.topics}
    assert by["not-cached"].error_code == ErrorCode.LEADER_NOT_AVAILABLE
    assert by["t1"].error_code == 0
    p0, p1 = by["t1"].partitions  # T1: partition 0 on core 0, partition 1 on core 1
    assert (p0.error_code, p0.leader_id, p0.isr_nodes) == (0, 3, (3,))
    assert (p1.error_code, p1.leader_id, p1.isr_nodes, p1.offline_replicas) == (
        ErrorCode.LEADER_NOT_AVAILABLE, -1, (), (3,))
    assert resp.cluster_id is None
    everything = metadata.build(MetadataRequest(topics=None), 12, broker, "cid",
                                metadata.query(MetadataRequest(topics=None), 12, True),
                                {"t1": T1, "small": SMALL})
    assert [t.name for t in everything.topics] == ["small", "t1"]
    for v in range(13):
        resp.encode(v)


def test_partitions_of_unsure_topics_answer_not_leader() -> None:
    req = ListOffsetsRequest(topics=(
        ListOffsetsTopic("unsure", (ListOffsetsPartition(0, timestamp=-1),)),
        ListOffsetsTopic("gone", (ListOffsetsPartition(0, timestamp=-1),)),
        ListOffsetsTopic("t1", (ListOffsetsPartition(5, timestamp=-1),
                                ListOffsetsPartition(0, timestamp=-9)))))
    queries, results = list_offsets.plan(req, 7, {"unsure": None, "gone": None, "t1": T1})
    not_leader_if_unsure(results, frozenset({"unsure"}),
                         lambda _tp: papi.OffsetAnswer(ErrorCode.NOT_LEADER_OR_FOLLOWER))
    assert queries == []
    assert {tp: r.error_code for tp, r in results.items()} == {
        ("unsure", 0): ErrorCode.NOT_LEADER_OR_FOLLOWER,
        ("gone", 0): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        ("t1", 5): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,  # t1 is known: partition 5 is not
        ("t1", 0): ErrorCode.UNSUPPORTED_VERSION,
    }


def test_produce_routes_by_shard_table_and_extracts_producer() -> None:
    writes, done = produce.plan(_produce(_batch(producer_id=7, seq=10)), TOPICS)
    assert done == {}
    (w,) = writes
    assert (w.topic, w.partition, w.core) == ("t1", 1, 1)
    assert w.producer == papi.ProducerBatch(7, 0, 10, 12)


def test_produce_errors_without_touching_a_log() -> None:
    corrupt = bytearray(_batch())
    corrupt[-1] ^= 0xFF
    control = build_control_batch(ControlType.COMMIT, producer_id=1, producer_epoch=0,
                                  coordinator_epoch=0, timestamp=0)
    cases = {
        ErrorCode.CORRUPT_MESSAGE: _produce(bytes(corrupt)),
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION: _produce(_batch(), partition=5),
        ErrorCode.INVALID_RECORD: _produce(control),
        ErrorCode.MESSAGE_TOO_LARGE: _produce(_batch(size=300), topic="small", partition=0),
        ErrorCode.INVALID_REQUIRED_ACKS: _produce(_batch(), acks=2),
    }
    for code, req in cases.items():
        writes, done = produce.plan(req, TOPICS)
        assert writes == [], code
        assert [r.error_code for r in done.values()] == [code]
    truncated = produce.plan(_produce(_batch()[:-3]), TOPICS)[1]
    assert [r.error_code for r in truncated.values()] == [ErrorCode.CORRUPT_MESSAGE]
    missing = produce.plan(_produce(_batch(), topic="nope"), {"nope": None})[1]
    assert [r.error_code for r in missing.values()] == [ErrorCode.UNKNOWN_TOPIC_OR_PARTITION]


def test_produce_build_keeps_request_order() -> None:
    req = ProduceRequest(acks=1, topic_data=(
        TopicProduceData("t1", (PartitionProduceData(1, b""), PartitionProduceData(0, b""))),))
    resp = produce.build(req, {("t1", 1): papi.PartitionResult(0, 5, 0),
                               ("t1", 0): papi.PartitionResult(3)})
    parts = resp.responses[0].partition_responses
    assert [(p.index, p.error_code, p.base_offset) for p in parts] == [(1, 0, 5), (0, 3, -1)]
    for v in range(3, 10):
        resp.encode(v)


def test_fetch_plan_budget_and_build() -> None:
    req = FetchRequest(max_wait_ms=500, min_bytes=1, max_bytes=100, topics=(
        FetchTopic("t1", partitions=(FetchPartition(0, fetch_offset=4, partition_max_bytes=80),
                                     FetchPartition(1, fetch_offset=0, partition_max_bytes=80))),
        FetchTopic("nope", partitions=(FetchPartition(0),))))
    reads, done = fetch.plan(requested(req), {**TOPICS, "nope": None})
    assert [(r.partition, r.core, r.offset) for r in reads] == [(0, 0, 4), (1, 1, 0)]
    assert done[("nope", 0)].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    budget = fetch.FetchBudget(req)
    assert not budget.satisfied
    assert budget.limit(reads[0]) == 80
    budget.take(150)  # the first batch may exceed the budget (KIP-74)
    assert budget.satisfied and budget.limit(reads[1]) == 0
    results = {("t1", 0): papi.ReadResult(0, 9, 0, b"xx"),
               ("t1", 1): papi.ReadResult(0, 0, 0, b""), ("nope", 0): done[("nope", 0)]}
    resp = fetch.build(results, [("t1", 0), ("nope", 0), ("t1", 1)])
    assert resp.session_id == 0
    assert [(t.topic, [p.partition_index for p in t.partitions]) for t in resp.responses] == [
        ("t1", [0, 1]), ("nope", [0])]  # each topic once, in order of first appearance
    p0 = resp.responses[0].partitions[0]
    assert p0.high_watermark == p0.last_stable_offset == 9 and p0.aborted_transactions == ()
    for v in range(4, 13):
        resp.encode(v)


def test_list_offsets_plan_and_build() -> None:
    req = ListOffsetsRequest(topics=(ListOffsetsTopic("t1", (
        ListOffsetsPartition(0, timestamp=-2), ListOffsetsPartition(1, timestamp=-3),
        ListOffsetsPartition(2, timestamp=-1))),))
    queries, done = list_offsets.plan(req, 7, TOPICS)
    assert [(q.partition, q.timestamp) for q in queries] == [(0, -2), (1, -3)]
    assert done[("t1", 2)].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    old = list_offsets.plan(req, 2, TOPICS)[1]
    assert old[("t1", 1)].error_code == ErrorCode.UNSUPPORTED_VERSION  # -3 needs v7
    answers = {("t1", 0): papi.OffsetAnswer(0, 0),
               ("t1", 1): papi.OffsetAnswer(0, 4, 99), ("t1", 2): done[("t1", 2)]}
    for v in range(1, 8):  # every advertised version encodes
        resp = list_offsets.build(req, v, answers)
        resp.encode(v)
        assert [p.offset for p in resp.topics[0].partitions] == [0, 4, -1]


def test_create_topics_validation() -> None:
    req = CreateTopicsRequest(topics=(
        CreatableTopic("ok", num_partitions=-1, replication_factor=-1),
        CreatableTopic("dup", 1, 1), CreatableTopic("dup", 1, 1),
        CreatableTopic("bad/name", 1, 1),
        CreatableTopic("rf3", 1, 3),
        CreatableTopic("zero", 0, 1),
        CreatableTopic("cfg", 1, 1, configs=(CreatableTopicConfig("no.such", "1"),)),
        CreatableTopic("cfg-ok", 2, 1, configs=(CreatableTopicConfig("retention.ms", "1000"),)),
    ))
    specs, errors = create_topics.plan(req, default_partitions=3)
    assert [(s.name, s.partitions) for s in specs] == [("ok", 3), ("cfg-ok", 2)]
    assert specs[1].configs == (("retention.ms", "1000"),)
    assert {n: c for n, (c, _m) in errors.items()} == {
        "dup": ErrorCode.INVALID_REQUEST,
        "bad/name": ErrorCode.INVALID_TOPIC_EXCEPTION,
        "rf3": ErrorCode.INVALID_REPLICATION_FACTOR,
        "zero": ErrorCode.INVALID_PARTITIONS,
        "cfg": ErrorCode.INVALID_CONFIG,
    }
    info = TopicInfo("ok", uuid.UUID(int=5), (0, 1, 0), ())
    outcomes = {"ok": create_topics.CreateOutcome(0, None, info),
                "cfg-ok": create_topics.CreateOutcome(ErrorCode.TOPIC_ALREADY_EXISTS, "x", None)}
    resp = create_topics.build(req, errors, outcomes)
    by = {t.name: t for t in resp.topics}
    assert by["ok"].num_partitions == 3 and by["ok"].topic_id == info.topic_id
    assert by["cfg-ok"].error_code == ErrorCode.TOPIC_ALREADY_EXISTS
    for v in range(2, 8):
        resp.encode(v)


def test_fetch_plan_caps_each_partition_at_the_broker_limit() -> None:
    req = FetchRequest(max_bytes=50 << 20, topics=(FetchTopic(
        topic="t1", partitions=(FetchPartition(partition=0, fetch_offset=0,
                                              partition_max_bytes=10 << 20),
                               FetchPartition(partition=1, fetch_offset=0,
                                              partition_max_bytes=1000))),))
    reads, _done = fetch.plan(requested(req), TOPICS, partition_cap=1 << 20)
    assert [r.max_bytes for r in reads] == [1 << 20, 1000]
    assert [r.max_bytes for r in fetch.plan(requested(req), TOPICS)[0]] == [10 << 20, 1000]


def test_fetch_clip_keeps_whole_batches_and_at_least_the_first() -> None:
    a = build_batch([Record(0, 1, None, b"a" * 100)])
    b = build_batch([Record(1, 1, None, b"b" * 100)], base_offset=1)
    both = a + b
    assert fetch.clip(both, len(both)) is both
    assert bytes(fetch.clip(both, len(both) - 1)) == a
    assert bytes(fetch.clip(both, 10)) == a  # the first batch goes whole (KIP-74)


def test_fetch_session_error_response_has_no_partitions() -> None:
    resp = fetch.session_error(ErrorCode.FETCH_SESSION_ID_NOT_FOUND)
    assert (resp.error_code, resp.session_id, resp.responses) == (70, 0, ())
    for v in range(7, 13):
        resp.encode(v)


# --- produce validation (issue 12): CRC-valid batches that lie are refused before routing ---

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from poison import EXPECTED_CODE, LIES, POISON, batch, lie, seal  # noqa: E402

BIG = TopicInfo("big", uuid.UUID(int=3), (0,), (("max.message.bytes", str(8 << 20)),))


@pytest.mark.parametrize("name", sorted(EXPECTED_CODE))
def test_produce_refuses_lying_and_poison_batches(name: str) -> None:
    records = {**LIES, **POISON}[name]
    writes, done = produce.plan(_produce(records, topic="big", partition=0), {"big": BIG})
    assert writes == []
    (result,) = done.values()
    assert result.error_code == EXPECTED_CODE[name]
    assert result.error_message, name
    assert result.base_offset == -1


def test_produce_error_messages_say_what_was_wrong() -> None:
    def message(records: bytes) -> str:
        (result,) = produce.plan(_produce(records, topic="big", partition=0),
                                 {"big": BIG})[1].values()
        assert result.error_message is not None
        return result.error_message

    assert "lastOffsetDelta -1000" in message(LIES["negative_delta"])
    assert "codec 7" in message(POISON["codec_7"])
    assert "varint longer than 5 bytes" in message(POISON["varint_11_bytes"])
    assert "cap of 67108864" in message(POISON["zstd_bomb"])


def test_produce_accepts_one_batch_of_every_codec() -> None:
    for codec in Compression:
        writes, done = produce.plan(_produce(batch(50, compression=codec)), TOPICS)
        assert done == {} and len(writes) == 1, codec


def test_produce_takes_exactly_one_batch_per_partition() -> None:
    two = batch(2) + batch(2)
    (result,) = produce.plan(_produce(two), TOPICS)[1].values()
    assert result.error_code == ErrorCode.INVALID_RECORD
    assert "exactly one record batch" in (result.error_message or "")
    (empty,) = produce.plan(_produce(b""), TOPICS)[1].values()
    assert empty.error_code == ErrorCode.INVALID_RECORD


def test_produce_checks_kafka_header_rules() -> None:
    moved = bytearray(batch(2))
    set_base_offset(moved, 0, 5)  # outside the CRC
    no_seq_buf = bytearray(batch(2, producer_id=4))
    no_seq_buf[53:57] = b"\xff\xff\xff\xff"  # baseSequence -1
    cases = {"baseOffset 0": bytes(moved), "base sequence -1": seal(no_seq_buf),
             "not positive": lie(batch(2), count=0, last_offset_delta=-1)}
    for words, records in cases.items():
        (result,) = produce.plan(_produce(records), TOPICS)[1].values()
        assert result.error_code == ErrorCode.INVALID_RECORD, words
        assert words in (result.error_message or ""), result.error_message


def test_produce_bomb_above_max_message_bytes_is_refused_by_size_first() -> None:
    (result,) = produce.plan(_produce(POISON["gzip_bomb"]), TOPICS)[1].values()
    assert result.error_code == ErrorCode.MESSAGE_TOO_LARGE
    assert "max.message.bytes" in (result.error_message or "")


def test_produce_refuses_other_magics_as_kafka_does() -> None:
    old = bytearray(batch(2))
    old[16] = 1  # outside the CRC: only the magic check can tell
    (result,) = produce.plan(_produce(bytes(old)), TOPICS)[1].values()
    assert result.error_code == ErrorCode.INVALID_RECORD
    assert "magic 1" in (result.error_message or "")
