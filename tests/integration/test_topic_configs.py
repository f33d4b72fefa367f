"""Topic configs altered on a live broker (two cores) with real admin clients, and what the broker
does with them: IncrementalAlterConfigs (confluent-kafka, kafka-python) sets, appends and deletes
single configs; AlterConfigs (kafka-python, confluent-kafka) replaces the set; bad names, values
and topics are refused with the errors Kafka gives; a lowered max.message.bytes is enforced on
every core at once; segment.bytes and retention.bytes / retention.ms take effect on a topic that
already holds data (whole old segments deleted, consumers start at the new low watermark,
content intact); message.timestamp.type=LogAppendTime stamps batches with the broker's clock;
altered configs survive a restart."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from broker_proc import BrokerProcess
from confluent_kafka import (
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewTopic,
)
from kafka.admin import ConfigResource as KpConfigResource
from kafka.admin import ConfigResourceType as KpResourceType
from kafka.admin import KafkaAdminClient

TIMEOUT = 20
SET, DELETE, APPEND = AlterConfigOpType.SET, AlterConfigOpType.DELETE, AlterConfigOpType.APPEND


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    proc = BrokerProcess(tmp_path_factory.mktemp("configs") / "data", cores=2,
                         extra_args=("--retention-check-ms", "100"))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture()
def admin(node: BrokerProcess) -> AdminClient:
    return AdminClient({"bootstrap.servers": node.bootstrap})


def _create(admin: AdminClient, name: str, partitions: int = 1,
            config: dict[str, str] | None = None) -> None:
    for fut in admin.create_topics([NewTopic(name, partitions, config=config or {})],
                                   request_timeout=TIMEOUT).values():
        fut.result(TIMEOUT)


def _alter(admin: AdminClient, topic: str, *entries: tuple[str, str | None, AlterConfigOpType],
           validate_only: bool = False) -> None:
    resource = ConfigResource("topic", topic, incremental_configs=[
        ConfigEntry(name, value, incremental_operation=op) for name, value, op in entries])
    for fut in admin.incremental_alter_configs([resource], request_timeout=TIMEOUT,
                                               validate_only=validate_only).values():
        fut.result(TIMEOUT)


def _refused(admin: AdminClient, topic: str, *entries: tuple[str, str | None, AlterConfigOpType]
             ) -> KafkaError:
    with pytest.raises(KafkaException) as refused:
        _alter(admin, topic, *entries)
    error: KafkaError = refused.value.args[0]
    return error


def _described(admin: AdminClient, topic: str) -> dict[str, tuple[str, int]]:
    futs = admin.describe_configs([ConfigResource("topic", topic)], request_timeout=TIMEOUT)
    entries = next(iter(futs.values())).result(TIMEOUT)
    return {name: (e.value, e.source) for name, e in entries.items()}


def _watermarks(node: BrokerProcess, topic: str) -> tuple[int, int]:
    consumer = Consumer({"bootstrap.servers": node.bootstrap, "group.id": "watermarks"})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT)
        return int(low), int(high)
    finally:
        consumer.close()


def _read_all(node: BrokerProcess, topic: str, start: int, count: int) -> list[Message]:
    """`count` records of partition 0 from `start` (out of range: from the earliest), bounded."""
    consumer = Consumer({"bootstrap.servers": node.bootstrap, "group.id": f"{topic}-reader",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(topic, 0, start)])
    got: list[Message] = []
    deadline = time.monotonic() + TIMEOUT
    try:
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None:
                assert msg.error() is None, msg.error()
                got.append(msg)
    finally:
        consumer.close()
    return got


def _wait_for_low_watermark(node: BrokerProcess, topic: str) -> tuple[int, int]:
    """Poll ListOffsets until retention has moved the log start (bounded)."""
    deadline = time.monotonic() + TIMEOUT
    low, high = _watermarks(node, topic)
    while low == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
        low, high = _watermarks(node, topic)
    return low, high


def _segment_files(node: BrokerProcess, topic: str) -> list[Path]:
    directory = Path(node.data_dir) / "kafka" / f"{topic}-0"
    return sorted((p for p in directory.iterdir() if p.suffix == ".log"),
                  key=lambda p: int(p.name.split("-")[0]))


def _segment_bases(node: BrokerProcess, topic: str) -> list[int]:
    return [int(p.name.split("-")[0]) for p in _segment_files(node, topic)]


def _settled_bases(node: BrokerProcess, topic: str, low: int) -> list[int]:
    """Segment bases once the files below `low` are gone (removed right after the start
    moves; bounded wait)."""
    deadline = time.monotonic() + TIMEOUT
    while _segment_bases(node, topic)[0] < low and time.monotonic() < deadline:
        time.sleep(0.05)
    return _segment_bases(node, topic)


def _segment_sizes(node: BrokerProcess, topic: str) -> list[int]:
    """File sizes, oldest first (closed segments are trimmed to their batches on roll)."""
    return [p.stat().st_size for p in _segment_files(node, topic)]


def _produce(node: BrokerProcess, topic: str, count: int, *, size: int = 1000,
             per_batch: int = 10, timestamp: int = 0) -> None:
    producer = Producer({"bootstrap.servers": node.bootstrap, "acks": "all",
                         "batch.num.messages": per_batch, "linger.ms": 0})
    for i in range(count):
        value = b"%06d" % i + b"x" * (size - 6)
        producer.produce(topic, value=value, partition=0, timestamp=timestamp)
        if i % per_batch == per_batch - 1:
            assert producer.flush(TIMEOUT) == 0
    assert producer.flush(TIMEOUT) == 0


@pytest.mark.timeout(90)
def test_incremental_alter_set_append_delete_and_describe(node: BrokerProcess,
                                                          admin: AdminClient) -> None:
    _create(admin, "cfg-inc", 2)
    dynamic, default = ConfigSource.DYNAMIC_TOPIC_CONFIG.value, ConfigSource.DEFAULT_CONFIG.value
    # The defaults this broker applies instead of Kafka's, as a broker whose server.properties
    # sets log.segment.bytes / log.retention.ms.
    static = ConfigSource.STATIC_BROKER_CONFIG.value
    _alter(admin, "cfg-inc", ("retention.ms", "86400000", SET),
           ("cleanup.policy", "compact", APPEND))
    seen = _described(admin, "cfg-inc")
    assert seen["retention.ms"] == ("86400000", dynamic)
    assert seen["cleanup.policy"] == ("delete,compact", dynamic)
    assert seen["segment.bytes"] == (str(128 * 1024 * 1024), static)
    assert seen["retention.bytes"] == ("-1", default)

    _alter(admin, "cfg-inc", ("retention.ms", None, DELETE), ("segment.ms", "3600000", SET))
    seen = _described(admin, "cfg-inc")
    assert seen["retention.ms"] == ("-1", static)
    assert seen["segment.ms"] == ("3600000", dynamic)
    assert seen["cleanup.policy"] == ("delete,compact", dynamic)

    _alter(admin, "cfg-inc", ("retention.bytes", "1", SET), validate_only=True)
    assert _described(admin, "cfg-inc")["retention.bytes"] == ("-1", default)


@pytest.mark.timeout(60)
def test_incremental_alter_refusals(node: BrokerProcess, admin: AdminClient) -> None:
    _create(admin, "cfg-bad")
    before = _described(admin, "cfg-bad")
    unknown = _refused(admin, "cfg-bad", ("retention.ms", "5", SET),
                       ("no.such.config", "1", SET))
    assert unknown.code() == KafkaError.INVALID_CONFIG and "no.such.config" in unknown.str()
    bad = _refused(admin, "cfg-bad", ("segment.bytes", "ten", SET))
    assert bad.code() == KafkaError.INVALID_CONFIG and "32-bit integer" in bad.str()
    not_list = _refused(admin, "cfg-bad", ("retention.ms", "5", APPEND))
    assert not_list.code() == KafkaError.INVALID_CONFIG
    missing = _refused(admin, "cfg-no-such-topic", ("retention.ms", "5", SET))
    assert missing.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    assert _described(admin, "cfg-bad") == before


@pytest.mark.timeout(60)
def test_kafka_python_alter_configs_legacy_and_incremental(node: BrokerProcess,
                                                           admin: AdminClient) -> None:
    _create(admin, "cfg-kp", config={"retention.ms": "1000"})
    kp = KafkaAdminClient(bootstrap_servers=node.bootstrap, request_timeout_ms=TIMEOUT * 1000)
    resource = KpConfigResource(KpResourceType.TOPIC, "cfg-kp")
    try:
        # Legacy AlterConfigs: the client re-sends the other dynamic keys (the API replaces).
        assert kp.alter_configs([KpConfigResource(
            KpResourceType.TOPIC, "cfg-kp", configs={"max.message.bytes": "50000"})],
            incremental=False) == {"topic": {"cfg-kp": "OK"}}
        values = {k: v["value"] for k, v in kp.describe_configs([resource])["topic"]["cfg-kp"]
                  .items()}
        assert values == {"retention.ms": "1000", "max.message.bytes": "50000"}
        assert kp.alter_configs([KpConfigResource(
            KpResourceType.TOPIC, "cfg-kp",
            configs={"cleanup.policy": ("APPEND", "compact"), "retention.ms": ("DELETE", None)})]
        ) == {"topic": {"cfg-kp": "OK"}}
        values = {k: v["value"] for k, v in kp.describe_configs([resource])["topic"]["cfg-kp"]
                  .items()}
        assert values == {"cleanup.policy": "delete,compact", "max.message.bytes": "50000"}
        refused = kp.alter_configs([KpConfigResource(
            KpResourceType.TOPIC, "cfg-kp", configs={"segment.bytes": "x"})])
        assert "InvalidConfigurationError" in str(refused["topic"]["cfg-kp"])
    finally:
        kp.close()


@pytest.mark.timeout(60)
def test_legacy_alter_configs_replaces_the_whole_set(node: BrokerProcess,
                                                     admin: AdminClient) -> None:
    _create(admin, "cfg-replace", config={"retention.ms": "1000", "segment.ms": "60000"})
    resource = ConfigResource("topic", "cfg-replace", set_config={"max.message.bytes": "50000"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # confluent-kafka prefers incremental
        for fut in admin.alter_configs([resource], request_timeout=TIMEOUT).values():
            fut.result(TIMEOUT)
    seen = _described(admin, "cfg-replace")
    assert seen["max.message.bytes"] == ("50000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    assert seen["retention.ms"] == ("-1", ConfigSource.STATIC_BROKER_CONFIG.value)
    assert seen["segment.ms"] == (str(2**63 - 1), ConfigSource.STATIC_BROKER_CONFIG.value)


@pytest.mark.timeout(90)
def test_lowered_max_message_bytes_is_enforced_on_every_core(node: BrokerProcess,
                                                            admin: AdminClient) -> None:
    _create(admin, "cfg-max", 2)
    # Several connections, so sessions on both cores have the topic cached before the change.
    producers = [Producer({"bootstrap.servers": node.bootstrap, "acks": "all",
                           "linger.ms": 0}) for _ in range(6)]
    for i, p in enumerate(producers):
        p.produce("cfg-max", value=b"b" * 5000, partition=i % 2)
        assert p.flush(TIMEOUT) == 0
    _alter(admin, "cfg-max", ("max.message.bytes", "2000", SET))
    for i, p in enumerate(producers):
        errors: list[KafkaError | None] = []
        p.produce("cfg-max", value=b"b" * 5000, partition=i % 2,
                  on_delivery=lambda err, _msg, errors=errors: errors.append(err))
        assert p.flush(TIMEOUT) == 0  # its own batch: the small one must not share its fate
        p.produce("cfg-max", value=b"s" * 100, partition=i % 2,
                  on_delivery=lambda err, _msg, errors=errors: errors.append(err))
        assert p.flush(TIMEOUT) == 0
        assert errors[0] is not None and errors[0].code() == KafkaError.MSG_SIZE_TOO_LARGE
        assert errors[1] is None


@pytest.mark.timeout(120)
def test_retention_bytes_deletes_old_segments_of_a_live_topic(node: BrokerProcess,
                                                              admin: AdminClient) -> None:
    _create(admin, "cfg-ret-bytes")
    _alter(admin, "cfg-ret-bytes", ("segment.bytes", "16384", SET))
    _produce(node, "cfg-ret-bytes", 300)  # batches of at most 10 records (~10 KiB)
    # The altered segment.bytes rolls the live log: ~300 KB in closed segments of <= 16 KiB.
    sizes = _segment_sizes(node, "cfg-ret-bytes")
    assert len(sizes) >= 300 * 1000 // 16384 and max(sizes[:-1]) <= 16384, sizes
    assert _watermarks(node, "cfg-ret-bytes") == (0, 300)

    _alter(admin, "cfg-ret-bytes", ("retention.bytes", "65536", SET))
    low, high = _wait_for_low_watermark(node, "cfg-ret-bytes")
    assert high == 300 and low > 0
    # Whole segments went: the log starts at a segment's base (its files are removed right
    # after the start moves). What stayed is at least retention.bytes and less than that plus
    # one segment; a record is stored in 1000 bytes of value plus at most ~50 of overhead.
    assert _settled_bases(node, "cfg-ret-bytes", low)[0] == low
    assert 65536 / 1050 <= high - low < (65536 + 16384) / 1000
    got = _read_all(node, "cfg-ret-bytes", 0, high - low)  # offset 0 is gone: reset to earliest
    assert [m.offset() for m in got] == list(range(low, high))
    assert all((m.value() or b"")[:6] == b"%06d" % m.offset() for m in got)


@pytest.mark.timeout(120)
def test_retention_ms_deletes_segments_older_than_the_limit(node: BrokerProcess,
                                                            admin: AdminClient) -> None:
    _create(admin, "cfg-ret-ms", config={"segment.bytes": "16384"})
    hour_ago = int(time.time() * 1000) - 3_600_000
    _produce(node, "cfg-ret-ms", 50, timestamp=hour_ago)
    _produce(node, "cfg-ret-ms", 20)  # now: these stay
    assert _watermarks(node, "cfg-ret-ms") == (0, 70)
    _alter(admin, "cfg-ret-ms", ("retention.ms", "600000", SET))
    low, high = _wait_for_low_watermark(node, "cfg-ret-ms")
    assert high == 70 and 0 < low <= 50
    # Every segment that held only hour-old records went; the first one kept holds a new one
    # (a producer batch may straddle offset 50, so that segment may start a little below it).
    bases = _settled_bases(node, "cfg-ret-ms", low)
    assert bases[0] == low and (len(bases) == 1 or bases[1] > 50), bases


@pytest.mark.timeout(60)
def test_log_append_time_stamps_with_the_broker_clock(node: BrokerProcess,
                                                      admin: AdminClient) -> None:
    _create(admin, "cfg-lat", config={"message.timestamp.type": "LogAppendTime"})
    producer = Producer({"bootstrap.servers": node.bootstrap, "acks": "all"})
    before = int(time.time() * 1000)
    producer.produce("cfg-lat", value=b"appended", partition=0, timestamp=1000)
    assert producer.flush(TIMEOUT) == 0
    after = int(time.time() * 1000)
    _alter(admin, "cfg-lat", ("message.timestamp.type", "CreateTime", SET))
    producer.produce("cfg-lat", value=b"created", partition=0, timestamp=1000)
    assert producer.flush(TIMEOUT) == 0

    got = [(m.value(), m.timestamp()) for m in _read_all(node, "cfg-lat", 0, 2)]
    (v1, (kind1, ts1)), (v2, (kind2, ts2)) = got
    assert (v1, kind1) == (b"appended", TIMESTAMP_LOG_APPEND_TIME) and before <= ts1 <= after
    assert (v2, kind2, ts2) == (b"created", TIMESTAMP_CREATE_TIME, 1000)


@pytest.mark.timeout(90)
def test_altered_configs_survive_a_restart(tmp_path: Path) -> None:
    proc = BrokerProcess(tmp_path / "data", cores=1)
    proc.start()
    try:
        admin = AdminClient({"bootstrap.servers": proc.bootstrap})
        _create(admin, "cfg-kept")
        _alter(admin, "cfg-kept", ("retention.bytes", "1048576", SET),
               ("cleanup.policy", "compact", APPEND))
        assert proc.stop() == 0
        proc.start()
        seen = _described(AdminClient({"bootstrap.servers": proc.bootstrap}), "cfg-kept")
        assert seen["retention.bytes"][0] == "1048576"
        assert seen["cleanup.policy"][0] == "delete,compact"
    finally:
        proc.stop()
