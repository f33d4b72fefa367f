"""The Kafka probe's words (actors/kafka_probe.py) through a real stats block (shared memory):
what the session and the disk writer increment is what the admin API decodes."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import posix_ipc
import pytest

from redshank.actors.kafka_probe import BUCKETS_S, KafkaProbe, decode_counters, kafka_probe
from redshank.actors.runtime import process_counters
from redshank.actors.runtime.stats_block import StatsReader, StatsWriter
from redshank.protocol.api_versions import ApiKey
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages.create_topics import CreatableTopicResult, CreateTopicsResponse
from redshank.protocol.messages.heartbeat import HeartbeatResponse
from redshank.protocol.messages.produce import (
    PartitionProduceResponse,
    ProduceResponse,
    TopicProduceResponse,
)


@pytest.fixture
def block() -> Iterator[tuple[StatsWriter, StatsReader]]:
    name = f"/rstest-{uuid.uuid4().hex[:12]}"
    writer = StatsWriter(name)
    reader = StatsReader(name)
    try:
        yield writer, reader
    finally:
        reader.close()
        writer.close()
        posix_ipc.unlink_shared_memory(name)


def _produce(*codes: int) -> ProduceResponse:
    parts = tuple(PartitionProduceResponse(index=i, error_code=c) for i, c in enumerate(codes))
    return ProduceResponse(responses=(TopicProduceResponse(name="t", partition_responses=parts),))


def test_requests_latency_and_flushes_round_trip(block: tuple[StatsWriter, StatsReader]
                                                 ) -> None:
    writer, reader = block
    assert process_counters() is writer.counters  # a core's probe writes into its block
    probe = kafka_probe()
    now = time.perf_counter_ns()
    probe.request(ApiKey.PRODUCE, _produce(0, 0), now - 3_000_000)  # 3 ms ago
    probe.request(ApiKey.PRODUCE, _produce(0, ErrorCode.NOT_LEADER_OR_FOLLOWER), now)
    probe.request(ApiKey.HEARTBEAT, HeartbeatResponse(error_code=ErrorCode.UNKNOWN_MEMBER_ID),
                  now)
    probe.request(ApiKey.CREATE_TOPICS, CreateTopicsResponse(topics=(
        CreatableTopicResult(name="a"),
        CreatableTopicResult(name="b", error_code=ErrorCode.TOPIC_ALREADY_EXISTS))), now)
    probe.flush(20_000_000)  # 20 ms
    got = decode_counters(reader.counters())
    assert got.requests == {
        (ApiKey.PRODUCE, 0): 1, (ApiKey.PRODUCE, ErrorCode.NOT_LEADER_OR_FOLLOWER): 1,
        (ApiKey.HEARTBEAT, ErrorCode.UNKNOWN_MEMBER_ID): 1,
        (ApiKey.CREATE_TOPICS, ErrorCode.TOPIC_ALREADY_EXISTS): 1}
    produce = got.latency[ApiKey.PRODUCE]
    assert sum(produce.counts) == 2 and produce.sum_s >= 0.003
    slow = next(i for i, b in enumerate(BUCKETS_S) if b >= 0.003)
    assert sum(produce.counts[slow:]) >= 1  # the 3 ms one is not in a faster bucket
    assert got.flush.counts[BUCKETS_S.index(0.025)] == 1 and got.flush.sum_s == 0.02


def test_unknown_keys_and_codes_stay_in_bounds() -> None:
    words = memoryview(bytearray(len(process_counters()) * 8)).cast("Q")
    probe = KafkaProbe(words)
    probe.request(200, HeartbeatResponse(), time.perf_counter_ns())  # not counted
    probe.request(ApiKey.HEARTBEAT, HeartbeatResponse(error_code=999), time.perf_counter_ns())
    got = decode_counters(words.tolist())
    assert got.requests == {(ApiKey.HEARTBEAT, 130): 1}  # the last slot takes higher codes
    assert decode_counters([]).requests == {}  # a core without a block


def test_tables_document_round_trips(block: tuple[StatsWriter, StatsReader]) -> None:
    writer, reader = block
    assert reader.read_tables() is None
    assert writer.publish_tables({"partitions": [{"topic": "t", "partition": 0}]})
    assert reader.read_tables() == {"partitions": [{"topic": "t", "partition": 0}]}
    assert not writer.publish_tables({"big": "x" * (2 << 20)})  # refused, the old one stays
    assert reader.read_tables() == {"partitions": [{"topic": "t", "partition": 0}]}
