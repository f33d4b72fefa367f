"""Kafka's config surface against real clients (issue 17), one broker (two cores) started with
`--default-partitions 3`: DescribeConfigs lists every Kafka 3.9 topic config with its source,
type, synonyms and documentation; alters are validated per Kafka type (valid values accepted
and described, invalid ones INVALID_CONFIG, nothing applied); a broker lists its settings under
Kafka names and refuses alters as Kafka refuses a config it cannot change dynamically;
num.partitions serves auto-create and CreateTopics asking -1; message.timestamp.before.max.ms
refuses old records (INVALID_TIMESTAMP); compression.type makes the broker store its codec;
CreatePartitions' new partitions take produce and ListOffsets on every core right after the
answer."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from broker_proc import BrokerProcess
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
)
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition
from kafka.admin import ConfigResource as KpConfigResource
from kafka.admin import ConfigResourceType as KpResourceType
from kafka.admin import KafkaAdminClient

from redshank.protocol.errors import CorruptBatchError
from redshank.protocol.record_batch import Compression, validate_batch

TIMEOUT = 20
SET = AlterConfigOpType.SET

# Kafka 3.9's topic configs (LogConfig): every one is described.
KAFKA_TOPIC_CONFIGS = {
    "cleanup.policy", "compression.type", "compression.gzip.level", "compression.lz4.level",
    "compression.zstd.level", "delete.retention.ms", "file.delete.delay.ms", "flush.messages",
    "flush.ms", "follower.replication.throttled.replicas", "index.interval.bytes",
    "leader.replication.throttled.replicas", "local.retention.bytes", "local.retention.ms",
    "max.compaction.lag.ms", "max.message.bytes", "message.downconversion.enable",
    "message.format.version", "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms", "message.timestamp.difference.max.ms",
    "message.timestamp.type", "min.cleanable.dirty.ratio", "min.compaction.lag.ms",
    "min.insync.replicas", "preallocate", "remote.log.copy.disable",
    "remote.log.delete.on.disable", "remote.storage.enable", "retention.bytes", "retention.ms",
    "segment.bytes", "segment.index.bytes", "segment.jitter.ms", "segment.ms",
    "unclean.leader.election.enable"}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    proc = BrokerProcess(tmp_path_factory.mktemp("compat") / "data", cores=2,
                         extra_args=("--default-partitions", "3",
                                     "--group-initial-rebalance-delay-ms", "200"))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture()
def admin(node: BrokerProcess) -> AdminClient:
    return AdminClient({"bootstrap.servers": node.bootstrap})


def _create(admin: AdminClient, topic: NewTopic) -> None:
    for fut in admin.create_topics([topic], request_timeout=TIMEOUT).values():
        fut.result(TIMEOUT)


def _describe(admin: AdminClient, resource: ConfigResource) -> dict[str, ConfigEntry]:
    futs = admin.describe_configs([resource], request_timeout=TIMEOUT)
    entries: dict[str, ConfigEntry] = next(iter(futs.values())).result(TIMEOUT)
    return entries


def _alter(admin: AdminClient, resource: ConfigResource) -> None:
    for fut in admin.incremental_alter_configs([resource], request_timeout=TIMEOUT).values():
        fut.result(TIMEOUT)


def _partitions(admin: AdminClient, topic: str) -> int:
    return len(admin.list_topics(topic, timeout=TIMEOUT).topics[topic].partitions)


@pytest.mark.timeout(60)
def test_describe_lists_every_topic_config_with_source_and_synonyms(
        node: BrokerProcess, admin: AdminClient) -> None:
    _create(admin, NewTopic("compat-describe", 1, config={"min.insync.replicas": "1",
                                                          "preallocate": "true"}))
    # librdkafka asks for synonyms on every DescribeConfigs (v1+).
    seen = _describe(admin, ConfigResource("topic", "compat-describe"))
    assert set(seen) == KAFKA_TOPIC_CONFIGS
    dynamic, static, default = (ConfigSource.DYNAMIC_TOPIC_CONFIG.value,
                                ConfigSource.STATIC_BROKER_CONFIG.value,
                                ConfigSource.DEFAULT_CONFIG.value)
    pre = seen["preallocate"]
    assert (pre.value, pre.source, pre.is_default, pre.is_read_only) == ("true", dynamic, False,
                                                                         False)
    assert [(s.name, s.value, s.source) for s in pre.synonyms.values()] == [
        ("preallocate", "true", dynamic), ("log.preallocate", "false", default)]
    retention = seen["retention.ms"]
    assert (retention.value, retention.source) == ("-1", static)
    assert (seen["compression.type"].value, seen["compression.type"].source) == ("producer",
                                                                                 default)
    assert seen["max.message.bytes"].synonyms["message.max.bytes"].value == "1048588"
    assert not any(e.is_sensitive for e in seen.values())

    # kafka-python: the synonyms as a list (precedence order), the config types (KIP-569) and
    # the "modified" filter.
    kp = KafkaAdminClient(bootstrap_servers=node.bootstrap, request_timeout_ms=TIMEOUT * 1000)
    try:
        resource = KpConfigResource(KpResourceType.TOPIC, "compat-describe")
        every = kp.describe_configs([resource], include_synonyms=True, config_filter="all"
                                    )["topic"]["compat-describe"]
        assert [(s["name"], s["value"], s["source"])
                for s in every["retention.ms"]["synonyms"]] == [
            ("log.retention.ms", "-1", "STATIC_BROKER_CONFIG"),
            ("log.retention.ms", "604800000", "DEFAULT_CONFIG")]
        types = {name: c["config_type"] for name, c in every.items()}
        assert (types["preallocate"], types["min.insync.replicas"], types["retention.ms"],
                types["min.cleanable.dirty.ratio"], types["cleanup.policy"],
                types["compression.type"]) == ("BOOLEAN", "INT", "LONG", "DOUBLE", "LIST",
                                               "STRING")
        modified = kp.describe_configs([resource])["topic"]["compat-describe"]
        assert set(modified) == {"min.insync.replicas", "preallocate"}
    finally:
        kp.close()


# (config, a valid value, an invalid one) per Kafka type and validator.
_BY_TYPE = [
    ("unclean.leader.election.enable", "true", "yes"),  # BOOLEAN
    ("min.insync.replicas", "2", "0"),  # INT, atLeast(1)
    ("index.interval.bytes", "8192", "2147483648"),  # INT overflow
    ("delete.retention.ms", "1000", "-1"),  # LONG, atLeast(0)
    ("local.retention.ms", "-2", "-3"),  # LONG, atLeast(-2)
    ("min.cleanable.dirty.ratio", "0.25", "1.5"),  # DOUBLE, between(0, 1)
    ("cleanup.policy", "compact", "shred"),  # LIST, ValidList
    ("compression.type", "zstd", "brotli"),  # STRING, ValidString
    ("compression.gzip.level", "9", "0"),  # INT, the gzip level validator
    ("leader.replication.throttled.replicas", "0:0", "zero"),  # throttled replica list
    ("message.format.version", "3.0-IV1", "x.y"),  # MetadataVersionValidator
]


@pytest.mark.timeout(60)
def test_alter_validates_each_type_as_kafka(admin: AdminClient) -> None:
    _create(admin, NewTopic("compat-types", 1))
    resource = ConfigResource("topic", "compat-types")
    for name, good, bad in _BY_TYPE:
        with pytest.raises(KafkaException) as refused:
            _alter(admin, ConfigResource("topic", "compat-types", incremental_configs=[
                ConfigEntry(name, bad, incremental_operation=SET)]))
        error: KafkaError = refused.value.args[0]
        assert error.code() == KafkaError.INVALID_CONFIG, (name, bad, error)
        assert name in error.str()
        _alter(admin, ConfigResource("topic", "compat-types", incremental_configs=[
            ConfigEntry(name, good, incremental_operation=SET)]))
    seen = _describe(admin, resource)
    assert {n: seen[n].value for n, _, _ in _BY_TYPE} == {n: v for n, v, _ in _BY_TYPE}
    # Kafka's cross-config rule (LogConfig.validateValues).
    with pytest.raises(KafkaException) as refused:
        _alter(admin, ConfigResource("topic", "compat-types", incremental_configs=[
            ConfigEntry("min.compaction.lag.ms", "10", incremental_operation=SET),
            ConfigEntry("max.compaction.lag.ms", "5", incremental_operation=SET)]))
    assert refused.value.args[0].code() == KafkaError.INVALID_CONFIG
    # Topic creation takes the same rules.
    fut = admin.create_topics([NewTopic("compat-types-bad", 1, config={"preallocate": "1"})],
                              request_timeout=TIMEOUT)["compat-types-bad"]
    with pytest.raises(KafkaException) as refused:
        fut.result(TIMEOUT)
    assert refused.value.args[0].code() == KafkaError.INVALID_CONFIG


@pytest.mark.timeout(60)
def test_broker_configs_described_and_alters_refused(node: BrokerProcess,
                                                     admin: AdminClient) -> None:
    seen = _describe(admin, ConfigResource("broker", "0"))
    static, default = ConfigSource.STATIC_BROKER_CONFIG.value, ConfigSource.DEFAULT_CONFIG.value
    got = {n: (seen[n].value, seen[n].source) for n in (
        "num.partitions", "default.replication.factor", "auto.create.topics.enable",
        "message.max.bytes", "log.retention.ms", "log.segment.bytes", "compression.type",
        "group.initial.rebalance.delay.ms")}
    assert got == {
        "num.partitions": ("3", static), "default.replication.factor": ("1", default),
        "auto.create.topics.enable": ("true", default), "message.max.bytes": ("1048588", default),
        "log.retention.ms": ("-1", static), "log.segment.bytes": (str(128 << 20), static),
        "compression.type": ("producer", default),
        "group.initial.rebalance.delay.ms": ("200", static)}
    assert all(e.is_read_only for e in seen.values())
    assert seen["listeners"].value == f"PLAINTEXT://{node.bootstrap}"

    for name, value in (("num.partitions", "5"), ("log.retention.ms", "1000")):
        with pytest.raises(KafkaException) as refused:
            _alter(admin, ConfigResource("broker", "0", incremental_configs=[
                ConfigEntry(name, value, incremental_operation=SET)]))
        error: KafkaError = refused.value.args[0]
        assert error.code() == KafkaError.INVALID_REQUEST and name in error.str()
    assert _describe(admin, ConfigResource("broker", "0"))["num.partitions"].value == "3"


@pytest.mark.timeout(60)
def test_num_partitions_serves_auto_create_and_minus_one(node: BrokerProcess,
                                                         admin: AdminClient) -> None:
    _create(admin, NewTopic("compat-minus-one"))  # num_partitions -1, replication_factor -1
    assert _partitions(admin, "compat-minus-one") == 3
    producer = Producer({"bootstrap.servers": node.bootstrap, "acks": "all"})
    producer.produce("compat-auto", value=b"x")  # Metadata auto-creates the topic
    assert producer.flush(TIMEOUT) == 0
    assert _partitions(admin, "compat-auto") == 3


@pytest.mark.timeout(60)
def test_timestamp_before_max_refuses_old_records(node: BrokerProcess,
                                                  admin: AdminClient) -> None:
    _create(admin, NewTopic("compat-ts", 1, config={
        "message.timestamp.before.max.ms": "3600000"}))
    producer = Producer({"bootstrap.servers": node.bootstrap, "acks": "all", "linger.ms": 0})
    errors: list[KafkaError | None] = []
    now = int(time.time() * 1000)
    for ts in (now - 2 * 3_600_000, now):
        producer.produce("compat-ts", value=b"x", partition=0, timestamp=ts,
                         on_delivery=lambda err, _msg: errors.append(err))
        assert producer.flush(TIMEOUT) == 0
    assert errors[0] is not None and errors[0].code() == KafkaError.INVALID_TIMESTAMP
    assert errors[1] is None


def _stored_codecs(node: BrokerProcess, topic: str) -> list[int]:
    directory = Path(node.data_dir) / "kafka" / f"{topic}-0"
    out = []
    for path in sorted(directory.glob("*.log")):
        data, pos = path.read_bytes(), 0
        while pos < len(data):  # a segment file may be preallocated past its last batch
            try:
                h = validate_batch(data, pos)
            except CorruptBatchError:
                break
            out.append(h.compression)
            pos += h.size
    return out


@pytest.mark.timeout(60)
def test_compression_type_is_the_codec_stored(node: BrokerProcess, admin: AdminClient) -> None:
    _create(admin, NewTopic("compat-gzip", 1, config={"compression.type": "gzip"}))
    producer = Producer({"bootstrap.servers": node.bootstrap, "acks": "all",
                         "compression.type": "lz4", "linger.ms": 0})
    for i in range(3):
        producer.produce("compat-gzip", value=b"%d" % i + b"z" * 1000, partition=0)
        assert producer.flush(TIMEOUT) == 0
    codecs = _stored_codecs(node, "compat-gzip")
    assert codecs == [Compression.GZIP] * 3
    consumer = KafkaConsumer(bootstrap_servers=node.bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=TIMEOUT * 1000, enable_auto_commit=False)
    try:
        consumer.assign([KpTopicPartition("compat-gzip", 0)])
        values = []
        for record in consumer:
            values.append(record.value)
            if len(values) == 3:
                break
        assert values == [b"%d" % i + b"z" * 1000 for i in range(3)]
    finally:
        consumer.close()


def _first_use_of_new_partition(node: BrokerProcess, topic: str, count: int
                                ) -> list[KafkaError | None]:
    """Poll Metadata until `topic` shows `count` partitions, then at once produce to the last
    one (no client retry: the broker's first answer is what the client gets). Bounded."""
    admin = AdminClient({"bootstrap.servers": node.bootstrap})
    deadline = time.monotonic() + TIMEOUT
    while _partitions(admin, topic) < count and time.monotonic() < deadline:
        pass
    errors: list[KafkaError | None] = []
    producer = Producer({"bootstrap.servers": node.bootstrap, "acks": "all", "linger.ms": 0,
                         "retries": 0, "enable.idempotence": False})
    producer.produce(topic, value=b"first", partition=count - 1,
                     on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(TIMEOUT)
    return errors


@pytest.mark.timeout(90)
def test_new_partitions_serve_the_moment_metadata_shows_them(node: BrokerProcess,
                                                             admin: AdminClient) -> None:
    for round_ in range(3):
        topic = f"compat-race-{round_}"
        _create(admin, NewTopic(topic, 1))
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            watcher = pool.submit(_first_use_of_new_partition, node, topic, 8)
            for fut in admin.create_partitions([NewPartitions(topic, 8)],
                                               request_timeout=TIMEOUT).values():
                fut.result(TIMEOUT)
            assert watcher.result(TIMEOUT * 2) == [None]


@pytest.mark.timeout(90)
def test_created_partitions_serve_at_once_on_every_core(node: BrokerProcess,
                                                        admin: AdminClient) -> None:
    _create(admin, NewTopic("compat-grow", 1))
    # Several connections, so sessions on both cores have the topic cached before it grows.
    producers = [Producer({"bootstrap.servers": node.bootstrap, "acks": "all", "linger.ms": 0})
                 for _ in range(4)]
    for p in producers:
        p.produce("compat-grow", value=b"before", partition=0)
        assert p.flush(TIMEOUT) == 0
    for fut in admin.create_partitions([NewPartitions("compat-grow", 6)],
                                       request_timeout=TIMEOUT).values():
        fut.result(TIMEOUT)
    assert _partitions(admin, "compat-grow") == 6
    for _ in range(4):  # fresh connections: any core answers
        consumer = Consumer({"bootstrap.servers": node.bootstrap, "group.id": "compat-grow"})
        try:
            for partition in range(1, 6):
                low, high = consumer.get_watermark_offsets(
                    TopicPartition("compat-grow", partition), timeout=TIMEOUT)
                assert low == 0 and high >= 0
        finally:
            consumer.close()
    # Fresh producers (a producer's own metadata would not know the new partitions yet); the
    # topic caches they meet on the broker's cores are the ones warmed above.
    errors: list[KafkaError | None] = []
    for i in range(4):
        p = Producer({"bootstrap.servers": node.bootstrap, "acks": "all", "linger.ms": 0})
        p.produce("compat-grow", value=b"after", partition=2 + i,
                  on_delivery=lambda err, _msg: errors.append(err))
        assert p.flush(TIMEOUT) == 0
    assert errors == [None] * 4


@pytest.mark.timeout(60)
def test_kafka_python_describe_topic_partitions_pages(node: BrokerProcess,
                                                      admin: AdminClient) -> None:
    _create(admin, NewTopic("compat-dtp-a", 3))
    _create(admin, NewTopic("compat-dtp-b", 2))
    kp = KafkaAdminClient(bootstrap_servers=node.bootstrap, request_timeout_ms=TIMEOUT * 1000)
    try:
        names = ["compat-dtp-b", "compat-dtp-a", "compat-dtp-none"]
        first = kp.describe_topic_partitions(names, response_partition_limit=4)
        got = [(t["name"], t["error_code"], [p["partition_index"] for p in t["partitions"]])
               for t in first["topics"]]
        assert got == [("compat-dtp-a", 0, [0, 1, 2]), ("compat-dtp-b", 0, [0])]
        assert first["next_cursor"] == {"topic_name": "compat-dtp-b", "partition_index": 1}
        rest = kp.describe_topic_partitions(names, cursor=first["next_cursor"])
        got = [(t["name"], t["error_code"], [p["partition_index"] for p in t["partitions"]])
               for t in rest["topics"]]
        assert got == [("compat-dtp-b", 0, [1]), ("compat-dtp-none", 3, [])]
        assert rest["next_cursor"] is None
        part = rest["topics"][0]["partitions"][0]
        assert (part["leader_id"], part["replica_nodes"], part["isr_nodes"]) == (0, [0], [0])
    finally:
        kp.close()
